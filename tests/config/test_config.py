"""Config loading and validation: clear errors naming file, line and field."""

import glob
import json
import os

import pytest

from google.protobuf import text_format

from deeplab2 import config as config_lib
from conftest import TEST_DATA, SYNTHETIC_CONFIG


def _write(tmp_path, text):
  path = tmp_path / 'experiment.textproto'
  path.write_text(text)
  return str(path)


def _synthetic_text():
  with open(SYNTHETIC_CONFIG) as f:
    return f.read()


def test_synthetic_config_loads_and_validates():
  parts = config_lib.load_experiment(SYNTHETIC_CONFIG)
  options = parts.inference_options()
  assert options.output_stride == 16
  assert options.crop_size == tuple(
      parts.config.eval_dataset_options.crop_size)
  assert parts.descriptor('train').name == 'synthetic_panoptic'
  assert parts.descriptor('eval').num_classes == 5
  assert parts.warnings == ()


@pytest.mark.parametrize('manifest', sorted(glob.glob(
    os.path.join(TEST_DATA, 'deeplab2_parity', 'manifest_*.json'))))
def test_deeplab2_configs_parse_unchanged(manifest):
  with open(manifest) as f:
    text = json.load(f)['config_text']
  config = config_lib.parse_experiment_text(text, path=manifest)
  assert config.model_options.HasField('panoptic_deeplab')
  assert config.trainer_options.loss_options.center_loss.weight == 200


def test_unknown_field_lists_valid_fields(tmp_path):
  text = _synthetic_text().replace('output_stride: 16', 'output_strid: 16')
  path = _write(tmp_path, text)
  line = text.splitlines().index('    output_strid: 16') + 1
  with pytest.raises(config_lib.ConfigError,
                     match=rf'experiment.textproto:{line}: output_strid: '
                     r'unknown field "output_strid" in '
                     r'deeplab2.ModelOptions.BackboneOptions; valid fields: '
                     r'.*\bname, output_stride\b'):
    config_lib.load_experiment(path)


def test_wrong_type_names_file_and_line(tmp_path):
  text = _synthetic_text().replace('batch_size: 8', 'batch_size: "eight"', 1)
  path = _write(tmp_path, text)
  line = text.splitlines().index('  batch_size: "eight"') + 1
  with pytest.raises(config_lib.ConfigError,
                     match=rf'experiment.textproto:{line}: .*Couldn\'t parse '
                     r'integer: "eight"'):
    config_lib.load_experiment(path)


def test_syntax_error_names_line(tmp_path):
  path = _write(tmp_path, 'experiment_name: "x"\nmodel_options {\n')
  with pytest.raises(config_lib.ConfigError,
                     match=r'experiment.textproto:2: Expected "}"'):
    config_lib.load_experiment(path)


def test_crop_size_must_be_stride_multiple_plus_one(tmp_path):
  text = _synthetic_text().replace('crop_size: 129\n  crop_size: 129',
                                   'crop_size: 128\n  crop_size: 129', 1)
  path = _write(tmp_path, text)
  line = text.splitlines().index('  crop_size: 128') + 1
  with pytest.raises(config_lib.ConfigError,
                     match=rf'experiment.textproto:{line}: '
                     r'train_dataset_options.crop_size: \[128, 129\]: each '
                     r'side must be output_stride \* k \+ 1 \(output_stride '
                     r'16'):
    config_lib.load_experiment(path)


def test_semantic_classes_must_match_dataset(tmp_path):
  text = _synthetic_text().replace('output_channels: 5', 'output_channels: 19')
  path = _write(tmp_path, text)
  line = text.splitlines().index('      output_channels: 19') + 1
  with pytest.raises(config_lib.ConfigError,
                     match=rf':{line}: model_options.panoptic_deeplab.'
                     r'semantic_head.output_channels: 19 classes, but '
                     r'train_dataset_options.dataset "synthetic_panoptic" '
                     r'has 5'):
    config_lib.load_experiment(path)


def test_batch_size_divisible_by_replicas(tmp_path):
  text = _synthetic_text().replace('batch_size: 8', 'batch_size: 6', 1)
  path = _write(tmp_path, text)
  with pytest.raises(config_lib.ConfigError,
                     match=r'train_dataset_options.batch_size: 6 is not '
                     r'divisible by the 4 replicas'):
    config_lib.load_experiment(path, num_replicas=4)
  config_lib.load_experiment(path, num_replicas=2)


def test_unknown_dataset_lists_valid_names(tmp_path):
  text = _synthetic_text().replace('dataset: "synthetic_panoptic"',
                                   'dataset: "synthtic"', 1)
  with pytest.raises(config_lib.ConfigError,
                     match=r'train_dataset_options.dataset: Unknown dataset '
                     r'"synthtic"; valid names: .*synthetic_panoptic'):
    config_lib.load_experiment(_write(tmp_path, text))


def test_descriptor_json_as_dataset(tmp_path):
  from deeplab2.data import dataset_descriptor  # pylint: disable=g-import-not-at-top
  descriptor_path = tmp_path / 'my_data.json'
  dataset_descriptor.DATASETS.get('synthetic_panoptic').write_json(
      str(descriptor_path))
  text = _synthetic_text().replace('dataset: "synthetic_panoptic"',
                                   f'dataset: "{descriptor_path}"')
  parts = config_lib.load_experiment(_write(tmp_path, text))
  assert parts.descriptor('train').thing_class_ids == (2, 3, 4)


@pytest.mark.parametrize('old,new,field', [
    ('nms_kernel: 7', 'nms_kernel: 4', 'evaluator_options.nms_kernel'),
    ('name: "mse"', 'name: "l2"',
     'trainer_options.loss_options.center_loss.name'),
    ('base_learning_rate: 0.004', 'base_learning_rate: -1',
     'trainer_options.solver_options.base_learning_rate'),
    ('output_stride: 16', 'output_stride: 12',
     'model_options.backbone.output_stride'),
])
def test_impossible_values(tmp_path, old, new, field):
  text = _synthetic_text().replace(old, new, 1)
  line = [i for i, l in enumerate(text.splitlines(), 1)
          if l.strip() == new][0]
  with pytest.raises(config_lib.ConfigError, match=rf':{line}: {field}: '):
    config_lib.load_experiment(_write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r'cannot read config'):
    config_lib.load_experiment(str(tmp_path / 'nope.textproto'))


_ALL_CONFIGS = sorted(glob.glob(os.path.join(
    os.path.dirname(os.path.dirname(SYNTHETIC_CONFIG)), '**', '*.textproto'),
                                recursive=True))


@pytest.mark.parametrize('num_replicas', [1, 2, 4, 8])
def test_every_config_validates_on_1_to_8_replicas(num_replicas,
                                                   custom_data_descriptor):
  assert len(_ALL_CONFIGS) > 10
  for path in _ALL_CONFIGS:
    parts = config_lib.load_experiment(path, num_replicas=num_replicas)
    for split in ('train', 'eval'):
      if parts.has_split(split):
        options = parts.pipeline_options(split)
        assert options.batch_size >= 1, (path, split)


def test_an_eval_batch_of_any_size_rounds_up_per_replica(tmp_path):
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  config = config_lib.parse_experiment_text(_synthetic_text())
  config.eval_dataset_options.batch_size = 3
  path = _write(tmp_path, text_format.MessageToString(config))
  parts = config_lib.load_experiment(path, num_replicas=2)
  assert parts.config.eval_dataset_options.batch_size == 3
  assert parts.num_replicas == 2
  assert parts.pipeline_options('eval').batch_size == 2
  assert parts.pipeline_options('train').batch_size == 4


def test_the_parts_keep_their_replicas_and_seed(tmp_path):
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  config = config_lib.parse_experiment_text(_synthetic_text())
  config.seed = 5
  config.trainer_options.solver_options.use_sync_batchnorm = True
  path = _write(tmp_path, text_format.MessageToString(config))
  one = config_lib.load_experiment(path)
  two = config_lib.load_experiment(path, num_replicas=2)
  assert (one.num_replicas, two.num_replicas) == (1, 2)
  assert not one.bn_options().synchronized
  assert two.bn_options().synchronized
  assert two.pipeline_options('train').seed == 5
  assert two.pipeline_options('eval').seed is None


def test_test_time_augmentation_is_built_once_by_the_door(tmp_path):
  from deeplab2 import inference  # pylint: disable=g-import-not-at-top
  parts = config_lib.load_experiment(SYNTHETIC_CONFIG)
  assert parts.tta == inference.TestTimeAugmentation(
      (1.0, 1.25, 1.5, 1.75, 2.0), True)
  assert parts.eval_schedule.tta is parts.tta
  assert parts.inference_options().tta is parts.tta
  evaluator = config_lib.load_experiment_config(SYNTHETIC_CONFIG)[0]
  evaluator.evaluator_options.ClearField('eval_scales')
  evaluator.evaluator_options.add_flipped_images = False
  single = config_lib.load_experiment(_write(
      tmp_path, text_format.MessageToString(evaluator)))
  # No eval_scales: one pass at scale 1.
  assert single.tta == inference.TestTimeAugmentation((1.0,), False)
  evaluator.evaluator_options.eval_scales[:] = [0.75, 1.25]
  evaluator.evaluator_options.add_flipped_images = True
  parts = config_lib.load_experiment(_write(
      tmp_path, text_format.MessageToString(evaluator)))
  assert parts.tta == inference.TestTimeAugmentation((0.75, 1.25), True)
  assert parts.eval_schedule.tta is parts.tta
  # An export's other choice goes through the same rule.
  options = parts.inference_options(eval_scales=[0.5, 1.0])
  assert options.tta == inference.TestTimeAugmentation((0.5, 1.0), True)
  assert parts.inference_options(
      add_flipped_images=False).tta.scales == (0.75, 1.25)
  with pytest.raises(config_lib.ConfigError,
                     match=r'eval_scales: lists a scale twice: \[0.5, 0.5\]'):
    parts.inference_options(eval_scales=[0.5, 0.5])


@pytest.mark.parametrize('scales,reason', [
    ((0.0, 1.0), r'must all be positive, got \[0.0, 1.0\]'),
    ((1.0, float('inf')), r'must all be finite, got \[1.0, inf\]'),
    ((0.5, 1.0, 0.5), r'lists a scale twice: \[0.5, 1.0, 0.5\]'),
])
def test_the_scale_rule_stands_alone_for_command_lines(scales, reason):
  assert config_lib.eval_scales_problem(scales) is not None
  with pytest.raises(config_lib.ConfigError,
                     match=rf'--eval_scales: {reason}') as error:
    config_lib.check_eval_scales(scales, field='--eval_scales')
  assert error.value.field == '--eval_scales'


def test_the_scale_rule_accepts_any_order_and_none():
  assert config_lib.check_eval_scales([1.5, 0.5, 1]) == (1.5, 0.5, 1.0)
  assert config_lib.check_eval_scales(()) == ()
  assert config_lib.eval_scales_problem([0.5, 1.0]) is None
