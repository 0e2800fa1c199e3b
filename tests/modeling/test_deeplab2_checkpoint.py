"""deeplab2-format checkpoints: initial_checkpoint, last layers, backbone only."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.modeling import deeplab2_checkpoint
from deeplab2.modeling import deeplab2_names
from deeplab2.modeling.layers import normalization
from deeplab2.training import experiment
from conftest import tiny_config_text

BN = normalization.BatchNormOptions()


def _model(num_classes=5):
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  config.model_options.panoptic_deeplab.semantic_head.output_channels = (
      num_classes)
  return config_lib.build_model(config.model_options, BN, input_size=(33, 33))


def _write(model, prefix, keep=lambda key: True, seed=0):
  """Saves random values under deeplab2 keys (plus an optimizer slot)."""
  rng = np.random.default_rng(seed)
  names, tensors, values = [], [], {}
  for variable, key in deeplab2_names.checkpoint_keys(model):
    if keep(key):
      value = rng.normal(size=variable.shape).astype(np.float32)
      names.append(key)
      tensors.append(tf.constant(value))
      values[key] = value
  names.append('optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE')
  tensors.append(tf.zeros([3]))
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names), tensors=tensors)
  return values


def _assert_restored(model, values):
  for variable, key in deeplab2_names.checkpoint_keys(model):
    if key in values:
      np.testing.assert_array_equal(variable.numpy(), values[key], err_msg=key)


def test_initial_checkpoint_in_deeplab2_format(tiny_dataset_dir, tmp_path):
  prefix = str(tmp_path / 'deeplab2' / 'ckpt-7')
  values = _write(_model(), prefix)
  config = config_lib.parse_experiment_text(tiny_config_text(tiny_dataset_dir))
  config.model_options.initial_checkpoint = prefix
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  config_path = tmp_path / 'init.textproto'
  config_path.write_text(text_format.MessageToString(config))
  run = experiment.Experiment(str(config_path), str(tmp_path / 'model'))
  assert run.restore() is None          # nothing in model_dir yet
  _assert_restored(run.model, values)
  assert run.global_step == 0


def test_last_layer_of_another_class_count(tmp_path):
  prefix = str(tmp_path / 'ckpt-1')
  values = _write(_model(num_classes=7), prefix)
  target = _model(num_classes=5)
  with pytest.raises(ValueError, match=r'shapes differ .*semantic_last_layer/'
                     r'kernel'):
    deeplab2_checkpoint.restore(target, prefix)
  report = deeplab2_checkpoint.restore(target, prefix,
                                       restore_semantic_last_layer=False)
  assert ('semantic_last_layer/kernel/.ATTRIBUTES/VARIABLE_VALUE' in
          report.ignored)
  assert not any(k.startswith('semantic_last_layer/') for k in report.restored)
  _assert_restored(target, {k: v for k, v in values.items()
                            if not k.startswith('semantic_last_layer/')})


def test_backbone_only_checkpoint(tmp_path):
  prefix = str(tmp_path / 'ckpt-1')
  values = _write(_model(), prefix, keep=lambda key: key.startswith('encoder/'))
  model = _model()
  report = deeplab2_checkpoint.restore(model, prefix)
  assert report.backbone_only
  assert all(k.startswith('encoder/') for k in report.restored)
  _assert_restored(model, values)


def test_an_unknown_entry_is_an_error(tmp_path):
  prefix = str(tmp_path / 'ckpt-1')
  model = _model()
  _write(model, prefix)
  reader = tf.train.load_checkpoint(prefix)
  names = list(reader.get_variable_to_shape_map())
  tensors = [tf.constant(reader.get_tensor(n)) for n in names]
  names.append('semantic_decoder/_extra/kernel/.ATTRIBUTES/VARIABLE_VALUE')
  tensors.append(tf.zeros([1]))
  other = str(tmp_path / 'ckpt-2')
  tf.raw_ops.SaveV2(prefix=other, tensor_names=names,
                    shape_and_slices=[''] * len(names), tensors=tensors)
  with pytest.raises(ValueError, match=r'1 entries map to no model variable, '
                     r"e.g. \['semantic_decoder/_extra/kernel"):
    deeplab2_checkpoint.restore(model, other)


def test_convert_then_export_a_deeplab2_checkpoint(tiny_dataset_dir,
                                                   tmp_path):
  from deeplab2.serving import convert  # pylint: disable=g-import-not-at-top
  from deeplab2.serving import export  # pylint: disable=g-import-not-at-top
  config_path = tmp_path / 'tiny.textproto'
  config_path.write_text(tiny_config_text(tiny_dataset_dir))
  prefix = str(tmp_path / 'deeplab2' / 'ckpt-3')
  values = _write(_model(), prefix)
  converted = convert.convert_checkpoint(str(config_path), prefix,
                                         str(tmp_path / 'ours' / 'ckpt'))
  with pytest.raises(FileExistsError, match=r'ckpt.index exists'):
    convert.convert_checkpoint(str(config_path), prefix,
                               str(tmp_path / 'ours' / 'ckpt'))
  model = _model()
  tf.train.Checkpoint(model=model).read(
      converted).assert_existing_objects_matched()
  _assert_restored(model, values)
  # The export takes the deeplab2 checkpoint directly as well.
  export_dir = export.export_from_config(str(config_path), prefix,
                                         str(tmp_path / 'export'))
  served = tf.saved_model.load(export_dir).signatures['serving_default'](
      image=tf.zeros([33, 33, 3], tf.uint8))
  assert served['panoptic_pred'].shape == (33, 33)


def test_legacy_optimizer_slots_under_variable_paths_are_ignored(tmp_path):
  """Older deeplab2 checkpoints keep Adam's m and v beside each variable."""
  model = _model()
  pairs = deeplab2_names.checkpoint_keys(model)
  rng = np.random.default_rng(5)
  names, tensors, values = [], [], {}
  for variable, key in pairs:
    value = rng.normal(size=variable.shape).astype(np.float32)
    values[key] = value
    names.append(key)
    tensors.append(tf.constant(value))
    stem = key[:-len(deeplab2_names.KEY_SUFFIX)]
    for slot in ('m', 'v'):
      names.append(f'{stem}/.OPTIMIZER_SLOT/optimizer/{slot}'
                   f'{deeplab2_names.KEY_SUFFIX}')
      tensors.append(tf.fill(variable.shape, 7.0))
  names += ['optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE',
            'optimizer/beta_1/.ATTRIBUTES/VARIABLE_VALUE']
  tensors += [tf.constant(3, tf.int64), tf.constant(0.9)]
  prefix = str(tmp_path / 'ckpt-1')
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names), tensors=tensors)
  assert deeplab2_checkpoint.is_deeplab2_checkpoint(prefix)
  report = deeplab2_checkpoint.restore(model, prefix)
  assert len(report.restored) == len(pairs)
  assert len(report.ignored) == 2 * len(pairs) + 2
  _assert_restored(model, values)


def test_our_checkpoint_for_another_class_count_skips_the_last_layer(tmp_path):
  """restore_semantic_last_layer_from_initial_checkpoint: false, ours."""
  from deeplab2.modeling import weights  # pylint: disable=g-import-not-at-top
  source = _model(num_classes=5)
  for variable in source.weights:
    variable.assign(tf.random.normal(variable.shape, seed=1))
  path = tf.train.Checkpoint(model=source).write(str(tmp_path / 'ckpt-3'))
  target = _model(num_classes=7)
  initial_last = target.semantic_head.last_layer.kernel.numpy()
  with pytest.raises(ValueError):         # shapes differ: refused
    weights.restore_weights(target, path)
  assert weights.restore_weights(target, path,
                                 restore_semantic_last_layer=False) == 'ours'
  np.testing.assert_array_equal(target.semantic_head.last_layer.kernel.numpy(),
                                initial_last)
  for name in ('backbone', 'semantic_decoder', 'instance_decoder',
               'center_head', 'offset_head'):
    for a, b in zip(getattr(source, name).weights,
                    getattr(target, name).weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  np.testing.assert_array_equal(target.semantic_head.conv.weights[0].numpy(),
                                source.semantic_head.conv.weights[0].numpy())
