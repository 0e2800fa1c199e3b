"""Groups thing pixels to the nearest center of `pixel + offset`.

Memory stays bounded whatever the number of centers K, and work scales with
the number of thing pixels: each image's thing pixels are first compacted
(cumulative-sum positions, static shapes, so XLA compiles it), then their
distances to all centers are computed `chunk_size` pixels at a time, as
[chunk, K] tensors, never as pixels x centers at once. The ONNX and OpenVINO
models, whose runtimes cannot run that loop (or run it slowly), compute
every pixel chunk in straight-line code instead (MODES).
"""

import tensorflow as tf

from deeplab2.utils import shapes

DEFAULT_CHUNK_SIZE = 32768
# How the nearest centers are found (group_pixels' `mode`):
# a while loop over the chunks that hold masked pixels (TF, XLA, TFLite);
LOOP = 'loop'
# every pixel chunk, without a loop, nearest by ArgMin (ONNX Runtime);
EVERY_PIXEL = 'every_pixel'
# every pixel chunk, nearest by two minimum reductions (OpenVINO, which runs
# ArgMin as a TopK several times slower).
EVERY_PIXEL_MIN = 'every_pixel_min'
MODES = (LOOP, EVERY_PIXEL, EVERY_PIXEL_MIN)
# Slot counts the distances are computed over (each at most keep_k).
_CENTER_SLOT_SIZES = (32,)


def _nearest_in_image(points, scores, offsets, mask, chunk_size, mode):
  """One image: int32 [H, W], 1 + nearest center index on mask, else 0."""
  height, width, _ = shapes.dims(offsets)
  num_pixels = height * width
  grid = tf.cast(tf.stack(tf.meshgrid(tf.range(height), tf.range(width),
                                      indexing='ij'), axis=-1), tf.float32)
  voted = tf.reshape(grid + offsets, [num_pixels, 2])
  flat_mask = tf.reshape(mask, [num_pixels])
  has_center = tf.reduce_any(scores > 0)
  centers = tf.cast(points, tf.float32)
  # Invalid slots sit at infinity, so they never win.
  center_y = tf.where(scores > 0, centers[:, 0], float('inf'))
  center_x = centers[:, 1]
  keep = flat_mask & has_center
  if mode != LOOP:
    # Valid centers come first: the distances cover the slots up to the
    # last one, a dynamic size that these runtimes take without a cond.
    used = tf.maximum(tf.reduce_max(tf.where(
        scores > 0, tf.range(1, tf.shape(scores)[0] + 1), 0)), 1)
    return tf.reshape(_group_every_pixel(
        voted, keep, center_y[:used], center_x[:used], chunk_size,
        num_pixels, by_reductions=mode == EVERY_PIXEL_MIN), [height, width])
  # Without a center there is nothing to compute.
  count = tf.where(has_center, tf.reduce_sum(tf.cast(flat_mask, tf.int32)), 0)
  # compact[j] = pixel index of the j-th masked pixel (j < count).
  position = tf.where(flat_mask, tf.cumsum(tf.cast(flat_mask, tf.int32)) - 1,
                      num_pixels)
  # A segment sum places each pixel index at its position (unique for
  # masked pixels; the unmasked ones collect in the dropped extra slot). It
  # does what scatter_nd does here, several times faster on CPU.
  compact = tf.math.unsorted_segment_sum(tf.range(num_pixels), position,
                                         num_pixels + 1)[:num_pixels]
  num_slots = points.shape[0]
  if num_slots is None:
    return tf.reshape(_group_compacted(voted, compact, count, keep, center_y,
                                       center_x, chunk_size, num_pixels),
                      [height, width])
  # The distances cover the slots up to the last valid center, rounded up
  # to a few static sizes (XLA and TFLite need them static): 20 centers of
  # keep_k 200 compute 32 columns, not 200, in chunks as much longer.
  used = tf.reduce_max(tf.where(scores > 0, tf.range(1, num_slots + 1), 0))
  sizes = sorted({min(size, num_slots) for size in _CENTER_SLOT_SIZES} |
                 {num_slots})

  def grouped_by(index):
    size = sizes[index]
    chunk = chunk_size * max(1, num_slots // size)
    result = lambda: _group_compacted(  # pylint: disable=g-long-lambda
        voted, compact, count, keep, center_y[:size], center_x[:size],
        chunk, num_pixels)
    if index == len(sizes) - 1:
      return result()
    return tf.cond(used <= size, result, lambda: grouped_by(index + 1))

  full = grouped_by(0)
  return tf.reshape(full, [height, width])


def _squared_distances(points, center_y, center_x):
  """float [N, S]: squared distances of points float [N, 2] (y, x) to the
  centers (center_y, center_x: float [S])."""
  # squared_difference is (a - b) * (a - b), in one op instead of two.
  return (tf.math.squared_difference(points[:, 0:1], center_y[None, :]) +
          tf.math.squared_difference(points[:, 1:2], center_x[None, :]))


def _group_every_pixel(voted, keep, center_y, center_x, chunk_size,
                       num_pixels, by_reductions):
  """int32 [P]: 1 + the nearest center of each pixel where `keep`, else 0.

  Every chunk of `chunk_size` pixels in turn, in straight-line code: no
  loop, gather or scatter (runtimes that cannot run the loop, or run it
  slowly). voted: float [P, 2]; center_y, center_x: float [S]; P static.
  by_reductions: find the first slot at the minimum with two minimum
  reductions instead of ArgMin (the same slot, ties included).
  """
  if not isinstance(num_pixels, int):
    raise ValueError('Loop-free grouping needs a fixed input size (static '
                     'height and width).')
  num_slots = tf.cast(tf.shape(center_y)[0], tf.float32)
  slot = tf.range(num_slots)[None, :]
  nearest = []
  for start in range(0, num_pixels, chunk_size):
    distance = _squared_distances(voted[start:start + chunk_size], center_y,
                                  center_x)
    if by_reductions:
      closest = tf.reduce_min(distance, axis=-1, keepdims=True)
      # Slots farther than the closest move past the last slot; slot
      # numbers below 2 * S are exact in float32.
      farther = tf.cast(distance > closest, tf.float32)
      nearest.append(tf.cast(tf.reduce_min(slot + num_slots * farther,
                                            axis=-1), tf.int32))
    else:
      nearest.append(tf.argmin(distance, axis=-1, output_type=tf.int32))
  return tf.where(keep, tf.concat(nearest, axis=0) + 1, 0)


def _group_compacted(voted, compact, count, keep, center_y, center_x,
                     chunk_size, num_pixels):
  """int32 [P]: 1 + the nearest center of each of the first `count` pixels
  listed in `compact` (pixel indices), 0 elsewhere and where `keep` is
  False. voted: float [P, 2] (P = num_pixels); center_y, center_x: float
  [S]. A while loop goes over the chunks that hold listed pixels only."""
  num_chunks = (num_pixels + chunk_size - 1) // chunk_size
  compact = tf.pad(compact, [[0, num_chunks * chunk_size - num_pixels]])
  compact = tf.reshape(compact, [num_chunks, chunk_size])
  active_chunks = (count + chunk_size - 1) // chunk_size

  def nearest_in_chunk(i):
    distance = _squared_distances(tf.gather(voted, compact[i]), center_y,
                                  center_x)
    return tf.argmin(distance, axis=-1, output_type=tf.int32)

  # Writes into a preallocated tensor: no TensorList, so TFLite builtins
  # express it too.
  def body(i, nearest):
    return i + 1, tf.tensor_scatter_nd_update(nearest, [[i]],
                                              nearest_in_chunk(i)[None])

  _, nearest = tf.while_loop(
      lambda i, _: i < active_chunks, body,
      (tf.constant(0), tf.zeros([num_chunks, chunk_size], tf.int32)))
  # Scatter back: slots past `count` go to a dropped extra pixel.
  slot = tf.range(num_chunks * chunk_size)
  target = tf.where(slot < count, tf.reshape(compact, [-1]), num_pixels)
  full = tf.math.unsorted_segment_sum(tf.reshape(nearest, [-1]) + 1, target,
                                      num_pixels + 1)[:num_pixels]
  return tf.where(keep, full, 0)


def group_pixels(center_points, center_scores, offset_map, pixel_mask=None,
                 chunk_size=DEFAULT_CHUNK_SIZE, mode=LOOP):
  """Assigns each masked pixel to its closest valid center.

  Args:
    center_points: int32 [B, K, 2], (y, x).
    center_scores: float [B, K]; slots with score 0 are not centers.
    offset_map: float [B, H, W, 2], (y, x) offsets in pixels.
    pixel_mask: optional bool [B, H, W], the pixels to group (the thing
      pixels); all pixels when None.
    chunk_size: pixels per distance computation; extra memory is about
      chunk_size * K * 12 bytes per image at a time.
    mode: LOOP (default): a while loop over the chunks that hold masked
      pixels only; EVERY_PIXEL, EVERY_PIXEL_MIN: every pixel, without a loop
      (static height and width only), for the ONNX and OpenVINO models (see
      MODES). All three give the same map.

  Returns:
    int32 [B, H, W]: 1 + the index of the closest center (squared Euclidean
    distance from pixel + offset, in float32), 0 for unmasked pixels and in
    images with no center. Ties go to the lower index (the higher score).
  """
  offset_map = tf.cast(offset_map, tf.float32)
  if pixel_mask is None:
    pixel_mask = tf.ones(tf.shape(offset_map)[:3], tf.bool)
  if center_points.shape[1] == 0:
    return tf.zeros(tf.shape(offset_map)[:3], tf.int32)
  if offset_map.shape[0] == 1:
    return _nearest_in_image(center_points[0], center_scores[0],
                             offset_map[0], pixel_mask[0], chunk_size,
                             mode)[None]
  return tf.map_fn(
      lambda args: _nearest_in_image(*args, chunk_size, mode),
      (center_points, center_scores, offset_map, pixel_mask),
      fn_output_signature=tf.int32, parallel_iterations=1)
