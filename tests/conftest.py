"""Shared fixtures: paths, a tiny synthetic dataset and a tiny config."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

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
