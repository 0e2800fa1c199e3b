"""The Panoptic-DeepLab Keras model: backbone, dual ASPP/decoder, three heads."""

import keras
import tensorflow as tf

from deeplab2 import common
from deeplab2.utils import resize


@keras.saving.register_keras_serializable(package='deeplab2')
class PanopticDeepLab(keras.Model):
  """Backbone + semantic branch (+ instance branch) with upsampled outputs.

  Call with float images [B, H, W, 3] in 0..255 (normalised inside to
  x / 127.5 - 1). Returns a dict, all float32 at the input size (or at
  `output_size`, which test-time augmentation uses to bring a scaled
  input's outputs straight back to the original size):
    semantic_logits [B, H, W, num_classes],
    center_heatmap [B, H, W] (raw regression, no activation),
    offset_map [B, H, W, 2] ((y, x) in input pixels);
  the last two only when the instance branch is built. `pool_scale` scales
  the ASPP pooling window with the input (test-time augmentation).
  """

  def __init__(self, backbone, semantic_decoder, semantic_head,
               instance_decoder=None, center_head=None, offset_head=None,
               **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self.semantic_decoder = semantic_decoder
    self.semantic_head = semantic_head
    self.instance_decoder = instance_decoder
    self.center_head = center_head
    self.offset_head = offset_head
    if (instance_decoder is None) != (center_head is None) or (
        center_head is None) != (offset_head is None):
      raise ValueError('The instance branch needs instance_decoder, '
                       'center_head and offset_head together.')

  @property
  def has_instance_branch(self):
    return self.instance_decoder is not None

  def call(self, images, training=None, output_size=None, pool_scale=1.0):
    size = (tf.shape(images)[1:3] if output_size is None else
            tf.convert_to_tensor(output_size, tf.int32))
    x = tf.cast(tf.cast(images, tf.float32) / 127.5 - 1.0, self.compute_dtype)
    features = self.backbone(x, training=training)
    semantic = self.semantic_decoder(features, training=training,
                                     pool_scale=pool_scale)
    logits = self.semantic_head(semantic, training=training)
    outputs = {common.PRED_SEMANTIC_LOGITS: resize.resize_bilinear(
        tf.cast(logits, tf.float32), size)}
    if self.has_instance_branch:
      instance = self.instance_decoder(features, training=training,
                                       pool_scale=pool_scale)
      center = tf.cast(self.center_head(instance, training=training),
                       tf.float32)
      offset = tf.cast(self.offset_head(instance, training=training),
                       tf.float32)
      # tf.squeeze, not [..., 0], which TFLite copies element by element.
      outputs[common.PRED_CENTER_HEATMAP] = tf.squeeze(
          resize.resize_bilinear(center, size), -1)
      outputs[common.PRED_OFFSET_MAP] = resize.resize_and_rescale_offsets(
          offset, size)
    return outputs

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py.

    deeplab2 saves each head's last 1x1 conv as a root of its own.
    """
    children = [('encoder', self.backbone),
                ('semantic_decoder', self.semantic_decoder),
                ('semantic_head_without_last_layer/_conv1_bn_act',
                 self.semantic_head.conv),
                ('semantic_last_layer', self.semantic_head.last_layer)]
    if self.has_instance_branch:
      children += [
          ('instance_decoder', self.instance_decoder),
          ('instance_center_head_without_last_layer/_conv1_bn_act',
           self.center_head.conv),
          ('instance_center_head_last_layer', self.center_head.last_layer),
          ('instance_regression_head_without_last_layer/_conv1_bn_act',
           self.offset_head.conv),
          ('instance_regression_head_last_layer',
           self.offset_head.last_layer)]
    return children

  def get_config(self):
    config = super().get_config()
    for name in ('backbone', 'semantic_decoder', 'semantic_head',
                 'instance_decoder', 'center_head', 'offset_head'):
      layer = getattr(self, name)
      config[name] = (None if layer is None else
                      keras.saving.serialize_keras_object(layer))
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for name in ('backbone', 'semantic_decoder', 'semantic_head',
                 'instance_decoder', 'center_head', 'offset_head'):
      if config.get(name) is not None:
        config[name] = keras.saving.deserialize_keras_object(config[name])
    return cls(**config)
