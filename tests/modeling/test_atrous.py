"""Atrous convolution: both formulations compute TF's dilated convolution,
forward and backward, and the same size always takes the same one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab2.modeling.layers import atrous
from deeplab2.modeling.layers import convolutions

# (batch, height, width, channels in, channels out, rate): maps larger and
# smaller than the rate's reach, odd and even sides, a 1 x 1 map.
CASES = [(2, 9, 9, 8, 4, 6), (2, 9, 9, 8, 4, 2), (1, 5, 7, 3, 2, 9),
         (2, 17, 33, 6, 5, 9), (1, 1, 1, 3, 2, 2), (3, 12, 4, 5, 6, 3)]


def _inputs(batch, height, width, channels_in, channels_out, kernel_size=3):
  rng = np.random.default_rng(height * 100 + width)
  return (tf.constant(rng.normal(size=(batch, height, width, channels_in)),
                      tf.float32),
          tf.constant(rng.normal(size=(kernel_size, kernel_size, channels_in,
                                       channels_out)), tf.float32))


def _value_and_gradients(fn, inputs, kernel):
  with tf.GradientTape() as tape:
    tape.watch([inputs, kernel])
    output = fn(inputs, kernel)
    # A loss that weighs every output value differently.
    weights = tf.reshape(tf.cos(tf.range(tf.size(output), dtype=tf.float32)
                                / 7.0), tf.shape(output))
    loss = tf.reduce_sum(output * weights)
  return [output, *tape.gradient(loss, [inputs, kernel])]


@pytest.mark.parametrize('case', CASES, ids=str)
@pytest.mark.parametrize('formulation', ['taps', 'space_to_batch'])
def test_both_formulations_are_tfs_dilated_convolution(case, formulation):
  *shape, rate = case
  inputs, kernel = _inputs(*shape)
  reference = _value_and_gradients(
      lambda x, k: tf.nn.convolution(x, k, padding='SAME', dilations=rate),
      inputs, kernel)
  fn = {'taps': atrous._by_taps,  # pylint: disable=protected-access
        'space_to_batch': atrous._by_space_to_batch}[formulation]  # pylint: disable=protected-access
  got = _value_and_gradients(lambda x, k: fn(x, k, rate), inputs, kernel)
  for name, want, have in zip(('output', 'input gradient', 'kernel gradient'),
                              reference, got):
    scale = float(tf.reduce_max(tf.abs(want)))
    np.testing.assert_allclose(have.numpy(), want.numpy(), rtol=0,
                               atol=2e-6 * max(scale, 1.0), err_msg=name)


def test_the_taps_are_taken_where_the_rate_is_large_against_the_map():
  def use_taps(height, width, rate, channels_in, channels_out):
    return atrous._use_taps(height, width, 3, rate,  # pylint: disable=protected-access
                            channels_in * channels_out, max)
  # ASPP of the synthetic config at its 129 x 129 crop (res5 9 x 9, 512
  # channels into 64): rates 2, 4 and 6.
  assert all(use_taps(9, 9, r, 512, 64) for r in (2, 4, 6))
  # ASPP at the 513 x 1025 Cityscapes crop, OS 32 (17 x 33, 2048 into 256)
  # and at the 1025 x 2049 evaluation size (33 x 65): rates 3, 6 and 9.
  assert all(use_taps(17, 33, r, 2048, 256) for r in (3, 6, 9))
  assert all(use_taps(33, 65, r, 2048, 256) for r in (3, 6, 9))
  # ... but not where a rate is small against a large map: the padded
  # grid is then little more than the taps' work.
  assert not use_taps(129, 257, 2, 2048, 256)
  # The tests' 33 x 33 model (res5 3 x 3, 256 into 16): too little to save.
  assert not any(use_taps(3, 3, r, 256, 16) for r in (2, 4, 6))
  # A one-row image 4097 wide: the int64 run-time decision agrees.
  assert use_taps(1, 4097, 6, 2048, 256)
  assert bool(atrous._use_taps(  # pylint: disable=protected-access
      tf.constant(1, tf.int64), tf.constant(4097, tf.int64), 3, 6,
      2048 * 256, tf.maximum))


@pytest.mark.parametrize('case', CASES, ids=str)
def test_a_size_takes_the_same_path_with_static_and_dynamic_shapes(case):
  *shape, rate = case
  inputs, kernel = _inputs(*shape)
  static = atrous.dilated_conv2d(inputs, kernel, rate)
  dynamic = tf.function(
      lambda x: atrous.dilated_conv2d(x, kernel, rate),
      input_signature=[tf.TensorSpec([None, None, None, shape[3]])])(inputs)
  # Bit for bit: a SavedModel (dynamic sizes) predicts what evaluation
  # (static crops) does.
  np.testing.assert_array_equal(dynamic.numpy(), static.numpy())


def test_conv_bn_act_with_a_rate_uses_it_and_keeps_conv2d_variables():
  layer = convolutions.ConvBnAct(4, 3, dilation_rate=6, name='aspp_conv')
  layer.build((None, 9, 9, 8))
  assert isinstance(layer.conv, atrous.AtrousConv2D)
  assert [v.path for v in layer.conv.weights] == ['aspp_conv/conv/kernel']
  plain = convolutions.ConvBnAct(4, 3, dilation_rate=1)
  strided = convolutions.ConvBnAct(4, 3, strides=2)
  assert type(plain.conv) is keras.layers.Conv2D  # pylint: disable=unidiomatic-typecheck
  assert type(strided.conv) is keras.layers.Conv2D  # pylint: disable=unidiomatic-typecheck
  restored = keras.layers.deserialize(keras.layers.serialize(layer.conv))
  assert isinstance(restored, atrous.AtrousConv2D)
  assert restored.get_config() == layer.conv.get_config()


def test_atrous_conv2d_refuses_what_it_does_not_compute():
  with pytest.raises(ValueError, match=r'AtrousConv2D takes stride 1, "same" '
                     r'padding.*got strides \(2, 2\)'):
    atrous.AtrousConv2D(4, 3, strides=2, dilation_rate=1)
  with pytest.raises(ValueError, match=r'kernel \(2, 2\)'):
    atrous.AtrousConv2D(4, 2, padding='same', dilation_rate=2)
