"""Per-sample weighted losses over pixels.

Each returns float32 [B]: a weighted mean over the pixels whose weight is
non-zero (SPEC "ours"), 0 for a sample with no such pixel. Weights are
float [B, H, W]; a zero weight removes a pixel from the loss and the count.
"""

import tensorflow as tf


def _count_nonzero(weights):
  return tf.reduce_sum(tf.cast(weights > 0, tf.float32), axis=[1, 2])


def bootstrapped_cross_entropy(labels, logits, weights, top_k_percent=1.0,
                               ignore_label=None):
  """Weighted softmax cross-entropy over the hardest pixels of each sample.

  Args:
    labels: int32 [B, H, W].
    logits: float [B, H, W, C].
    weights: float [B, H, W]; pixels labelled ignore_label get weight 0.
    top_k_percent: fraction in (0, 1] of each sample's weighted pixels kept,
      the ones with the largest weighted loss; k = ceil(fraction * count).
    ignore_label: optional void label.

  Returns:
    float32 [B]: sum of the k largest weighted losses / k.
  """
  logits = tf.cast(logits, tf.float32)
  weights = tf.cast(weights, tf.float32)
  num_classes = tf.shape(logits)[-1]
  valid = (labels >= 0) & (labels < num_classes)
  if ignore_label is not None:
    valid &= tf.not_equal(labels, ignore_label)
  weights = tf.where(valid, weights, 0.0)
  safe_labels = tf.where(valid, labels, 0)
  pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=safe_labels, logits=logits) * weights
  batch = tf.shape(labels)[0]
  flat_loss = tf.reshape(pixel_loss, [batch, -1])
  count = _count_nonzero(weights)
  if top_k_percent >= 1.0:
    return tf.reduce_sum(flat_loss, axis=1) / tf.maximum(count, 1.0)
  k = tf.math.ceil(count * top_k_percent)
  # Zero-weight pixels have loss 0 and sort last, so they never enter the
  # top k unless fewer than k pixels carry weight (then k = count anyway).
  sorted_loss = tf.sort(flat_loss, axis=1, direction='DESCENDING')
  rank = tf.cast(tf.range(tf.shape(flat_loss)[1]), tf.float32)
  kept = tf.cast(rank[None, :] < k[:, None], tf.float32)
  return tf.reduce_sum(sorted_loss * kept, axis=1) / tf.maximum(k, 1.0)


def weighted_mse(targets, predictions, weights):
  """Mean over weighted pixels of weight * (prediction - target)^2.

  Args:
    targets: float [B, H, W].
    predictions: float [B, H, W].
    weights: float [B, H, W].
  """
  weights = tf.cast(weights, tf.float32)
  error = tf.square(tf.cast(predictions, tf.float32) - targets) * weights
  return tf.reduce_sum(error, axis=[1, 2]) / tf.maximum(
      _count_nonzero(weights), 1.0)


def weighted_l1(targets, predictions, weights):
  """Mean over weighted pixels of weight * mean_c |prediction - target|.

  Args:
    targets: float [B, H, W, C], e.g. (y, x) offsets.
    predictions: float [B, H, W, C].
    weights: float [B, H, W].
  """
  weights = tf.cast(weights, tf.float32)
  error = tf.reduce_mean(
      tf.abs(tf.cast(predictions, tf.float32) - targets), axis=-1) * weights
  return tf.reduce_sum(error, axis=[1, 2]) / tf.maximum(
      _count_nonzero(weights), 1.0)
