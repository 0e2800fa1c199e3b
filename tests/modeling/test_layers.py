"""Layers and the model: build, eager and graph calls, a training step,
get_config round trips, and shapes for odd and even input sizes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2.modeling import backbones
from deeplab2.modeling.layers import aspp
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import decoder
from deeplab2.modeling.layers import heads
from deeplab2.modeling.layers import normalization
from deeplab2.modeling.backbones import mobilenet
from deeplab2.modeling.backbones import residual
from deeplab2.modeling.backbones import xception
from deeplab2.modeling.layers import drop_path
from deeplab2.modeling.layers import squeeze_excite
from deeplab2.modeling.layers import switchable_atrous
from conftest import SYNTHETIC_CONFIG
from conftest import tiny_config_text

BN = normalization.BatchNormOptions(momentum=0.9, epsilon=1e-3)


def check_layer(layer, inputs, expected_shape):
  """The shared harness: eager, graph, train step, config round trip."""
  eager = layer(inputs, training=False)
  assert tuple(eager.shape) == expected_shape
  assert tuple(layer.compute_output_shape(tuple(inputs.shape))) == (
      expected_shape)
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


def test_aspp_with_a_pooling_window():
  check_layer(aspp.ASPP(8, (1, 2, 3), bn_options=BN, pool_size=(3, 5)),
              tf.random.normal([2, 5, 9, 6]), (2, 5, 9, 8))


def _numpy_resize_align_corners(x, height, width):
  """Bilinear [h, w, C] -> [height, width, C], align_corners=True."""
  h, w = x.shape[:2]
  ys = np.arange(height) * ((h - 1) / (height - 1) if height > 1 else 0)
  xs = np.arange(width) * ((w - 1) / (width - 1) if width > 1 else 0)
  y0 = np.minimum(np.floor(ys).astype(int), h - 1)
  x0 = np.minimum(np.floor(xs).astype(int), w - 1)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  top = x[y0][:, x0] * (1 - fx) + x[y0][:, x1] * fx
  bottom = x[y1][:, x0] * (1 - fx) + x[y1][:, x1] * fx
  return top * (1 - fy) + bottom * fy


def _numpy_pooled_branch(features, window, conv, bn):
  """deeplab2's ASPPPool in NumPy: stride-1 'valid' average over the
  window, 1x1 conv, inference batch norm, ReLU, align-corners resize."""
  x = features.astype(np.float64)[0]
  h, w = x.shape[:2]
  wh, ww = window
  pooled = np.stack([np.stack([x[i:i + wh, j:j + ww].mean(axis=(0, 1))
                               for j in range(w - ww + 1)])
                     for i in range(h - wh + 1)])
  y = pooled @ conv.kernel.numpy()[0, 0].astype(np.float64)
  y = ((y - bn.moving_mean.numpy()) /
       np.sqrt(bn.moving_variance.numpy() + bn.epsilon) * bn.gamma.numpy() +
       bn.beta.numpy())
  return _numpy_resize_align_corners(np.maximum(y, 0.0), h, w)


def test_aspp_pools_over_the_train_crops_window_at_a_larger_eval_crop():
  # Train crop 513 x 1025 at output stride 32: deeplab2's window is 17 x 33
  # feature pixels; the eval crop 1025 x 2049 gives 33 x 65 features.
  window = aspp.feature_pool_size((513, 1025), 32)
  assert window == (17, 33)
  assert aspp.feature_pool_size((1025, 2049), 32) == (33, 65)
  layer = aspp.ASPP(4, (1, 2, 3), bn_options=BN, pool_size=window)
  features = tf.random.stateless_normal([1, 33, 65, 3], seed=(1, 2))
  layer(features, training=False)
  for bn_layer in (layer.pool_conv.batch_norm, layer.projection.batch_norm):
    bn_layer.moving_mean.assign(np.linspace(-0.2, 0.3, 4))
    bn_layer.moving_variance.assign(np.linspace(0.5, 1.5, 4))
  expected_pool = _numpy_pooled_branch(
      features.numpy(), window, layer.pool_conv.conv,
      layer.pool_conv.batch_norm)
  # The whole layer, its pooled branch replaced by the NumPy reference.
  branches = [layer.conv_1x1(features, training=False)] + [
      conv(features, training=False) for conv in layer.atrous_convs]
  branches.append(tf.constant(expected_pool[None], tf.float32))
  expected = layer.projection(tf.concat(branches, -1), training=False)
  np.testing.assert_allclose(layer(features, training=False).numpy(),
                             expected.numpy(), rtol=0, atol=1e-5)
  # The window matters: a global pool gives other features.
  global_pool = _numpy_pooled_branch(features.numpy(), (33, 65),
                                     layer.pool_conv.conv,
                                     layer.pool_conv.batch_norm)
  assert np.abs(global_pool - expected_pool).max() > 1e-2


def test_aspp_window_scales_as_deeplab2_and_covers_short_maps():
  # deeplab2's scale_mutable_sequence: int((side - 1) * scale + 1).
  assert aspp.scaled_pool_size((17, 33), 0.5) == (9, 17)
  assert aspp.scaled_pool_size((17, 33), 1.75) == (29, 57)
  assert aspp.scaled_pool_size(None, 0.5) is None
  features = tf.random.stateless_normal([2, 4, 9, 3], seed=(3, 4))
  # A window longer than the map on a side averages that side whole.
  pooled = aspp.image_pooling(features, (6, 4)).numpy()
  assert pooled.shape == (2, 1, 6, 3)
  np.testing.assert_allclose(
      pooled[:, 0, 2], features.numpy()[:, :, 2:6].mean(axis=(1, 2)),
      rtol=1e-5, atol=1e-6)
  # Unknown sizes (a SavedModel's input) take the same decisions.
  dynamic = tf.function(
      lambda x: aspp.image_pooling(x, (6, 4)),
      input_signature=[tf.TensorSpec([None, None, None, 3])])
  np.testing.assert_allclose(dynamic(features).numpy(), pooled, rtol=1e-6)


def test_aspp_dropout_acts_in_training_only():
  # Seeded (the drop masks then do not depend on what ran before in this
  # process), on enough outputs (2 x 9 x 9 x 16) that the dropped share is
  # measured to within a few percent.
  keras.utils.set_random_seed(11)
  layer = aspp.ASPP(16, (1, 2, 3), bn_options=BN)
  features = tf.random.stateless_normal([2, 9, 9, 4], seed=(5, 6))
  first = layer(features, training=True).numpy()
  second = layer(features, training=True).numpy()
  assert np.any(first != second)
  np.testing.assert_array_equal(layer(features, training=False).numpy(),
                                layer(features, training=False).numpy())
  # Switched off (the training parity test) it is deterministic, and gives
  # the projection's output before the dropout.
  off = aspp.ASPP.from_config({**layer.get_config(), 'dropout_rate': 0.0})
  off(features, training=False)
  off.set_weights(layer.get_weights())
  projected = off(features, training=True).numpy()
  np.testing.assert_array_equal(off(features, training=True).numpy(),
                                projected)
  # About 10 % of the (non-zero) outputs are zeroed, the others scaled by
  # 1 / 0.9.
  dropped = (first == 0) & (projected != 0)
  assert np.sum(projected != 0) > 1000
  assert np.mean(dropped[projected != 0]) == pytest.approx(0.1, abs=0.03)
  np.testing.assert_allclose(first[~dropped], projected[~dropped] / 0.9,
                             rtol=1e-5, atol=1e-6)


def test_the_model_pools_over_its_train_crop():
  from deeplab2.config import parts as parts_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  config.train_dataset_options.crop_size[:] = [33, 65]
  config.eval_dataset_options.crop_size[:] = [65, 129]
  parts = parts_lib.from_message(config)
  model = parts.build_model()
  stride = config.model_options.backbone.output_stride
  window = aspp.feature_pool_size((33, 65), stride)
  assert model.semantic_decoder.aspp.pool_size == window
  assert model.instance_decoder.aspp.pool_size == window


def test_head():
  check_layer(heads.PredictionHead(3, 8, bn_options=BN),
              tf.random.normal([2, 5, 5, 4]), (2, 5, 5, 3))


@pytest.mark.parametrize('kwargs,channels,expected_shape', [
    (dict(filters=(4, 4, 16), strides=2), 8, (2, 5, 5, 16)),
    (dict(filters=(8, 8), strides=2, use_squeeze_and_excite=True), 8,
     (2, 5, 5, 8)),                          # subsampled identity shortcut
    (dict(filters=(4, 8, 16), dilation_rate=2, switchable_atrous=True,
          keep_prob=0.8), 8, (2, 9, 9, 16)),
])
def test_residual_blocks(kwargs, channels, expected_shape):
  check_layer(residual.ResidualBlock(bn_options=BN, **kwargs),
              tf.random.normal([2, 9, 9, channels]), expected_shape)


def test_depthwise_conv_and_squeeze_excite():
  check_layer(convolutions.DepthwiseConvBnAct(5, strides=2,
                                              activation='hard_swish',
                                              bn_options=BN),
              tf.random.normal([2, 8, 9, 4]), (2, 4, 5, 4))
  check_layer(squeeze_excite.SqueezeExcite(16, 0.25),
              tf.random.normal([2, 5, 5, 16]), (2, 5, 5, 16))
  check_layer(squeeze_excite.SimplifiedSqueezeExcite(),
              tf.random.normal([2, 5, 5, 6]), (2, 5, 5, 6))


def test_switchable_atrous_conv_mixes_two_rates():
  layer = switchable_atrous.SwitchableAtrousConv2D(3, 3, dilation_rate=1)
  inputs = tf.random.normal([1, 11, 11, 2])
  layer(inputs)
  check_layer(layer, inputs, (1, 11, 11, 3))
  # A switch of exactly 1 selects the rate-3 conv, 0 the rate-1 conv.
  layer.switch.kernel.assign(tf.zeros_like(layer.switch.kernel))
  for bias, rate in ((0.0, 1), (1.0, 3)):
    layer.switch.bias.assign([bias])
    expected = tf.nn.conv2d(inputs, layer.kernel, 1, 'SAME', dilations=rate)
    np.testing.assert_allclose(layer(inputs).numpy(), expected.numpy(),
                               atol=1e-5)


def test_strided_convs_pad_like_deeplab2_on_even_inputs():
  """One zero before and one after for a 3x3 stride-2 conv on 8 pixels."""
  layer = convolutions.ConvBnAct(2, 3, strides=2, activation=None,
                                 bn_options=BN)
  inputs = tf.random.normal([1, 8, 8, 3])
  outputs = layer(inputs, training=False)
  padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
  expected = layer.batch_norm(tf.nn.conv2d(padded, layer.conv.kernel, 2,
                                           'VALID'), training=False)
  np.testing.assert_allclose(outputs.numpy(), expected.numpy(), atol=1e-5)


def test_drop_path_keep_probabilities_follow_deeplab2():
  # 'linear': 1.0 at stride 2 down to keep_prob at stride 32.
  probs = [drop_path.keep_prob_for_stride(0.8, 'linear', s, 4)
           for s in (2, 4, 8, 16, 32)]
  np.testing.assert_allclose(probs, [1.0, 0.95, 0.9, 0.85, 0.8])
  assert drop_path.keep_prob_for_stride(0.8, 'constant', 8, 16) == 1.0
  assert drop_path.keep_prob_for_stride(0.8, 'constant', 16, 16) == 0.8
  with pytest.raises(ValueError, match='Unknown drop_path_schedule "cubic"'):
    drop_path.keep_prob_for_stride(0.8, 'cubic', 16, 4)


def test_drop_path_drops_whole_samples_while_training_only():
  x = tf.ones([4000, 2, 2, 1])
  tf.random.set_seed(3)
  dropped = drop_path.drop_path(x, 0.75, training=True).numpy()
  per_sample = dropped.reshape(4000, -1)
  np.testing.assert_allclose(np.unique(per_sample), [0.0, 1 / 0.75])
  assert (per_sample == per_sample[:, :1]).all()
  assert abs(per_sample.mean() - 1.0) < 0.05
  assert (drop_path.drop_path(x, 0.75, training=False).numpy() == 1).all()


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


_SMALL_BACKBONES = {
    'resnet50': dict(width_multiplier=0.125, stem_width_multiplier=0.25,
                     layer_multiplier=0.34),
    'resnet50_beta': dict(width_multiplier=0.125, stem_width_multiplier=0.25,
                          layer_multiplier=0.34),
    'wide_resnet41': dict(width_multiplier=0.0625,
                          stem_width_multiplier=0.125, layer_multiplier=0.34),
    'swidernet': dict(width_multiplier=0.0625, stem_width_multiplier=0.125,
                      layer_multiplier=0.34, use_sac_beyond_stride=16,
                      use_squeeze_and_excite=True, drop_path_keep_prob=0.8,
                      drop_path_schedule='linear'),
    'xception_71': dict(width_multiplier=0.125, stem_width_multiplier=0.25,
                        layer_multiplier=0.125),
    'mobilenet_v3_small': dict(width_multiplier=0.5,
                               use_squeeze_and_excite=True),
    'mobilenet_v3_large': dict(width_multiplier=0.5),
}


@pytest.mark.parametrize('name', sorted(_SMALL_BACKBONES))
@pytest.mark.parametrize('output_stride', [8, 16, 32])
@pytest.mark.parametrize('size', [64, 65])
def test_endpoints_publish_channels_and_strides(name, output_stride, size):
  backbone = backbones.build_backbone(
      name, backbones.BackboneOptions(output_stride=output_stride,
                                      **_SMALL_BACKBONES[name]), BN)
  endpoints = backbone(tf.zeros([1, size, size + 2, 3]))
  assert set(endpoints) == {f'res{i}' for i in range(1, 6)}
  for key, spec in backbone.endpoint_specs.items():
    assert endpoints[key].shape[-1] == spec.channels, key
    assert endpoints[key].shape[1] == -(-size // spec.stride), key
    assert endpoints[key].shape[2] == -(-(size + 2) // spec.stride), key
  assert backbone.endpoint_specs['res5'].stride == output_stride


@pytest.mark.parametrize('name', sorted(_SMALL_BACKBONES))
def test_backbone_config_round_trip(name):
  backbone = backbones.build_backbone(
      name, backbones.BackboneOptions(output_stride=16,
                                      **_SMALL_BACKBONES[name]), BN)
  images = tf.random.normal([1, 33, 33, 3])
  expected = backbone(images, training=False)
  clone = type(backbone).from_config(backbone.get_config())
  clone(images, training=False)
  clone.set_weights(backbone.get_weights())
  got = clone(images, training=False)
  np.testing.assert_allclose(got['res5'].numpy(), expected['res5'].numpy(),
                             rtol=1e-5, atol=1e-5)


def test_mobilenet_endpoints_are_depthwise_outputs():
  """deeplab2 takes res2..res4 before the projection: the expanded width."""
  backbone = backbones.build_backbone(
      'mobilenet_v3_large', backbones.BackboneOptions(), BN)
  channels = {k: v.channels for k, v in backbone.endpoint_specs.items()}
  assert channels == {'res1': 16, 'res2': 72, 'res3': 120, 'res4': 672,
                      'res5': 960}
  assert isinstance(backbone.blocks[1], mobilenet.InvertedBottleneck)


def test_a_layer_multiplier_that_empties_a_stage_is_refused():
  with pytest.raises(ValueError, match=r'backbone_layer_multiplier 0.2 leaves '
                     r'a stage without blocks \(\(3, 4, 6, 3\) -> '
                     r'\[0, 0, 1, 0\]\)'):
    backbones.build_backbone('resnet50', backbones.BackboneOptions(
        layer_multiplier=0.2), BN)


@pytest.mark.parametrize('name,options,field', [
    ('mobilenet_v3_small', dict(layer_multiplier=2.0), 'layer_multiplier'),
    ('mobilenet_v3_large', dict(drop_path_keep_prob=0.8),
     'drop_path_keep_prob'),
    ('xception_71', dict(use_sac_beyond_stride=16), 'use_sac_beyond_stride'),
    ('xception_71', dict(use_squeeze_and_excite=True),
     'use_squeeze_and_excite')])
def test_options_a_backbone_would_ignore_are_refused(name, options, field):
  with pytest.raises(ValueError, match=f'Backbone "{name}" does not apply '
                     f'{field}'):
    backbones.build_backbone(name, backbones.BackboneOptions(**options), BN)


def test_unknown_backbone_lists_valid_names():
  with pytest.raises(KeyError, match=r'Unknown backbone "resnet5"; valid '
                     r'names: mobilenet_v3_large, mobilenet_v3_small, '
                     r'resnet50, resnet50_beta, swidernet, wide_resnet41, '
                     r'xception_71'):
    backbones.build_backbone('resnet5', backbones.BackboneOptions(), BN)


def _synthetic_model():
  config, _ = config_lib.load_experiment_config(SYNTHETIC_CONFIG)
  return config_lib.build_model(config.model_options, BN)


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
  model = config_lib.build_model(config.model_options, BN)
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


@pytest.mark.parametrize('make', [
    lambda: mobilenet.InvertedBottleneck(8, 8, 3, 5, se_ratio=0.25,
                                         activation='hard_swish',
                                         bn_options=BN),
    lambda: xception.XceptionModule((8, 12, 16), 'conv', strides=2,
                                    bn_options=BN),
    lambda: xception.XceptionModule((8, 8, 8), 'sum', dilation_rate=2,
                                    activation_in_conv=True, bn_options=BN),
], ids=['inverted_bottleneck', 'xception_conv', 'xception_sum'])
def test_two_output_blocks_round_trip_their_config(make):
  """Blocks returning (output, endpoint) pairs: config and both outputs."""
  layer = make()
  inputs = tf.random.normal([2, 9, 9, 8])
  expected = layer(inputs, training=False)
  clone = type(layer).from_config(layer.get_config())
  clone(inputs, training=False)
  clone.set_weights(layer.get_weights())
  for got, want in zip(clone(inputs, training=False), expected):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5,
                               atol=1e-5)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.square(layer(inputs, training=True)[0]))
  assert all(g is not None for g in tape.gradient(
      loss, layer.trainable_variables))


@pytest.mark.parametrize('shape', [(2, 9, 7, 5), (1, 1, 1, 3), (3, 4, 4, 8)])
def test_fused_batch_norm_trains_as_keras_batch_norm(shape):
  # Output, gradients and moving statistics of one training call, against
  # Keras' own layer (the moving variance moves towards the biased batch
  # variance, as Keras' does; the fused kernel reports the corrected one).
  from deeplab2.modeling.layers import normalization  # pylint: disable=g-import-not-at-top
  inputs = tf.constant(np.random.default_rng(0).normal(2, 3, size=shape),
                       tf.float32)
  weights = tf.reshape(tf.cos(tf.range(tf.size(inputs), dtype=tf.float32)
                              / 3.0), shape)
  results = []
  for layer in (keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3),
                normalization.FusedBatchNormalization(momentum=0.9,
                                                      epsilon=1e-3)):
    layer.build(shape)
    layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]))
    layer.beta.assign(np.linspace(-1, 1, shape[-1]))
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      outputs = layer(inputs, training=True)
      loss = tf.reduce_sum(outputs * weights)
    gradients = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
    results.append([outputs, *gradients, layer.moving_mean,
                    layer.moving_variance])
  for name, want, got in zip(('output', 'input gradient', 'gamma gradient',
                              'beta gradient', 'moving mean',
                              'moving variance'), *results):
    want = np.asarray(want)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0,
                               atol=1e-6 * max(1.0, np.abs(want).max()),
                               err_msg=name)


@pytest.mark.parametrize('make', [
    lambda: convolutions.ConvBnAct(6, 3, bn_options=BN),
    lambda: convolutions.ConvBnAct(6, 3, strides=2, bn_options=BN),
    lambda: convolutions.ConvBnAct(6, 3, dilation_rate=2, activation='none',
                                   bn_options=BN),
    lambda: convolutions.DepthwiseConvBnAct(5, bn_options=BN),
    lambda: convolutions.DepthwiseConvBnAct(3, strides=2,
                                            activation='hard_swish',
                                            bn_options=BN),
], ids=['conv', 'strided', 'atrous', 'depthwise', 'strided_depthwise'])
def test_inference_folds_the_batch_norm_into_the_kernel(make):
  # Inference takes the folded kernel; the sublayers called one by one
  # (convolution, Keras' batch norm, activation) give the same values up to
  # float rounding, with moving statistics far from 0 and 1.
  layer = make()
  rng = np.random.default_rng(1)
  inputs = tf.constant(rng.normal(size=(2, 11, 9, 4)), tf.float32)
  layer(inputs, training=False)
  bn = layer.batch_norm
  channels = bn.gamma.shape[0]
  bn.gamma.assign(rng.uniform(0.5, 2.0, channels))
  bn.beta.assign(rng.normal(size=channels))
  bn.moving_mean.assign(rng.normal(size=channels))
  bn.moving_variance.assign(rng.uniform(0.1, 3.0, channels))
  conv = getattr(layer, 'conv', None) or layer.depthwise_conv
  x = inputs
  if layer.strides > 1:
    x = convolutions.fixed_padding(x, layer.kernel_size)
  want = layer.activation_fn(
      keras.layers.BatchNormalization.call(bn, conv(x), training=False))
  folded = layer(inputs, training=False)
  np.testing.assert_allclose(folded, want, rtol=0, atol=1e-5)
  assert float(tf.reduce_max(tf.abs(want))) > 0.5
  # Training uses the batch's statistics, not the folded kernel.
  trained = layer(inputs, training=True)
  assert float(tf.reduce_max(tf.abs(trained - folded))) > 0.1
