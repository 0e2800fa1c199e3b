"""Depthwise convolution: the kernel gradient written as a depthwise
correlation equals TF's, and the layer trains as Keras' on any CPU."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2.modeling.layers import depthwise


def _tensor(rng, shape):
  return tf.constant(rng.normal(size=shape), tf.float32)


# (batch, height, width, channels, kernel size, padding): odd and even
# sides and kernels, a batch of one, a map smaller than the kernel.
CASES = [(2, 9, 11, 4, 5, 'SAME'), (1, 8, 6, 3, 3, 'SAME'),
         (3, 7, 7, 2, 4, 'SAME'), (2, 9, 10, 5, 3, 'VALID'),
         (2, 3, 2, 3, 5, 'SAME')]


@pytest.mark.parametrize('case', CASES, ids=str)
def test_kernel_gradient_is_tfs(case):
  batch, height, width, channels, size, padding = case
  rng = np.random.default_rng(height * 10 + width)
  inputs = _tensor(rng, (batch, height, width, channels))
  kernel_shape = (size, size, channels, 1)
  outputs = tf.nn.depthwise_conv2d(inputs, tf.zeros(kernel_shape),
                                   [1, 1, 1, 1], padding)
  output_gradient = _tensor(rng, outputs.shape)
  want = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
      input=inputs, filter_sizes=kernel_shape, out_backprop=output_gradient,
      strides=[1, 1, 1, 1], padding=padding)
  have = depthwise.kernel_gradient(inputs, output_gradient, (size, size),
                                   padding)
  assert have.shape == want.shape
  np.testing.assert_allclose(have, want, rtol=0,
                             atol=1e-5 * float(tf.reduce_max(tf.abs(want))))


@pytest.mark.parametrize('fast', [True, False])
@pytest.mark.parametrize('strides', [1, 2])
def test_layer_values_and_gradients_are_tfs(monkeypatch, fast, strides):
  # Both paths on every CPU: the machine only decides which one a model
  # takes.
  monkeypatch.setattr(depthwise, '_onednn_avx512', lambda: fast)
  layer = depthwise.DepthwiseConv2D(5, strides=strides,
                                    padding='same' if strides == 1 else 'valid',
                                    use_bias=False)
  rng = np.random.default_rng(0)
  inputs = _tensor(rng, (2, 13, 17, 6))
  layer.build(inputs.shape)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(inputs)
    have = layer(inputs)
    want = tf.nn.depthwise_conv2d(
        inputs, tf.convert_to_tensor(layer.kernel), [1, strides, strides, 1],
        'SAME' if strides == 1 else 'VALID')
    weights = tf.cos(tf.reshape(tf.range(tf.size(want), dtype=tf.float32),
                                want.shape))
    loss_have = tf.reduce_sum(have * weights)
    loss_want = tf.reduce_sum(want * weights)
  np.testing.assert_array_equal(have, want)
  for got, expected in zip(tape.gradient(loss_have, [inputs, layer.kernel]),
                           tape.gradient(loss_want, [inputs, layer.kernel])):
    np.testing.assert_allclose(
        got, expected, rtol=0,
        atol=1e-5 * float(tf.reduce_max(tf.abs(expected))))


def test_the_layer_refuses_what_it_cannot_compute():
  with pytest.raises(ValueError, match='use_bias True'):
    depthwise.DepthwiseConv2D(3, use_bias=True)
