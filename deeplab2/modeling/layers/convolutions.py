"""Convolution + batch norm + activation blocks."""

import keras

from deeplab2.modeling.layers import normalization


@keras.saving.register_keras_serializable(package='deeplab2')
class ConvBnAct(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """Conv2D (no bias) -> BatchNorm -> optional ReLU.

  Input float [B, H, W, C_in]; output float [B, H', W', filters].
  """

  def __init__(self, filters, kernel_size=1, strides=1, dilation_rate=1,
               activation=True, bn_options=None, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.activation = activation
    self.bn_options = bn_options or normalization.BatchNormOptions()
    self.conv = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding='same',
        dilation_rate=dilation_rate, use_bias=False,
        kernel_initializer='he_normal', name='conv')
    self.batch_norm = self.bn_options.make('batch_norm')

  def build(self, input_shape):
    self.conv.build(input_shape)
    self.batch_norm.build(self.conv.compute_output_shape(input_shape))

  def call(self, inputs, training=None):
    x = self.batch_norm(self.conv(inputs), training=training)
    return keras.ops.relu(x) if self.activation else x

  def compute_output_shape(self, input_shape):
    return self.conv.compute_output_shape(input_shape)

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [('_conv', self.conv), ('_batch_norm', self.batch_norm)]

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  strides=self.strides, dilation_rate=self.dilation_rate,
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
               bn_options=None, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.conv_type = conv_type
    self.bn_options = bn_options or normalization.BatchNormOptions()
    if conv_type == 'standard_conv':
      self.standard = ConvBnAct(filters, kernel_size, bn_options=self.bn_options,
                                name='standard')
    elif conv_type == 'depthwise_separable_conv':
      self.depthwise_conv = keras.layers.DepthwiseConv2D(
          kernel_size, padding='same', use_bias=False,
          depthwise_initializer='he_normal', name='depthwise_conv')
      self.depthwise_bn = self.bn_options.make('depthwise_bn')
      self.pointwise = ConvBnAct(filters, 1, bn_options=self.bn_options,
                                 name='pointwise')
    else:
      raise ValueError(f'Unknown conv_type "{conv_type}"; valid: '
                       'depthwise_separable_conv, standard_conv.')

  def build(self, input_shape):
    if self.conv_type == 'standard_conv':
      self.standard.build(input_shape)
      return
    self.depthwise_conv.build(input_shape)
    self.depthwise_bn.build(input_shape)
    self.pointwise.build(input_shape)

  def call(self, inputs, training=None):
    if self.conv_type == 'standard_conv':
      return self.standard(inputs, training=training)
    x = self.depthwise_bn(self.depthwise_conv(inputs), training=training)
    return self.pointwise(keras.ops.relu(x), training=training)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.filters,)

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    if self.conv_type == 'standard_conv':
      raise NotImplementedError('deeplab2 names are known for '
                                'depthwise_separable_conv only.')
    return [('_depthwise/_depthwise_conv', self.depthwise_conv),
            ('_depthwise/_batch_norm', self.depthwise_bn),
            ('_pointwise', self.pointwise)]

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  conv_type=self.conv_type,
                  bn_options=self.bn_options.to_config())
    return config
