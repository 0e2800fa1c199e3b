"""Optimizers by their config names, with clipping and loss scaling."""

import keras

from deeplab2 import registry

OPTIMIZERS = registry.Registry('optimizer')


@OPTIMIZERS.register('adam')
def _adam(learning_rate, decoupled_weight_decay, **kwargs):
  del decoupled_weight_decay  # Adam's decay is the L2 term of the loss.
  return keras.optimizers.Adam(learning_rate, **kwargs)


@OPTIMIZERS.register('sgd')
def _sgd(learning_rate, decoupled_weight_decay, **kwargs):
  del decoupled_weight_decay
  return keras.optimizers.SGD(learning_rate, momentum=0.9, **kwargs)


@OPTIMIZERS.register('adamw')
def _adamw(learning_rate, decoupled_weight_decay, **kwargs):
  return keras.optimizers.AdamW(
      learning_rate, weight_decay=decoupled_weight_decay, **kwargs)


def uses_decoupled_weight_decay(name):
  """Whether `name` decays weights itself (AdamW) instead of by an L2 loss."""
  return name == 'adamw'


def build_optimizer(name, learning_rate, decoupled_weight_decay=0.0,
                    clip_gradient_norm=None, loss_scaling=False):
  """A Keras optimizer by config name.

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
