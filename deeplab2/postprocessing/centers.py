"""Center point NMS on the predicted center heatmap."""

import tensorflow as tf

from deeplab2.utils import xla


def find_centers(center_heatmap, threshold, nms_kernel, keep_k):
  """Keeps local maxima above a threshold, then the top k by score.

  A pixel is a center when its heatmap value is > threshold and equals the
  max-pool (kernel nms_kernel, stride 1) around it; equal neighbours on a
  plateau are all centers. Exactly min(k, number of centers) survive: ties
  in score keep the lower raster index. The survivors come in raster order,
  as deeplab2's `tf.where` lists them, so instance numbers and distance ties
  resolve as in deeplab2.

  Args:
    center_heatmap: float [B, H, W].
    threshold: float, scores <= threshold are never centers.
    nms_kernel: odd int, the max-pool window.
    keep_k: int, centers kept per image; -1 keeps all.

  Returns:
    center_points: int32 [B, K, 2], (y, x), in raster order.
    center_scores: float32 [B, K], 0 for the unused slots, which come last
      (K = keep_k, or the largest number of centers in the batch when keep_k
      is -1).
  """
  heatmap = tf.cast(center_heatmap, tf.float32)
  heatmap = tf.where(heatmap > threshold, heatmap, 0.0)
  # A k x k max-pool is a 1 x k pool of a k x 1 pool: same values, far less
  # work for the large kernels of Cityscapes (13) and COCO (41).
  if xla.compiling_with_xla():
    pooled = tf.nn.max_pool2d(heatmap[..., None], [nms_kernel, 1], 1, 'SAME')
    pooled = tf.squeeze(
        tf.nn.max_pool2d(pooled, [1, nms_kernel], 1, 'SAME'), -1)
  else:
    pooled = _max_pool_columns(heatmap, nms_kernel)
    pooled = tf.transpose(_max_pool_columns(tf.transpose(pooled, [0, 2, 1]),
                                            nms_kernel), [0, 2, 1])
  is_center = (heatmap > 0) & tf.equal(heatmap, pooled)
  scores = tf.where(is_center, heatmap, 0.0)
  shape = tf.shape(scores)
  flat_scores = tf.reshape(scores, [shape[0], -1])
  num_pixels = shape[1] * shape[2]
  if keep_k is None or keep_k < 0:
    k = tf.reduce_max(tf.reduce_sum(tf.cast(flat_scores > 0, tf.int32),
                                    axis=1))
  else:
    k = tf.minimum(keep_k, num_pixels)
  top_scores, top_indices = tf.math.top_k(flat_scores, k=k, sorted=True)
  # Raster order, unused slots (score 0) last.
  raster_key = tf.where(top_scores > 0, top_indices,
                        num_pixels + tf.range(k)[None, :])
  order = tf.argsort(raster_key, axis=1, stable=True)
  top_scores = tf.gather(top_scores, order, batch_dims=1)
  top_indices = tf.gather(top_indices, order, batch_dims=1)
  points = tf.stack([top_indices // shape[2], top_indices % shape[2]], axis=-1)
  if keep_k is not None and keep_k > 0:
    # Pad when the image has fewer pixels than keep_k, so K is static.
    padding = keep_k - k
    top_scores = tf.pad(top_scores, [[0, 0], [0, padding]])
    points = tf.pad(points, [[0, 0], [0, padding], [0, 0]])
    top_scores = tf.ensure_shape(top_scores, [None, keep_k])
    points = tf.ensure_shape(points, [None, keep_k, 2])
  return tf.cast(points, tf.int32), top_scores


def _max_pool_columns(values, kernel):
  """float [B, H, W]: the max over `kernel` rows around each pixel (SAME).

  Pooled as [B, H, 1, W], the columns as channels: TF's CPU kernels
  vectorise over channels, and a pool over one channel ran 2x (oneDNN) to
  25x (TF's own kernel) slower at 1025 x 2049. (XLA pools one channel
  fast, and the transposes around the row pass would cost it time.)
  """
  return tf.squeeze(tf.nn.max_pool2d(values[:, :, None, :], [kernel, 1], 1,
                                     'SAME'), 2)
