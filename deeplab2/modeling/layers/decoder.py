"""One Panoptic-DeepLab decoder branch: ASPP, then DeepLabv3+ fusion stages."""

import keras

from deeplab2.modeling.layers import aspp as aspp_lib
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization
from deeplab2.utils import resize


@keras.saving.register_keras_serializable(package='deeplab2')
class PanopticDeepLabDecoder(normalization.BatchNormConfigMixin,
                             keras.layers.Layer):
  """ASPP on the high-level feature, then one fusion stage per low level.

  Each stage projects its low-level feature with a 1x1 conv, upsamples the
  running feature to it (bilinear, align corners), concatenates both and
  fuses them with one 5x5 (separable) conv of `decoder_channels`.

  Call with a dict of backbone endpoints; returns float
  [B, h_last, w_last, decoder_channels] at the last low level's stride.
  """

  def __init__(self, high_level_key, low_level_keys, low_level_channels,
               aspp_channels, atrous_rates, decoder_channels,
               decoder_conv_type='depthwise_separable_conv',
               aspp_use_only_1x1_proj_conv=False, bn_options=None,
               aspp_conv_type='standard_conv', aspp_pool_size=None,
               aspp_dropout_rate=0.1, **kwargs):
    super().__init__(**kwargs)
    self.high_level_key = high_level_key
    self.low_level_keys = tuple(low_level_keys)
    self.low_level_channels = tuple(low_level_channels)
    self.aspp_channels = aspp_channels
    self.atrous_rates = tuple(atrous_rates)
    self.decoder_channels = decoder_channels
    self.decoder_conv_type = decoder_conv_type
    self.aspp_use_only_1x1_proj_conv = aspp_use_only_1x1_proj_conv
    self.aspp_conv_type = aspp_conv_type
    self.aspp_pool_size = aspp_pool_size
    self.aspp_dropout_rate = aspp_dropout_rate
    self.bn_options = bn_options or normalization.BatchNormOptions()
    if len(self.low_level_keys) != len(self.low_level_channels):
      raise ValueError(f'{len(self.low_level_keys)} low-level keys but '
                       f'{len(self.low_level_channels)} projection sizes.')
    self.aspp = aspp_lib.ASPP(aspp_channels, atrous_rates,
                              aspp_use_only_1x1_proj_conv, self.bn_options,
                              conv_type=aspp_conv_type,
                              pool_size=aspp_pool_size,
                              dropout_rate=aspp_dropout_rate, name='aspp')
    # Tuples, not lists: tf.train.Checkpoint does not see list attributes
    # of Keras 3 layers.
    self.projections = tuple(
        convolutions.ConvBnAct(c, 1, bn_options=self.bn_options,
                               name=f'low_level_conv{i + 1}')
        for i, c in enumerate(self.low_level_channels))
    self.fusions = tuple(
        convolutions.SeparableConvBnAct(decoder_channels, 5, decoder_conv_type,
                                        self.bn_options,
                                        name=f'fusion_conv{i + 1}')
        for i in range(len(self.low_level_channels)))

  def build(self, input_shape):
    self.aspp.build(input_shape[self.high_level_key])
    channels = self.aspp_channels
    for key, projection, fusion in zip(self.low_level_keys, self.projections,
                                       self.fusions):
      low_shape = input_shape[key]
      projection.build(low_shape)
      fusion.build(tuple(low_shape[:-1]) +
                   (channels + projection.filters,))
      channels = self.decoder_channels

  def call(self, features, training=None, pool_scale=1.0):
    x = self.aspp(features[self.high_level_key], training=training,
                  pool_scale=pool_scale)
    for key, projection, fusion in zip(self.low_level_keys, self.projections,
                                       self.fusions):
      low = projection(features[key], training=training)
      x = resize.resize_bilinear(x, keras.ops.shape(low)[1:3])
      x = fusion(keras.ops.concatenate([x, low], axis=-1), training=training)
    return x

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    children = [('_aspp', self.aspp)]
    children += [(f'_low_level_conv{i + 1}', p)
                 for i, p in enumerate(self.projections)]
    children += [(f'_fusion_conv{i + 1}/_conv1_bn_act', f)
                 for i, f in enumerate(self.fusions)]
    return children

  def get_config(self):
    config = super().get_config()
    config.update(
        high_level_key=self.high_level_key,
        low_level_keys=list(self.low_level_keys),
        low_level_channels=list(self.low_level_channels),
        aspp_channels=self.aspp_channels,
        atrous_rates=list(self.atrous_rates),
        decoder_channels=self.decoder_channels,
        decoder_conv_type=self.decoder_conv_type,
        aspp_use_only_1x1_proj_conv=self.aspp_use_only_1x1_proj_conv,
        aspp_conv_type=self.aspp_conv_type,
        aspp_pool_size=(None if self.aspp_pool_size is None else
                        list(self.aspp_pool_size)),
        aspp_dropout_rate=self.aspp_dropout_rate,
        bn_options=self.bn_options.to_config())
    return config
