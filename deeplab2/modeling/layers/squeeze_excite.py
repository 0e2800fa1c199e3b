"""Squeeze-and-excite gates (Hu et al.), in deeplab2's two forms."""

import keras

from deeplab2.modeling.layers import activations


def make_divisible(value, divisor=8, min_value=None):
  """Rounds a channel count to a multiple of `divisor` (MobileNet's rule).

  Never below `min_value` (default: divisor) and never more than 10% under
  `value`.
  """
  min_value = divisor if min_value is None else min_value
  rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * value:
    rounded += divisor
  return int(rounded)


@keras.saving.register_keras_serializable(package='deeplab2')
class SqueezeExcite(keras.layers.Layer):
  """x * sigmoid(conv(relu(conv(mean(x))))), MobileNetV3's gate.

  The squeezed width is make_divisible(int(squeeze_from * ratio), 8).
  Input float [B, H, W, C]; output the same shape.
  """

  def __init__(self, squeeze_from, ratio=0.25, inner_activation='relu',
               gating_activation='sigmoid', **kwargs):
    super().__init__(**kwargs)
    self.squeeze_from = squeeze_from
    self.ratio = ratio
    self.inner_activation = inner_activation
    self.gating_activation = gating_activation
    self.inner_fn = activations.get(inner_activation)
    self.gating_fn = activations.get(gating_activation)
    self.squeezed_channels = make_divisible(max(1, int(squeeze_from * ratio)))
    self.reduce = keras.layers.Conv2D(self.squeezed_channels, 1,
                                      kernel_initializer='he_normal',
                                      name='reduce')
    self.expand = None

  def build(self, input_shape):
    self.reduce.build((None, 1, 1, input_shape[-1]))
    # Created here, so the dtype policy is passed on explicitly.
    self.expand = keras.layers.Conv2D(input_shape[-1], 1,
                                      kernel_initializer='he_normal',
                                      dtype=self.dtype_policy, name='expand')
    self.expand.build((None, 1, 1, self.squeezed_channels))

  def call(self, inputs):
    pooled = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
    gate = self.gating_fn(self.expand(self.inner_fn(self.reduce(pooled))))
    return inputs * gate

  def compute_output_shape(self, input_shape):
    return input_shape

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [('_se_reduce', self.reduce), ('_se_expand', self.expand)]

  def get_config(self):
    config = super().get_config()
    config.update(squeeze_from=self.squeeze_from, ratio=self.ratio,
                  inner_activation=self.inner_activation,
                  gating_activation=self.gating_activation)
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class SimplifiedSqueezeExcite(keras.layers.Layer):
  """x * hard_sigmoid(conv(mean(x))): one conv (Lee and Park, CenterMask).

  Input float [B, H, W, C]; output the same shape.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.conv = None

  def build(self, input_shape):
    self.conv = keras.layers.Conv2D(input_shape[-1], 1,
                                    dtype=self.dtype_policy, name='conv')
    self.conv.build((None, 1, 1, input_shape[-1]))

  def call(self, inputs):
    pooled = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
    return inputs * activations.hard_sigmoid(self.conv(pooled))

  def compute_output_shape(self, input_shape):
    return input_shape

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [('_se_conv', self.conv)]
