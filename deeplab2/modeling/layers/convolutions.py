"""Convolution + batch norm + activation blocks.

Strided convolutions pad like deeplab2 (and TF-slim): (k_eff - 1) // 2
zeros before and the rest after, whatever the input size, where Keras
'same' would put the extra zero before only on even inputs. The output size
is ceil(n / stride) either way; only the alignment differs.
"""

import keras
import tensorflow as tf

from deeplab2.modeling.layers import activations
from deeplab2.modeling.layers import atrous
from deeplab2.modeling.layers import depthwise
from deeplab2.modeling.layers import normalization
from deeplab2.modeling.layers import switchable_atrous as sac


# The config's `*_conv_type` names (SeparableConvBnAct's conv_type).
CONV_TYPES = ('depthwise_separable_conv', 'standard_conv')


def fixed_padding(inputs, kernel_size, dilation_rate=1):
  """Zero-pads H and W of float [B, H, W, C] for a 'valid' strided conv."""
  effective = kernel_size + (kernel_size - 1) * (dilation_rate - 1)
  begin = (effective - 1) // 2
  end = effective - 1 - begin
  return keras.ops.pad(inputs, [[0, 0], [begin, end], [begin, end], [0, 0]])


def _strided_output_shape(input_shape, strides, channels):
  def size(n):
    return None if n is None else -(-n // strides)
  return (input_shape[0], size(input_shape[1]), size(input_shape[2]),
          channels)


@keras.saving.register_keras_serializable(package='deeplab2')
class ConvBnAct(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """Conv2D (no bias) -> BatchNorm -> activation.

  With `switchable_atrous` (stride 1 only) the conv is a
  SwitchableAtrousConv2D between two global-context layers; with stride > 1
  those context layers stay and the conv is a plain one, as in deeplab2.
  Input float [B, H, W, C_in]; output float [B, ceil(H / s), ceil(W / s),
  filters].
  """

  def __init__(self, filters, kernel_size=1, strides=1, dilation_rate=1,
               activation='relu', switchable_atrous=False, bn_options=None,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.activation = activation
    self.activation_fn = activations.get(activation)
    self.switchable_atrous = switchable_atrous
    self.bn_options = bn_options or normalization.BatchNormOptions()
    self.pre_global_context = None
    self.post_global_context = None
    if switchable_atrous:
      self.pre_global_context = sac.GlobalContext(
          name='pre_global_context')
      self.post_global_context = sac.GlobalContext(
          name='post_global_context')
    if switchable_atrous and strides == 1:
      self.conv = sac.SwitchableAtrousConv2D(
          filters, kernel_size, dilation_rate, name='conv')
    else:
      conv_class = (atrous.AtrousConv2D if strides == 1 and dilation_rate > 1
                    else keras.layers.Conv2D)
      self.conv = conv_class(
          filters, kernel_size, strides=strides,
          padding='same' if strides == 1 else 'valid',
          dilation_rate=dilation_rate, use_bias=False,
          kernel_initializer='he_normal', name='conv')
    self.batch_norm = self.bn_options.make('batch_norm')

  def build(self, input_shape):
    if self.pre_global_context is not None:
      self.pre_global_context.build(input_shape)
    # Only the channels matter; a strided conv sees the padded size anyway.
    self.conv.build((None, None, None, input_shape[-1]))
    output_shape = self.compute_output_shape(input_shape)
    if self.post_global_context is not None:
      self.post_global_context.build(output_shape)
    self.batch_norm.build(output_shape)

  def call(self, inputs, training=None):
    x = inputs
    if self.pre_global_context is not None:
      x = self.pre_global_context(x)
    if self.strides > 1:
      x = fixed_padding(x, self.kernel_size, self.dilation_rate)
    affine = None
    if self.post_global_context is None and isinstance(
        self.conv, keras.layers.Conv2D):
      affine = normalization.inference_affine(self.batch_norm, training)
    if affine is not None:
      # Inference with the batch norm folded into the kernel: TF fuses
      # the convolution, bias and ReLU into one kernel, where the batch
      # norm alone would take two passes over the output.
      scale, offset = affine
      x = self.conv.convolution_op(x, self.conv.kernel * scale)
      x = tf.nn.bias_add(x, offset)
      return self.activation_fn(x)
    x = self.conv(x)
    if self.post_global_context is not None:
      x = self.post_global_context(x)
    return self.activation_fn(self.batch_norm(x, training=training))

  def compute_output_shape(self, input_shape):
    return _strided_output_shape(input_shape, self.strides, self.filters)

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    children = [('_conv', self.conv), ('_batch_norm', self.batch_norm)]
    if self.pre_global_context is not None:
      children += [('_pre_global_context', self.pre_global_context),
                   ('_post_global_context', self.post_global_context)]
    return children

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  strides=self.strides, dilation_rate=self.dilation_rate,
                  activation=self.activation,
                  switchable_atrous=self.switchable_atrous,
                  bn_options=self.bn_options.to_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class DepthwiseConvBnAct(normalization.BatchNormConfigMixin,
                         keras.layers.Layer):
  """DepthwiseConv2D (no bias) -> BatchNorm -> activation.

  Input float [B, H, W, C]; output float [B, ceil(H / s), ceil(W / s), C].
  """

  def __init__(self, kernel_size=3, strides=1, dilation_rate=1,
               activation='relu', bn_options=None, **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.activation = activation
    self.activation_fn = activations.get(activation)
    self.bn_options = bn_options or normalization.BatchNormOptions()
    self.depthwise_conv = depthwise.DepthwiseConv2D(
        kernel_size, strides=strides,
        padding='same' if strides == 1 else 'valid',
        dilation_rate=dilation_rate, use_bias=False,
        depthwise_initializer='he_normal', name='depthwise_conv')
    self.batch_norm = self.bn_options.make('batch_norm')

  def build(self, input_shape):
    self.depthwise_conv.build((None, None, None, input_shape[-1]))
    self.batch_norm.build(self.compute_output_shape(input_shape))

  def call(self, inputs, training=None):
    x = inputs
    if self.strides > 1:
      x = fixed_padding(x, self.kernel_size, self.dilation_rate)
    affine = normalization.inference_affine(self.batch_norm, training)
    if affine is not None:
      # As in ConvBnAct: the batch norm folded into the kernel.
      scale, offset = affine
      x = self.depthwise_conv.convolve(
          x, self.depthwise_conv.kernel * tf.reshape(scale, [1, 1, -1, 1]))
      return self.activation_fn(tf.nn.bias_add(x, offset))
    x = self.batch_norm(self.depthwise_conv(x), training=training)
    return self.activation_fn(x)

  def compute_output_shape(self, input_shape):
    return _strided_output_shape(input_shape, self.strides, input_shape[-1])

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [('_depthwise_conv', self.depthwise_conv),
            ('_batch_norm', self.batch_norm)]

  def get_config(self):
    config = super().get_config()
    config.update(kernel_size=self.kernel_size, strides=self.strides,
                  dilation_rate=self.dilation_rate,
                  activation=self.activation,
                  bn_options=self.bn_options.to_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class SeparableConvBnAct(normalization.BatchNormConfigMixin,
                         keras.layers.Layer):
  """Depthwise k x k -> BN -> ReLU -> pointwise 1 x 1 -> BN -> ReLU.

  With conv_type "standard_conv" it is one k x k ConvBnAct instead.
  Input float [B, H, W, C_in]; output float [B, H, W, filters].
  """

  def __init__(self, filters, kernel_size=5, conv_type='depthwise_separable_conv',
               bn_options=None, dilation_rate=1, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.conv_type = conv_type
    self.dilation_rate = dilation_rate
    self.bn_options = bn_options or normalization.BatchNormOptions()
    if conv_type == 'standard_conv':
      self.standard = ConvBnAct(filters, kernel_size,
                                dilation_rate=dilation_rate,
                                bn_options=self.bn_options, name='standard')
    elif conv_type == 'depthwise_separable_conv':
      self.depthwise = DepthwiseConvBnAct(kernel_size,
                                          dilation_rate=dilation_rate,
                                          bn_options=self.bn_options,
                                          name='depthwise')
      self.pointwise = ConvBnAct(filters, 1, bn_options=self.bn_options,
                                 name='pointwise')
    else:
      raise ValueError(f'Unknown conv_type "{conv_type}"; valid: '
                       f'{", ".join(CONV_TYPES)}.')

  def build(self, input_shape):
    if self.conv_type == 'standard_conv':
      self.standard.build(input_shape)
      return
    self.depthwise.build(input_shape)
    self.pointwise.build(input_shape)

  def call(self, inputs, training=None):
    if self.conv_type == 'standard_conv':
      return self.standard(inputs, training=training)
    x = self.depthwise(inputs, training=training)
    return self.pointwise(x, training=training)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.filters,)

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    if self.conv_type == 'standard_conv':
      raise NotImplementedError('deeplab2 names are known for '
                                'depthwise_separable_conv only.')
    return [('_depthwise', self.depthwise), ('_pointwise', self.pointwise)]

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  conv_type=self.conv_type, dilation_rate=self.dilation_rate,
                  bn_options=self.bn_options.to_config())
    return config
