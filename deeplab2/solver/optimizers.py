"""Optimizers by their config names, with clipping and loss scaling."""

import keras

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


def _summed(keras_class):
  return type(keras_class.__name__, (_SummedGradients, keras_class), {})


Adam = _summed(keras.optimizers.Adam)
SGD = _summed(keras.optimizers.SGD)
AdamW = _summed(keras.optimizers.AdamW)


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
