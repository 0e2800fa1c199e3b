"""Optimizers by their config names, with clipping and loss scaling."""

import keras
import tensorflow as tf

from deeplab2 import registry

OPTIMIZERS = registry.Registry('optimizer')

# Batch-norm scales and offsets and biases are never decayed (as the L2 loss
# decays kernels only).
NOT_DECAYED = ('gamma', 'beta', 'bias')


class _SummedGradients:
  """Takes gradients that the caller already summed across replicas.

  Keras 3 sums the gradients across replicas after it clips them (so the
  clipping threshold would change with the replica count), and its
  LossScaleOptimizer checks only the first replica's gradients for
  overflow. Our trainer all-reduces first; this mixin keeps Keras from
  summing again.
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


class _AdamScalarsOncePerStep:
  """Keras 3's Adam update, with the step's scalars computed once per
  apply instead of once per variable.

  Keras computes the learning rate's cast, the beta powers and Adam's
  alpha for every variable: about ten scalar ops each, 40 % of the
  optimizer's ops, which every first trace of a training step builds and
  optimises. The element-wise arithmetic is Keras' own, op for op, so the
  weights are bit-for-bit the same (deeplab2's optimizer, Keras 2.15's
  unfused Adam, computes them so too; TF's fused ResourceApplyAdam rounds
  1 - beta_1 in float32 and differs in the last bit). AMSGrad and sparse
  gradients keep Keras' own update.
  """

  _step_scalars = None

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    self._step_scalars = {}
    try:
      super()._backend_update_step(grads, trainable_variables, learning_rate)
    finally:
      self._step_scalars = None

  def _scalars(self, dtype, learning_rate):
    """(lr, alpha) of `dtype` for this step, cached while the apply runs."""
    cache = {} if self._step_scalars is None else self._step_scalars
    if dtype not in cache:
      lr = tf.cast(learning_rate, dtype)
      step = tf.cast(self.iterations + 1, dtype)
      beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), step)
      beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), step)
      cache[dtype] = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    return cache[dtype]

  def update_step(self, gradient, variable, learning_rate):
    if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable, learning_rate)
    alpha = self._scalars(variable.dtype, learning_rate)
    gradient = tf.cast(gradient, variable.dtype)
    index = self._get_variable_index(variable)
    m = self._momentums[index].value
    v = self._velocities[index].value
    m.assign_add((gradient - m) * (1 - self.beta_1))
    v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
    variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))
    return None


def _summed(keras_class, *mixins):
  return type(keras_class.__name__,
              (_SummedGradients, *mixins, keras_class), {})


Adam = _summed(keras.optimizers.Adam, _AdamScalarsOncePerStep)
SGD = _summed(keras.optimizers.SGD)
AdamW = _summed(keras.optimizers.AdamW, _AdamScalarsOncePerStep)


@OPTIMIZERS.register('adam')
def _adam(learning_rate, decoupled_weight_decay, **kwargs):
  del decoupled_weight_decay  # Adam's decay is the L2 term of the loss.
  return Adam(learning_rate, **kwargs)


@OPTIMIZERS.register('sgd')
def _sgd(learning_rate, decoupled_weight_decay, **kwargs):
  del decoupled_weight_decay
  return SGD(learning_rate, momentum=0.9, **kwargs)


@OPTIMIZERS.register('adamw')
def _adamw(learning_rate, decoupled_weight_decay, **kwargs):
  optimizer = AdamW(learning_rate, weight_decay=decoupled_weight_decay,
                    **kwargs)
  optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
  return optimizer


def uses_decoupled_weight_decay(name):
  """Whether `name` decays weights itself (AdamW) instead of by an L2 loss."""
  return name == 'adamw'


def build_optimizer(name, learning_rate, decoupled_weight_decay=0.0,
                    clip_gradient_norm=None, loss_scaling=False):
  """A Keras optimizer by config name, for gradients already summed across
  replicas (see _SummedGradients): clipping sees the global gradient.

  Args:
    name: a name of OPTIMIZERS ('adam', 'sgd' with momentum 0.9, 'adamw').
    learning_rate: a float or a LearningRateSchedule.
    decoupled_weight_decay: AdamW's weight decay (other optimizers take
      their decay as an L2 loss term instead).
    clip_gradient_norm: global-norm clipping threshold, or None.
    loss_scaling: wrap it in a dynamic LossScaleOptimizer (float16 gradients
      underflow without it).

  Raises:
    KeyError: an unknown name (the message lists the valid ones).
  """
  kwargs = {}
  if clip_gradient_norm:
    kwargs['global_clipnorm'] = clip_gradient_norm
  optimizer = OPTIMIZERS.get(name)(learning_rate, decoupled_weight_decay,
                                   **kwargs)
  if loss_scaling:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer
