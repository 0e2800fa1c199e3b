"""Switchable Atrous Convolution (Qiao et al., DetectoRS), deeplab2's form.

One kernel is applied at two atrous rates, r and 3r; a per-pixel switch
s = conv1x1(avg_pool5x5(x)) mixes them as s * conv_3r(x) + (1 - s) *
conv_r(x). Global-context layers (x + conv1x1(mean(x))) may wrap it.
"""

import keras
import tensorflow as tf

from deeplab2.modeling.layers import atrous


@keras.saving.register_keras_serializable(package='deeplab2')
class GlobalContext(keras.layers.Layer):
  """x + conv1x1(global_mean(x)); input and output float [B, H, W, C]."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.convolution = None

  def build(self, input_shape):
    self.convolution = keras.layers.Conv2D(
        input_shape[-1], 1, kernel_initializer='zeros',
        bias_initializer='zeros', dtype=self.dtype_policy,
        name='convolution')
    self.convolution.build((None, 1, 1, input_shape[-1]))

  def call(self, inputs):
    pooled = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
    return inputs + self.convolution(pooled)

  def compute_output_shape(self, input_shape):
    return input_shape

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [('convolution', self.convolution)]


@keras.saving.register_keras_serializable(package='deeplab2')
class SwitchableAtrousConv2D(keras.layers.Layer):
  """A stride-1 'same' conv (no bias) whose atrous rate is switched per pixel.

  Input float [B, H, W, C_in]; output float [B, H, W, filters].
  """

  def __init__(self, filters, kernel_size=3, dilation_rate=1, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.dilation_rate = dilation_rate
    self.kernel = None
    self.switch = keras.layers.Conv2D(1, 1, kernel_initializer='zeros',
                                      bias_initializer='zeros', name='switch')

  def build(self, input_shape):
    self.kernel = self.add_weight(
        name='kernel',
        shape=(self.kernel_size, self.kernel_size, input_shape[-1],
               self.filters),
        initializer='he_normal')
    self.switch.build(input_shape)

  def call(self, inputs):
    kernel = keras.ops.cast(self.kernel, inputs.dtype)
    # avg_pool 'SAME' averages over the valid pixels only, like deeplab2's
    # keras AveragePooling2D.
    switch = self.switch(tf.nn.avg_pool2d(inputs, 5, 1, 'SAME'))
    small = atrous.dilated_conv2d(inputs, kernel, self.dilation_rate)
    large = atrous.dilated_conv2d(inputs, kernel, 3 * self.dilation_rate)
    return switch * large + (1 - switch) * small

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.filters,)

  def deeplab2_variables(self):
    """(deeplab2 attribute, variable) pairs held by this layer itself."""
    return [('kernel', self.kernel)]

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [('_switch', self.switch)]

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  dilation_rate=self.dilation_rate)
    return config
