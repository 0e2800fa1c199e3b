"""Learning-rate schedules: poly or cosine decay after a linear warm-up."""

import math

import keras
import tensorflow as tf

# The `SolverOptions.learning_policy` names.
LEARNING_POLICIES = ('poly', 'cosine')


@keras.saving.register_keras_serializable(package='deeplab2')
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
  """deeplab2's schedule: linear warm-up from 0, then poly or cosine decay,
  both computed over all `total_steps` (not only those after the warm-up).

  lr(step) = base * step / warmup                         for step < warmup
           = end + (base - end) * (1 - t) ** power         poly
           = base * 0.5 * (1 + cos(pi t))                   cosine (to 0)
  with t = min(step, total) / total. At step == warmup the rate is the
  decay's value there, as in deeplab2 (a small step down from base).
  """

  def __init__(self, policy, base_rate, total_steps, warmup_steps=0,
               power=0.9, end_rate=0.0):
    if policy not in LEARNING_POLICIES:
      raise ValueError(f'Unknown learning policy "{policy}"; valid: '
                       f'{", ".join(LEARNING_POLICIES)}.')
    self.policy = policy
    self.base_rate = base_rate
    self.total_steps = total_steps
    self.warmup_steps = warmup_steps
    self.power = power
    self.end_rate = end_rate

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    t = tf.minimum(step, float(self.total_steps)) / max(self.total_steps, 1)
    if self.policy == 'poly':
      rate = self.end_rate + (self.base_rate - self.end_rate) * tf.pow(
          1.0 - t, self.power)
    else:
      rate = self.base_rate * 0.5 * (1.0 + tf.cos(math.pi * t))
    if self.warmup_steps > 0:
      warmup = self.base_rate * step / self.warmup_steps
      rate = tf.where(step < self.warmup_steps, warmup, rate)
    return rate

  def get_config(self):
    return {'policy': self.policy, 'base_rate': self.base_rate,
            'total_steps': self.total_steps,
            'warmup_steps': self.warmup_steps, 'power': self.power,
            'end_rate': self.end_rate}
