"""Mixed precision: bfloat16 / float16 compute, float32 variables, outputs
and losses, loss scaling for float16, and the global policy left alone."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.modeling.layers import normalization
from deeplab2.training import experiment
from deeplab2.training import modes
from conftest import tiny_config_text

BN = normalization.BatchNormOptions()


def _model_options(policy):
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  config.model_options.dtype_policy = policy
  return config.model_options


@pytest.mark.parametrize('policy,compute', [('mixed_bfloat16', 'bfloat16'),
                                            ('mixed_float16', 'float16')])
def test_layers_compute_in_half_precision_and_return_float32(policy, compute):
  model = config_lib.build_model(_model_options(policy), BN, input_size=(33, 33))
  assert keras.config.dtype_policy().name == 'float32'   # restored
  convs = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
           if isinstance(layer, keras.layers.Conv2D)]
  assert convs and all(layer.compute_dtype == compute for layer in convs)
  assert all(v.dtype == tf.float32 for v in model.weights)
  reference = config_lib.build_model(_model_options('float32'), BN,
                                     input_size=(33, 33))
  reference.set_weights(model.get_weights())
  images = tf.random.uniform([1, 33, 33, 3], 0, 255, seed=1)
  outputs = model(images, training=False)
  expected = reference(images, training=False)
  for key, value in outputs.items():
    assert value.dtype == tf.float32, key
    scale = float(tf.reduce_max(tf.abs(expected[key])))
    # Half precision keeps 8 (bfloat16) or 11 (float16) significant bits.
    np.testing.assert_allclose(value.numpy(), expected[key].numpy(),
                               atol=0.1 * scale + 1e-3, err_msg=key)


def test_an_unknown_policy_names_the_field(tmp_path):
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  config.model_options.dtype_policy = 'float8'
  path = tmp_path / 'bad.textproto'
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  path.write_text(text_format.MessageToString(config))
  with pytest.raises(config_lib.ConfigError,
                     match=r'model_options.dtype_policy: "float8" is not one '
                     r'of'):
    config_lib.load_experiment(str(path), num_replicas=1)


def test_mixed_float16_trains_with_loss_scaling(tiny_dataset_dir, tmp_path):
  config = config_lib.parse_experiment_text(
      tiny_config_text(tiny_dataset_dir, steps=2))
  config.model_options.dtype_policy = 'mixed_float16'
  config.ClearField('eval_dataset_options')
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'fp16.textproto'
  path.write_text(text_format.MessageToString(config))
  model_dir = str(tmp_path / 'model')
  run = experiment.Experiment(str(path), model_dir)
  assert isinstance(run.optimizer, keras.optimizers.LossScaleOptimizer)
  before = [v.numpy() for v in run.model.trainable_weights]
  modes.run('train', str(path), model_dir)
  assert glob.glob(os.path.join(model_dir, 'ckpt-2.index'))
  reader = tf.train.load_checkpoint(os.path.join(model_dir, 'ckpt-2'))
  names = reader.get_variable_to_shape_map()
  assert any('dynamic_scale' in name for name in names), sorted(names)[:5]
  restored = experiment.Experiment(str(path), model_dir)
  restored.restore()
  assert restored.global_step == 2
  after = [v.numpy() for v in restored.model.trainable_weights]
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))
  assert all(np.isfinite(a).all() for a in after)


def test_a_bfloat16_model_exports_and_serves_float32(tmp_path):
  from deeplab2.serving import export  # pylint: disable=g-import-not-at-top
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  config.model_options.dtype_policy = 'mixed_bfloat16'
  parts = config_lib.from_message(config)
  path = str(tmp_path / 'export')
  export.export_saved_model(parts.build_model(), parts.build_post_processor(),
                            parts.inference_options(), path,
                            parts.descriptor('eval'))
  serve = tf.saved_model.load(path).signatures['serving_default']
  outputs = serve(image=tf.zeros([37, 41, 3], tf.uint8))
  assert outputs['panoptic_pred'].shape == (37, 41)
  assert outputs['center_heatmap'].dtype == tf.float32
