"""Shared fixtures: paths, a tiny synthetic dataset and a tiny config."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Under pytest-xdist every worker, and every TensorFlow process a test
# starts (they inherit this), is one of several on a few cores: one
# intra-op and one inter-op thread each, instead of pools as wide as the
# machine whose threads spin against the other processes'. With 2 workers
# on the 2-core AVX2-only EPYC the whole suite took 631 s instead of 744 s
# (the quick subset 173 s; 186 s with the inter-op pool left alone).
if os.environ.get('PYTEST_XDIST_WORKER'):
  os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')
  os.environ.setdefault('TF_NUM_INTEROP_THREADS', '1')

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # noqa: F401
from deeplab2.utils import machine
# pylint: enable=g-import-not-at-top,wrong-import-position

# The processes tests start run TensorFlow as this one does: TF's own
# oneDNN default for this CPU, or what TF_ENABLE_ONEDNN_OPTS says (importing
# deeplab2.cli would otherwise turn it on for them). .ci/run runs the layer
# and backbone tests again the other way.
os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1' if machine.onednn_enabled() else '0'

import pytest  # pylint: disable=g-import-not-at-top

from google.protobuf import text_format  # pylint: disable=g-import-not-at-top

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DATA = os.path.join(REPO_ROOT, 'tests', 'testdata')
SYNTHETIC_CONFIG = os.path.join(REPO_ROOT, 'configs', 'synthetic',
                                'resnet_mini_os16.textproto')
TINY_IMAGE_SIZE = 33


def tiny_config_text(data_dir, steps=6):
  """The synthetic config shrunk to 33 x 33 crops and a few steps."""
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  config, _ = config_lib.load_experiment_config(SYNTHETIC_CONFIG)
  backbone = config.model_options.backbone
  backbone.backbone_width_multiplier = 0.125
  backbone.stem_width_multiplier = 0.25
  backbone.backbone_layer_multiplier = 0.34   # blocks 1, 1, 2, 1
  config.model_options.decoder.decoder_channels = 16
  config.model_options.decoder.aspp_channels = 16
  instance_decoder = (config.model_options.panoptic_deeplab.instance
                      .instance_decoder_override)
  instance_decoder.decoder_channels = 16
  instance_decoder.aspp_channels = 16
  config.model_options.panoptic_deeplab.semantic_head.head_channels = 16
  trainer = config.trainer_options
  trainer.steps_per_loop = 2
  trainer.save_checkpoints_steps = 2
  trainer.save_summaries_steps = 2
  trainer.solver_options.training_number_of_steps = steps
  trainer.solver_options.warmup_steps = 0
  config.evaluator_options.eval_interval = steps
  # Single-scale: tests of test-time augmentation ask for it themselves.
  config.evaluator_options.ClearField('eval_scales')
  config.evaluator_options.add_flipped_images = False
  config.evaluator_options.continuous_eval_timeout = 1
  for options, split in ((config.train_dataset_options, 'train'),
                         (config.eval_dataset_options, 'val')):
    del options.file_pattern[:]
    options.file_pattern.append(os.path.join(data_dir, f'{split}-*.tfrecord'))
    options.crop_size[:] = [TINY_IMAGE_SIZE, TINY_IMAGE_SIZE]
    options.batch_size = 2
  return text_format.MessageToString(config)


def tiny_model(seed=0):
  """The tiny config's Panoptic-DeepLab, randomly initialised (seeded)."""
  import keras  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.modeling.layers import normalization  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  return config_lib.build_model(config.model_options,
                                normalization.BatchNormOptions(),
                                input_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))


@pytest.fixture(scope='session')
def tiny_dataset_dir(tmp_path_factory):
  """A synthetic dataset of 33 x 33 images: 8 train, 4 val."""
  from deeplab2.data import build_synthetic  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('tiny_synthetic'))
  build_synthetic.write_synthetic_dataset(
      path, num_train=8, num_val=4, seed=3, num_shards=2,
      image_size=TINY_IMAGE_SIZE)
  return path


@pytest.fixture()
def tiny_config_path(tiny_dataset_dir, tmp_path):
  path = tmp_path / 'tiny.textproto'
  path.write_text(tiny_config_text(tiny_dataset_dir))
  return str(path)


@pytest.fixture(scope='session')
def tiny_saved_model(tmp_path_factory):
  """(SavedModel path, ExperimentParts) of the tiny config, seeded."""
  import keras  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.serving import export  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  parts = config_lib.from_message(
      config_lib.parse_experiment_text(tiny_config_text('/unused')))
  path = str(tmp_path_factory.mktemp('tiny_export') / 'saved_model')
  export.export_saved_model(parts.build_model(), parts.build_post_processor(),
                            parts.inference_options(), path,
                            parts.descriptor('eval'))
  return path, parts


def save_checkpoints_at(config_path, model_dir, steps):
  """Writes model_dir's checkpoints at each of `steps` as a training run
  does (Experiment's TrainingCheckpoints: model, optimizer, step), without
  training: for tests that need checkpoints on disk, not learning. A
  training step's first trace costs 10-20 s on the CI machines."""
  from deeplab2.training import experiment  # pylint: disable=g-import-not-at-top
  run = experiment.Experiment(config_path, model_dir)
  for step in steps:
    run.optimizer.iterations.assign(step)
    run.checkpoints.save(step)


def zeroed_initializers(monkeypatch):
  """Makes Keras' random initializers return zeros while `monkeypatch`
  (a pytest.MonkeyPatch) holds.

  For tests that count weights and multiply-adds or load every weight from
  a checkpoint: TF's truncated normal is most of the time of building a
  full-size network on these CPUs (2.6 s of 3.4 s for Wide-ResNet-41), and
  such tests never read the random values.
  """
  from keras.src.backend import random as backend_random  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top

  def zeros(shape, *args, dtype=None, **kwargs):
    del args, kwargs
    return keras.ops.zeros(shape, dtype=dtype or 'float32')

  for name in ('normal', 'truncated_normal', 'uniform'):
    monkeypatch.setattr(backend_random, name, zeros)


@pytest.fixture
def custom_data_descriptor(tmp_path, monkeypatch):
  """Works in tmp_path, where configs/custom/*.textproto find the
  descriptor that docs/custom_data.md's conversion writes
  (runs/custom/records/dataset_descriptor.json, relative to the working
  directory)."""
  # pylint: disable=g-import-not-at-top
  from deeplab2.data import coco
  from deeplab2.data import synthetic_export
  # pylint: enable=g-import-not-at-top
  descriptor, _ = coco.descriptor_from_categories(
      'shapes', synthetic_export.categories())
  folder = tmp_path / 'runs' / 'custom' / 'records'
  folder.mkdir(parents=True)
  descriptor.write_json(str(folder / 'dataset_descriptor.json'))
  monkeypatch.chdir(tmp_path)


@pytest.fixture
def zero_initializers(monkeypatch):
  """zeroed_initializers for the test's duration."""
  zeroed_initializers(monkeypatch)


# Tests that take over ~6 s on the 2-core CI machines (TensorFlow processes,
# trainings, full-size networks): `bash tools/run_tests.sh --quick` leaves
# them out, the full run keeps them. The quick subset still runs at least
# one test of every module (one tiny training, one parity network, one
# pinned backbone count, one config build through the one door). Node-id
# prefixes; a test may also carry @pytest.mark.slow itself.
_SLOW_TESTS = (
    'tests/docs/test_custom_data.py::test_the_walkthrough_runs_',
    'tests/config/test_bad_configs.py::test_train_prints_each_config_error',
    'tests/config/test_one_door.py::test_every_config_builds_through_the_one_'
    'door[cityscapes/panoptic_deeplab/xception71',
    'tests/data/test_conversion_safety.py::test_an_interrupt_stops_a_two_',
    'tests/data/test_converters.py::test_custom_dataset_cli_with_two_workers',
    'tests/data/test_resize_to_range.py::test_evaluation_scores_predictions_',
    'tests/data/test_resize_to_range.py::test_resized_evaluation_takes_',
    'tests/data/test_visualize_targets.py::',
    'tests/inference/test_tta.py::test_flip_augmented_maps_of_a_mirror_',
    'tests/modeling/test_deeplab2_checkpoint.py::test_convert_then_export_',
    'tests/modeling/test_deeplab2_parity.py::test_a_checkpoint_of_another_',
    'tests/modeling/test_deeplab2_parity.py::test_float_outputs_match_'
    'deeplab2[manifest_cityscapes_mobilenet_v3_large',
    'tests/modeling/test_deeplab2_parity.py::test_float_outputs_match_'
    'deeplab2[manifest_cityscapes_resnet50',
    'tests/modeling/test_deeplab2_parity.py::test_float_outputs_match_'
    'deeplab2[manifest_cityscapes_swidernet',
    'tests/modeling/test_deeplab2_parity.py::test_float_outputs_match_'
    'deeplab2[manifest_cityscapes_wide_resnet41',
    'tests/modeling/test_deeplab2_parity.py::test_float_outputs_match_'
    'deeplab2[manifest_coco',
    'tests/modeling/test_keras_applications.py::test_initial_checkpoint_',
    'tests/modeling/test_keras_applications.py::test_legacy_h5_files_',
    'tests/modeling/test_keras_applications.py::test_mobilenet_v3_weights_',
    'tests/modeling/test_keras_applications.py::test_resnet50_weights_',
    'tests/modeling/test_keras_applications.py::test_weights_of_another_',
    'tests/modeling/test_layers.py::test_checkpoint_round_trip_',
    'tests/modeling/test_layers.py::test_model_get_config_round_trip',
    'tests/modeling/test_layers.py::test_model_outputs_at_input_size',
    'tests/modeling/test_mixed_precision.py::test_a_bfloat16_model_exports',
    'tests/modeling/test_mixed_precision.py::test_mixed_float16_trains_',
    'tests/modeling/test_mixed_precision.py::test_layers_compute_in_half_'
    'precision_and_return_float32[mixed_bfloat16',
    'tests/modeling/test_model_stats.py::test_backbone_counts_are_pinned[r',
    'tests/modeling/test_model_stats.py::test_backbone_counts_are_pinned[s',
    'tests/modeling/test_model_stats.py::test_backbone_counts_are_pinned[w',
    'tests/modeling/test_model_stats.py::test_backbone_counts_are_pinned[x',
    'tests/modeling/test_model_stats.py::test_backbone_counts_are_pinned['
    'mobilenet_v3_large',
    'tests/modeling/test_model_stats.py::test_xception71_panoptic_',
    'tests/postprocessing/test_against_numpy.py::test_random_maps[200]',
    'tests/postprocessing/test_against_numpy.py::test_same_under_xla',
    'tests/serving/test_atomic_outputs.py::',
    'tests/serving/test_export_equals_eval.py::',
    'tests/serving/test_infer.py::test_infer_writes_overlays_',
    'tests/serving/test_serving_sizes.py::',
    'tests/training/test_deeplab2_training_parity.py::',
    'tests/training/test_end_to_end.py::test_export_serves_without_',
    'tests/training/test_end_to_end.py::test_a_killed_run_resumes_',
    'tests/training/test_eval_protocol.py::',
    'tests/training/test_mirrored.py::',
    'tests/training/test_best_checkpoint.py::test_train_and_eval_keeps_',
    'tests/training/test_checkpoint_state.py::test_eval_scores_',
    'tests/training/test_checkpoint_state.py::test_continuous_eval_takes_',
    'tests/training/test_model_dir_lock.py::test_two_trainers_',
    'tests/training/test_nothing_lost.py::test_sigterm_saves_',
    'tests/training/test_nothing_lost.py::test_a_damaged_newest_',
    'tests/training/test_nothing_lost.py::test_export_overwrite_',
    'tests/training/test_nothing_lost.py::test_a_checkpoint_of_another_',
    'tests/training/test_prompt_stops.py::test_sigterm_',
    'tests/training/test_scale_out.py::test_a_seeded_run_',
    'tests/training/test_seeded_resume.py::test_a_stopped_and_resumed_',
    'tests/training/test_scale_out.py::test_continuous_eval_',
    'tests/training/test_scale_out.py::test_two_workers_',
)


# The test files that take longest (by --durations on the 2-core CI
# machines), longest first. They run first, each on one worker (--dist
# loadfile --no-loadscope-reorder, as tools/run_tests.sh runs them), so the
# short files fill the gaps at the end instead of one long file running
# alone while the other worker idles.
_LONGEST_FILES_FIRST = (
    'tests/training/test_mirrored.py',
    'tests/docs/test_custom_data.py',
    'tests/training/test_scale_out.py',
    'tests/modeling/test_deeplab2_parity.py',
    'tests/serving/test_export_equals_eval.py',
    'tests/training/test_nothing_lost.py',
    'tests/training/test_end_to_end.py',
    'tests/modeling/test_model_stats.py',
    'tests/config/test_one_door.py',
    'tests/training/test_deeplab2_training_parity.py',
    'tests/modeling/test_layers.py',
    'tests/modeling/test_keras_applications.py',
    'tests/modeling/test_mixed_precision.py',
    'tests/training/test_eval_protocol.py',
    'tests/training/test_checkpoint_state.py',
    'tests/training/test_best_checkpoint.py',
    'tests/training/test_seeded_resume.py',
    'tests/training/test_prompt_stops.py',
    'tests/training/test_model_dir_lock.py',
    'tests/modeling/test_deeplab2_checkpoint.py',
    'tests/serving/test_serving_sizes.py',
    'tests/serving/test_atomic_outputs.py',
    'tests/data/test_resize_to_range.py',
    'tests/data/test_conversion_safety.py',
)


def _file_rank(item):
  path = item.nodeid.split('::', 1)[0]
  if path in _LONGEST_FILES_FIRST:
    return _LONGEST_FILES_FIRST.index(path)
  return len(_LONGEST_FILES_FIRST)


def pytest_collection_modifyitems(config, items):
  del config
  missing = [path for path in _LONGEST_FILES_FIRST
             if not os.path.exists(os.path.join(REPO_ROOT, path))]
  if missing:
    raise pytest.UsageError(
        f'tests/conftest.py: _LONGEST_FILES_FIRST names {missing}, which do '
        'not exist; update the list.')
  for item in items:
    if item.nodeid.startswith(_SLOW_TESTS):
      item.add_marker(pytest.mark.slow)
  # A stable sort: each file's tests stay together and in their order.
  items.sort(key=_file_rank)
