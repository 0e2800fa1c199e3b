"""Groups pixels to the nearest center of `pixel + offset`."""

import tensorflow as tf


def group_pixels(center_points, center_scores, offset_map):
  """Assigns every pixel to its closest valid center.

  Args:
    center_points: int32 [B, K, 2], (y, x).
    center_scores: float [B, K]; slots with score 0 are not centers.
    offset_map: float [B, H, W, 2], (y, x) offsets in pixels.

  Returns:
    int32 [B, H, W]: 1 + the index of the closest center, 0 when the image
    has no center. Ties go to the lower index (the higher score).
  """
  offset_map = tf.cast(offset_map, tf.float32)
  shape = tf.shape(offset_map)
  batch, height, width = shape[0], shape[1], shape[2]
  grid = tf.cast(tf.stack(tf.meshgrid(tf.range(height), tf.range(width),
                                      indexing='ij'), axis=-1), tf.float32)
  voted = tf.reshape(grid[None] + offset_map, [batch, -1, 1, 2])
  centers = tf.cast(center_points, tf.float32)[:, None, :, :]
  distance = tf.reduce_sum(tf.square(voted - centers), axis=-1)
  valid = (center_scores > 0)[:, None, :]
  distance = tf.where(valid, distance, float('inf'))
  nearest = tf.argmin(distance, axis=-1, output_type=tf.int32) + 1
  has_center = tf.reduce_any(center_scores > 0, axis=1)
  nearest = tf.where(has_center[:, None], nearest, 0)
  return tf.reshape(nearest, [batch, height, width])
