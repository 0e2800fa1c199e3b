"""Groups pixels to the nearest center of `pixel + offset`.

Memory stays bounded whatever the number of centers K: distances are
computed for chunks of `chunk_size` pixels at a time ([B, chunk, K]
floats), never for all pixels x all centers at once.
"""

import tensorflow as tf

DEFAULT_CHUNK_SIZE = 16384


def group_pixels(center_points, center_scores, offset_map,
                 chunk_size=DEFAULT_CHUNK_SIZE):
  """Assigns every pixel to its closest valid center.

  Args:
    center_points: int32 [B, K, 2], (y, x).
    center_scores: float [B, K]; slots with score 0 are not centers.
    offset_map: float [B, H, W, 2], (y, x) offsets in pixels.
    chunk_size: pixels per distance computation; peak extra memory is about
      B * chunk_size * K * 4 bytes.

  Returns:
    int32 [B, H, W]: 1 + the index of the closest center (squared Euclidean
    distance from pixel + offset), 0 when the image has no center. Ties go
    to the lower index (the higher score).
  """
  offset_map = tf.cast(offset_map, tf.float32)
  shape = tf.shape(offset_map)
  batch, height, width = shape[0], shape[1], shape[2]
  num_pixels = height * width
  grid = tf.cast(tf.stack(tf.meshgrid(tf.range(height), tf.range(width),
                                      indexing='ij'), axis=-1), tf.float32)
  voted = tf.reshape(grid[None] + offset_map, [batch, num_pixels, 2])
  num_chunks = (num_pixels + chunk_size - 1) // chunk_size
  voted = tf.pad(voted, [[0, 0], [0, num_chunks * chunk_size - num_pixels],
                         [0, 0]])
  # [num_chunks, B, chunk, 2]: map_fn walks the chunks one at a time.
  chunks = tf.transpose(tf.reshape(voted, [batch, num_chunks, chunk_size, 2]),
                        [1, 0, 2, 3])
  # A dummy, never valid, last slot keeps argmin defined when K is 0.
  centers = tf.pad(tf.cast(center_points, tf.float32),
                   [[0, 0], [0, 1], [0, 0]])[:, None, :, :]
  valid = tf.pad(center_scores > 0, [[0, 0], [0, 1]])[:, None, :]

  def nearest_in_chunk(chunk):
    distance = tf.reduce_sum(tf.square(chunk[:, :, None, :] - centers), -1)
    distance = tf.where(valid, distance, float('inf'))
    return tf.argmin(distance, axis=-1, output_type=tf.int32)

  nearest = tf.map_fn(nearest_in_chunk, chunks, parallel_iterations=1,
                      fn_output_signature=tf.TensorSpec([None, chunk_size],
                                                        tf.int32))
  nearest = tf.reshape(tf.transpose(nearest, [1, 0, 2]), [batch, -1])
  nearest = nearest[:, :num_pixels] + 1
  has_center = tf.reduce_any(center_scores > 0, axis=1)
  nearest = tf.where(has_center[:, None], nearest, 0)
  return tf.reshape(nearest, [batch, height, width])
