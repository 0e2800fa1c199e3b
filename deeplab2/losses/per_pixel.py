"""Per-sample weighted losses over pixels, normalised as deeplab2 does.

Each loss is a per-pixel loss times a per-pixel weight, reduced per sample
by `average_top_k`: keep the k largest values, k = round(fraction * all
pixels of the crop) (ignore and padding pixels included), and divide their
sum by how many of them are non-zero (0 when none is). So the denominator
counts non-zero weighted losses, not weights: a small-instance weight of 3
enlarges the numerator only, and a pixel whose loss is exactly 0 drops out
(deeplab2's `compute_average_top_k_loss`, SPEC "Losses").
"""

import tensorflow as tf


def average_top_k(pixel_loss, top_k_percent=1.0):
  """Mean of the non-zero values among each sample's k largest.

  Args:
    pixel_loss: float32 [B, ...], weighted per-pixel losses (>= 0).
    top_k_percent: fraction in (0, 1] of each sample's values kept; 1.0
      keeps them all.

  Returns:
    float32 [B]: sum of the kept values / number of non-zero kept values,
    0 for a sample without any.
  """
  flat = tf.reshape(pixel_loss, [tf.shape(pixel_loss)[0], -1])
  if top_k_percent < 1.0:
    # tf.round is half to even, in float32, as deeplab2 computes k.
    k = tf.cast(tf.round(top_k_percent * tf.cast(tf.shape(flat)[1],
                                                 tf.float32)), tf.int32)
    flat = tf.math.top_k(flat, k, sorted=False).values
  num_non_zero = tf.reduce_sum(tf.cast(tf.not_equal(flat, 0.0), tf.float32),
                               axis=1)
  return tf.math.divide_no_nan(tf.reduce_sum(flat, axis=1), num_non_zero)


def bootstrapped_cross_entropy(labels, logits, weights, top_k_percent=1.0,
                               ignore_label=None):
  """Weighted softmax cross-entropy over the hardest pixels of each sample.

  Args:
    labels: int32 [B, H, W].
    logits: float [B, H, W, C].
    weights: float [B, H, W]; the loss itself gives weight 0 to pixels
      labelled ignore_label or outside 0..C-1.
    top_k_percent: fraction in (0, 1] of all pixels of the crop kept, the
      ones with the largest weighted loss (see average_top_k).
    ignore_label: optional void label.

  Returns:
    float32 [B].
  """
  logits = tf.cast(logits, tf.float32)
  num_classes = tf.shape(logits)[-1]
  valid = (labels >= 0) & (labels < num_classes)
  if ignore_label is not None:
    valid &= tf.not_equal(labels, ignore_label)
  weights = tf.where(valid, tf.cast(weights, tf.float32), 0.0)
  pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.where(valid, labels, 0), logits=logits) * weights
  return average_top_k(pixel_loss, top_k_percent)


def weighted_mse(targets, predictions, weights, top_k_percent=1.0):
  """Average of weight * (prediction - target)^2 (see average_top_k).

  Args:
    targets: float [B, H, W].
    predictions: float [B, H, W].
    weights: float [B, H, W].
    top_k_percent: fraction of the pixels kept.
  """
  error = tf.square(tf.cast(predictions, tf.float32) - targets)
  return average_top_k(error * tf.cast(weights, tf.float32), top_k_percent)


def weighted_l1(targets, predictions, weights, top_k_percent=1.0):
  """Average of weight * mean_c |prediction - target| (see average_top_k).

  Args:
    targets: float [B, H, W, C], e.g. (y, x) offsets.
    predictions: float [B, H, W, C].
    weights: float [B, H, W].
    top_k_percent: fraction of the pixels kept.
  """
  error = tf.reduce_mean(
      tf.abs(tf.cast(predictions, tf.float32) - targets), axis=-1)
  return average_top_k(error * tf.cast(weights, tf.float32), top_k_percent)
