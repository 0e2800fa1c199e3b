"""Drop path (stochastic depth) for residual branches."""

import math

import keras
import tensorflow as tf

SCHEDULES = ('constant', 'linear')


def keep_prob_for_stride(keep_prob, schedule, stride, beyond_stride,
                         num_stages=4):
  """The keep probability of a block working at `stride`.

  deeplab2's rule: blocks below `beyond_stride` always keep their path; the
  'linear' schedule goes from 1.0 at stage 0 (stride 2) to `keep_prob` at
  stage `num_stages` (stride 32); 'constant' uses `keep_prob` throughout.

  Raises:
    ValueError: an unknown schedule.
  """
  if schedule not in SCHEDULES:
    raise ValueError(f'Unknown drop_path_schedule "{schedule}"; valid: '
                     f'{", ".join(SCHEDULES)}.')
  if stride < beyond_stride:
    return 1.0
  if schedule == 'constant':
    return keep_prob
  stage = int(round(math.log2(stride) - 1))
  return 1.0 - (1.0 - keep_prob) * stage / num_stages


def drop_path(x, keep_prob, training, seed_generator=None):
  """Zeroes whole samples of a residual branch with probability 1 - keep.

  Args:
    x: float [B, ...] residual branch.
    keep_prob: python float in (0, 1].
    training: only drops while training; identity otherwise.
    seed_generator: the calling layer's keras.random.SeedGenerator (needed
      when anything is dropped): its state, a variable of the layer, is
      saved with the checkpoint, so a resumed run drops as the run it
      continues would have.

  Returns:
    x times a per-sample mask of 0 or 1 / keep_prob (same shape and dtype).
  """
  if not training or keep_prob >= 1.0:
    return x
  mask_shape = tf.concat([tf.shape(x)[:1], tf.ones([tf.rank(x) - 1],
                                                   tf.int32)], axis=0)
  random = keep_prob + keras.random.uniform(mask_shape, dtype=x.dtype,
                                            seed=seed_generator)
  return x * (tf.floor(random) / keep_prob)
