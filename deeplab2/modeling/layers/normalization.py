"""Batch-norm settings shared by every layer of one model."""

import dataclasses

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class BatchNormOptions:
  """Plain batch-norm values (SolverOptions in the config).

  Attributes:
    momentum: moving-average momentum (0.99 in the paper).
    epsilon: variance epsilon (0.001).
    synchronized: synchronise statistics across replicas.
  """
  momentum: float = 0.99
  epsilon: float = 0.001
  synchronized: bool = False

  def make(self, name):
    if self.synchronized:
      return keras.layers.BatchNormalization(
          momentum=self.momentum, epsilon=self.epsilon, synchronized=True,
          name=name)
    return FusedBatchNormalization(momentum=self.momentum,
                                   epsilon=self.epsilon, name=name)

  def to_config(self):
    return dataclasses.asdict(self)


class BatchNormConfigMixin:
  """Restores a `bn_options` dict of get_config() into BatchNormOptions."""

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    if isinstance(config.get('bn_options'), dict):
      config['bn_options'] = BatchNormOptions(**config['bn_options'])
    return cls(**config)


def inference_affine(batch_norm, training):
  """The batch norm's inference as one affine map, for folding into the
  convolution before it.

  Args:
    batch_norm: a keras BatchNormalization over the last axis.
    training: the `training` its call would get.

  Returns:
    (scale, offset), float32 [C] each, with batch_norm(x) equal to
    x * scale + offset up to float rounding; None where the layer would
    not compute that (training with batch statistics, renorm, another axis,
    a compute dtype other than float32, where folding would round
    differently from the layer).
  """
  if (training and batch_norm.trainable) or batch_norm.renorm:
    return None
  if batch_norm.axis not in (-1, 3) or batch_norm.compute_dtype != 'float32':
    return None
  scale = tf.math.rsqrt(
      tf.convert_to_tensor(batch_norm.moving_variance) + batch_norm.epsilon)
  if batch_norm.scale:
    scale *= tf.convert_to_tensor(batch_norm.gamma)
  offset = -tf.convert_to_tensor(batch_norm.moving_mean) * scale
  if batch_norm.center:
    offset += tf.convert_to_tensor(batch_norm.beta)
  return scale, offset


@keras.saving.register_keras_serializable(package='deeplab2')
class FusedBatchNormalization(keras.layers.BatchNormalization):
  """keras BatchNormalization whose training pass on [B, H, W, C] is TF's
  fused kernel (FusedBatchNormV3 and its fused gradient) instead of
  moments, normalisation and their gradients as a dozen element-wise ops.

  Same variables, configuration and values as Keras': the output is
  normalised by the batch's biased variance, and the moving variance moves
  towards it (the kernel reports the Bessel-corrected one, scaled back
  here). Inference, masks, renorm and other ranks or axes take Keras' path.
  """

  def call(self, inputs, training=None, mask=None):
    if (not (training and self.trainable) or mask is not None or
        self.renorm or not (self.scale and self.center) or
        len(inputs.shape) != 4 or self.axis not in (3, -1)):
      return super().call(inputs, training=training, mask=mask)
    inputs = tf.cast(inputs, tf.float32)
    empty = tf.constant([], tf.float32)
    outputs, mean, corrected_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=tf.cast(self.gamma, tf.float32),
        offset=tf.cast(self.beta, tf.float32), mean=empty, variance=empty,
        epsilon=self.epsilon, exponential_avg_factor=1.0,
        data_format='NHWC', is_training=True)
    count = tf.cast(tf.size(inputs) // tf.shape(inputs)[3], tf.float32)
    variance = corrected_variance * ((count - 1.0) / count)
    self.moving_mean.assign(self.moving_mean * self.momentum +
                            mean * (1.0 - self.momentum))
    self.moving_variance.assign(self.moving_variance * self.momentum +
                                variance * (1.0 - self.momentum))
    return tf.cast(outputs, self.compute_dtype)
