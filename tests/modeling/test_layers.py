"""Layers and the model: build, eager and graph calls, a training step,
get_config round trips, and shapes for odd and even input sizes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2.modeling import backbones
from deeplab2.modeling import factory
from deeplab2.modeling.layers import aspp
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import decoder
from deeplab2.modeling.layers import heads
from deeplab2.modeling.layers import normalization
from deeplab2.modeling.backbones import resnet
from conftest import SYNTHETIC_CONFIG

BN = normalization.BatchNormOptions(momentum=0.9, epsilon=1e-3)


def check_layer(layer, inputs, expected_shape):
  """The shared harness: eager, graph, train step, config round trip."""
  eager = layer(inputs, training=False)
  assert tuple(eager.shape) == expected_shape
  graph = tf.function(lambda x: layer(x, training=False))(inputs)
  np.testing.assert_allclose(graph.numpy(), eager.numpy(), rtol=1e-5,
                             atol=1e-5)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.square(layer(inputs, training=True)))
  gradients = tape.gradient(loss, layer.trainable_variables)
  assert gradients and all(g is not None for g in gradients)
  clone = type(layer).from_config(layer.get_config())
  clone(inputs, training=False)
  assert ([tuple(v.shape) for v in clone.weights] ==
          [tuple(v.shape) for v in layer.weights])
  clone.set_weights(layer.get_weights())  # includes the updated BN stats
  np.testing.assert_allclose(clone(inputs, training=False).numpy(),
                             layer(inputs, training=False).numpy(),
                             rtol=1e-5, atol=1e-5)


def test_conv_bn_act():
  check_layer(convolutions.ConvBnAct(8, 3, strides=2, bn_options=BN),
              tf.random.normal([2, 9, 9, 4]), (2, 5, 5, 8))


@pytest.mark.parametrize('conv_type', ['depthwise_separable_conv',
                                       'standard_conv'])
def test_separable_conv(conv_type):
  check_layer(convolutions.SeparableConvBnAct(6, 5, conv_type, BN),
              tf.random.normal([2, 7, 7, 4]), (2, 7, 7, 6))


def test_aspp():
  check_layer(aspp.ASPP(8, (1, 2, 3), bn_options=BN),
              tf.random.normal([2, 5, 9, 6]), (2, 5, 9, 8))


def test_head():
  check_layer(heads.PredictionHead(3, 8, bn_options=BN),
              tf.random.normal([2, 5, 5, 4]), (2, 5, 5, 3))


def test_bottleneck_block():
  check_layer(resnet.BottleneckBlock(4, strides=2, bn_options=BN),
              tf.random.normal([2, 9, 9, 8]), (2, 5, 5, 16))


def test_decoder_fuses_low_levels():
  layer = decoder.PanopticDeepLabDecoder(
      'res5', ('res3', 'res2'), (8, 4), aspp_channels=8,
      atrous_rates=(1, 2, 3), decoder_channels=12, bn_options=BN)
  features = {'res5': tf.random.normal([1, 3, 5, 16]),
              'res3': tf.random.normal([1, 9, 17, 8]),
              'res2': tf.random.normal([1, 17, 33, 4])}
  assert tuple(layer(features).shape) == (1, 17, 33, 12)
  clone = decoder.PanopticDeepLabDecoder.from_config(layer.get_config())
  assert clone.low_level_keys == ('res3', 'res2')


@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_resnet_endpoints_publish_channels_and_strides(output_stride):
  backbone = backbones.build_backbone(
      'resnet50', backbones.BackboneOptions(
          output_stride=output_stride, width_multiplier=0.125,
          stem_width_multiplier=0.25, layer_multiplier=0.34), BN)
  endpoints = backbone(tf.zeros([1, 65, 65, 3]))
  for name, spec in backbone.endpoint_specs.items():
    assert endpoints[name].shape[-1] == spec.channels
    assert endpoints[name].shape[1] == (65 - 1) // spec.stride + 1
  assert backbone.endpoint_specs['res5'].stride == output_stride


def test_unknown_backbone_lists_valid_names():
  with pytest.raises(KeyError, match=r'Unknown backbone "resnet5"; valid '
                     r'names: resnet50, resnet50_beta'):
    backbones.build_backbone('resnet5', backbones.BackboneOptions(), BN)


def _synthetic_model():
  config, _ = config_lib.load_experiment_config(SYNTHETIC_CONFIG)
  return factory.build_model(config.model_options, BN)


@pytest.mark.parametrize('height,width', [(33, 65), (40, 51)])
def test_model_outputs_at_input_size(height, width):
  model = _synthetic_model()
  outputs = model(tf.random.uniform([2, height, width, 3], 0, 255))
  assert outputs[common.PRED_SEMANTIC_LOGITS].shape == (2, height, width, 5)
  assert outputs[common.PRED_CENTER_HEATMAP].shape == (2, height, width)
  assert outputs[common.PRED_OFFSET_MAP].shape == (2, height, width, 2)
  assert all(v.dtype == tf.float32 for v in outputs.values())


def test_model_get_config_round_trip():
  model = _synthetic_model()
  images = tf.random.uniform([1, 33, 33, 3], 0, 255)
  expected = model(images)
  clone = type(model).from_config(model.get_config())
  clone(images)
  clone.set_weights(model.get_weights())
  np.testing.assert_allclose(clone(images)[common.PRED_OFFSET_MAP].numpy(),
                             expected[common.PRED_OFFSET_MAP].numpy(),
                             rtol=1e-5, atol=1e-5)


def test_semantic_only_model():
  config, _ = config_lib.load_experiment_config(SYNTHETIC_CONFIG)
  config.model_options.panoptic_deeplab.instance.enable = False
  model = factory.build_model(config.model_options, BN)
  outputs = model(tf.zeros([1, 33, 33, 3]))
  assert set(outputs) == {common.PRED_SEMANTIC_LOGITS}
  assert not keras.ops.any(keras.ops.isnan(outputs[
      common.PRED_SEMANTIC_LOGITS]))


def test_checkpoint_round_trip_restores_every_weight(tmp_path):
  """tf.train.Checkpoint must see every sublayer (Keras 3 hides lists)."""
  source, target = _synthetic_model(), _synthetic_model()
  images = tf.zeros([1, 33, 33, 3])
  source(images)
  target(images)
  for variable in source.weights:
    variable.assign(tf.random.normal(variable.shape))
  path = tf.train.Checkpoint(model=source).write(str(tmp_path / 'ckpt'))
  tf.train.Checkpoint(model=target).read(path).assert_existing_objects_matched()
  for a, b in zip(source.weights, target.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  listed = [name for name, _ in tf.train.list_variables(path)
            if name.startswith('model/')]
  assert len(listed) == len(source.weights)
