"""Prediction heads: a 5x5 (separable) conv, then a 1x1 conv with bias."""

import keras

from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization


@keras.saving.register_keras_serializable(package='deeplab2')
class PredictionHead(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """Input float [B, h, w, C]; output float [B, h, w, output_channels].

  The last 1x1 conv is a separate attribute (`last_layer`) so a checkpoint
  can restore everything but it when the class count differs.
  """

  def __init__(self, output_channels, head_channels,
               conv_type='depthwise_separable_conv', bias_initializer='zeros',
               bn_options=None, **kwargs):
    super().__init__(**kwargs)
    self.output_channels = output_channels
    self.head_channels = head_channels
    self.conv_type = conv_type
    self.bias_initializer = bias_initializer
    self.bn_options = bn_options or normalization.BatchNormOptions()
    self.conv = convolutions.SeparableConvBnAct(
        head_channels, 5, conv_type, self.bn_options, name='conv')
    self.last_layer = keras.layers.Conv2D(
        output_channels, 1, bias_initializer=bias_initializer,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        name='last_layer')

  def build(self, input_shape):
    self.conv.build(input_shape)
    self.last_layer.build(tuple(input_shape[:-1]) + (self.head_channels,))

  def call(self, inputs, training=None):
    return self.last_layer(self.conv(inputs, training=training))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.output_channels,)

  def get_config(self):
    config = super().get_config()
    config.update(output_channels=self.output_channels,
                  head_channels=self.head_channels, conv_type=self.conv_type,
                  bias_initializer=self.bias_initializer,
                  bn_options=self.bn_options.to_config())
    return config
