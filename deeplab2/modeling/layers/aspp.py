"""Atrous Spatial Pyramid Pooling (DeepLabv3)."""

import keras
import tensorflow as tf

from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization
from deeplab2.utils import resize


@keras.saving.register_keras_serializable(package='deeplab2')
class ASPP(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """Five branches (1x1, three 3x3 atrous, image pooling), concat, 1x1 project.

  With `use_only_1x1_proj_conv` it is the 1x1 branch alone. `conv_type`
  "depthwise_separable_conv" makes the atrous branches separable (as
  DeepLabv3+), "standard_conv" full 3x3 convs (as deeplab2).

  The image pooling is deeplab2's: an average over a `pool_size` window
  (fixed by the train crop) slid with stride 1 and no padding, then the
  1x1 conv, then an align-corners resize back to the feature map. A window
  that covers the whole feature map (or None) is a global mean. A side of
  the window longer than the map's is pooled whole (deeplab2 fails there).
  In training, `Dropout(dropout_rate)` follows the projection, as in
  deeplab2 (five-branch ASPP only).

  Input float [B, h, w, C]; output float [B, h, w, channels].
  """

  def __init__(self, channels, atrous_rates, use_only_1x1_proj_conv=False,
               bn_options=None, conv_type='standard_conv', pool_size=None,
               dropout_rate=0.1, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.atrous_rates = tuple(atrous_rates)
    self.use_only_1x1_proj_conv = use_only_1x1_proj_conv
    self.conv_type = conv_type
    self.pool_size = None if pool_size is None else tuple(
        int(side) for side in pool_size)
    self.dropout_rate = dropout_rate
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
      self.dropout = keras.layers.Dropout(dropout_rate, name='dropout')

  def build(self, input_shape):
    self.conv_1x1.build(input_shape)
    if self.use_only_1x1_proj_conv:
      return
    for conv in self.atrous_convs:
      conv.build(input_shape)
    self.pool_conv.build((input_shape[0], 1, 1, input_shape[-1]))
    self.projection.build(tuple(input_shape[:-1]) +
                          (self.channels * (2 + len(self.atrous_convs)),))

  def call(self, inputs, training=None, pool_scale=1.0):
    """`pool_scale` scales the pooling window as deeplab2 does for an input
    scaled by it (test-time augmentation): int((side - 1) * s + 1)."""
    x = self.conv_1x1(inputs, training=training)
    if self.use_only_1x1_proj_conv:
      return x
    branches = [x] + [conv(inputs, training=training)
                      for conv in self.atrous_convs]
    pooled = image_pooling(inputs, scaled_pool_size(self.pool_size,
                                                    pool_scale))
    pooled = self.pool_conv(pooled, training=training)
    size = keras.ops.shape(inputs)[1:3]
    branches.append(resize.resize_bilinear(pooled, size))
    x = self.projection(keras.ops.concatenate(branches, axis=-1),
                        training=training)
    return self.dropout(x, training=training)

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
                  pool_size=(None if self.pool_size is None else
                             list(self.pool_size)),
                  dropout_rate=self.dropout_rate,
                  bn_options=self.bn_options.to_config())
    return config


def feature_pool_size(crop_size, output_stride):
  """deeplab2's ASPP pooling window for a crop: int((side - 1) / os + 1).

  Args:
    crop_size: (height, width) of the train crop.
    output_stride: the backbone's output stride.

  Returns:
    (height, width) of the window on the feature map.
  """
  return tuple(int((side - 1) / output_stride + 1) for side in crop_size)


def scaled_pool_size(pool_size, scale):
  """The window for an input scaled by `scale` (None stays None)."""
  if pool_size is None or scale == 1.0:
    return pool_size
  return tuple(int((side - 1) * scale + 1) for side in pool_size)


def _pool_axis(x, axis, window):
  """Stride-1 'valid' average over `window` rows (axis 1) or columns
  (axis 2); the whole axis when it is not longer than the window."""
  def whole():
    return tf.reduce_mean(x, axis=axis, keepdims=True)

  def sliding():
    ksize = (window, 1) if axis == 1 else (1, window)
    return tf.nn.avg_pool2d(x, ksize, strides=1, padding='VALID')

  if window is None:
    return whole()
  length = x.shape[axis]
  if length is not None:
    return sliding() if length > window else whole()
  return tf.cond(tf.shape(x)[axis] > window, sliding, whole)


def image_pooling(features, pool_size):
  """deeplab2's ASPP image pooling before its 1x1 conv.

  An average over a `pool_size` window with stride 1 and no padding
  (separably, rows then columns: the same average); a side not shorter
  than the map's is averaged whole, so a window that covers the map, or
  None, is the global mean.

  Args:
    features: float [B, h, w, C].
    pool_size: (height, width) window, or None.

  Returns:
    float [B, h', w', C]: h' = h - window_h + 1 when h > window_h, else 1
    (w' alike).
  """
  window_h, window_w = pool_size if pool_size is not None else (None, None)
  return _pool_axis(_pool_axis(features, 1, window_h), 2, window_w)
