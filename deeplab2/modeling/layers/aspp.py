"""Atrous Spatial Pyramid Pooling (DeepLabv3)."""

import keras

from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization
from deeplab2.utils import resize


@keras.saving.register_keras_serializable(package='deeplab2')
class ASPP(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """Five branches (1x1, three 3x3 atrous, image pooling), concat, 1x1 project.

  With `use_only_1x1_proj_conv` it is the 1x1 branch alone. `conv_type`
  "depthwise_separable_conv" makes the atrous branches separable (as
  DeepLabv3+), "standard_conv" full 3x3 convs (as deeplab2).
  Input float [B, h, w, C]; output float [B, h, w, channels].
  """

  def __init__(self, channels, atrous_rates, use_only_1x1_proj_conv=False,
               bn_options=None, conv_type='standard_conv', **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.atrous_rates = tuple(atrous_rates)
    self.use_only_1x1_proj_conv = use_only_1x1_proj_conv
    self.conv_type = conv_type
    self.bn_options = bn_options or normalization.BatchNormOptions()
    bn = self.bn_options
    self.conv_1x1 = convolutions.ConvBnAct(channels, 1, bn_options=bn,
                                           name='conv_1x1')
    # Tuples, not lists: tf.train.Checkpoint does not see list attributes
    # of Keras 3 layers.
    self.atrous_convs = ()
    self.pool_conv = None
    self.projection = None
    if not use_only_1x1_proj_conv:
      self.atrous_convs = tuple(
          convolutions.SeparableConvBnAct(
              channels, 3, conv_type, bn_options=bn, dilation_rate=rate,
              name=f'atrous_conv{i + 1}')
          for i, rate in enumerate(self.atrous_rates))
      self.pool_conv = convolutions.ConvBnAct(channels, 1, bn_options=bn,
                                              name='pool_conv')
      self.projection = convolutions.ConvBnAct(channels, 1, bn_options=bn,
                                               name='projection')

  def build(self, input_shape):
    self.conv_1x1.build(input_shape)
    if self.use_only_1x1_proj_conv:
      return
    for conv in self.atrous_convs:
      conv.build(input_shape)
    self.pool_conv.build((input_shape[0], 1, 1, input_shape[-1]))
    self.projection.build(tuple(input_shape[:-1]) +
                          (self.channels * (2 + len(self.atrous_convs)),))

  def call(self, inputs, training=None):
    x = self.conv_1x1(inputs, training=training)
    if self.use_only_1x1_proj_conv:
      return x
    branches = [x] + [conv(inputs, training=training)
                      for conv in self.atrous_convs]
    pooled = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
    pooled = self.pool_conv(pooled, training=training)
    size = keras.ops.shape(inputs)[1:3]
    branches.append(resize.resize_bilinear(pooled, size))
    return self.projection(keras.ops.concatenate(branches, axis=-1),
                           training=training)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.channels,)

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    children = [('_conv_bn_act', self.conv_1x1)]
    if not self.use_only_1x1_proj_conv:
      if self.conv_type != 'standard_conv':
        raise NotImplementedError('deeplab2 names are known for standard_conv '
                                  'ASPP branches only.')
      children += [(f'_aspp_conv{i + 1}/_conv_bn_act', conv.standard)
                   for i, conv in enumerate(self.atrous_convs)]
      children += [('_aspp_pool/_conv_bn_act', self.pool_conv),
                   ('_proj_conv_bn_act', self.projection)]
    return children

  def get_config(self):
    config = super().get_config()
    config.update(channels=self.channels, atrous_rates=list(self.atrous_rates),
                  use_only_1x1_proj_conv=self.use_only_1x1_proj_conv,
                  conv_type=self.conv_type,
                  bn_options=self.bn_options.to_config())
    return config
