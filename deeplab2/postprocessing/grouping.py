"""Groups thing pixels to the nearest center of `pixel + offset`.

Memory stays bounded whatever the number of centers K, and work scales with
the number of thing pixels: each image's thing pixels are first compacted
(listed by `where` in TF's kernels; under XLA, which needs static shapes,
by cumulative-sum positions), then their
distances are computed `chunk_size` pixels at a time, as [chunk, M]
tensors, never as pixels x centers at once. Above _FEW_CENTERS valid
centers, M is not K: a table of cells (CELL_SIZE pixels square) of the
plane the votes `pixel + offset` fall in lists, per cell, the centers that
can be nearest to some point of the cell (bounds on the distances prove the
others never are), and each pixel compares its vote with its cell's
candidates only. The ONNX and OpenVINO models, whose runtimes cannot run
that loop (or run it slowly), compare every pixel's vote with the
candidates of its cell, chunk after chunk in straight-line code, as many
columns as the fullest cell needs (MODES).
"""

import tensorflow as tf

from deeplab2.utils import shapes
from deeplab2.utils import xla

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
# Side, in pixels, of the cells of the candidate table (a power of two, so
# a vote's cell, floor(vote / CELL_SIZE), is exact in float32).
CELL_SIZE = 32
# The most columns each vote is compared with when the table is used (at
# most keep_k): under XLA, which needs static shapes, always this many.
_CANDIDATES = 32
# Up to this many centers, each vote is compared with every center (the
# table would cost more than it saves).
_FEW_CENTERS = 32
# A center is left out of a cell only when its least distance to the cell
# exceeds another center's greatest by this relative margin, far above
# float32 rounding (a few 1e-7): what is left out is never the nearest,
# nor tied with it, as computed.
_BOUND_MARGIN = 1e-5
# Cells around the image, for the votes that fall outside it.
_RING = 2


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
    # As many columns as the fullest cell has candidates: a dynamic size,
    # which these runtimes take without a cond (1 without a center).
    table = _CandidateTable(voted, flat_mask, center_y, center_x, height,
                            width)
    columns = tf.where(has_center, table.most_candidates, 1)
    nearest = table.nearest(columns, by_reductions=mode == EVERY_PIXEL_MIN)
    return tf.reshape(_group_every_pixel(voted, keep, nearest, chunk_size,
                                         num_pixels), [height, width])
  # Without a center there is nothing to compute.
  count = tf.where(has_center, tf.reduce_sum(tf.cast(flat_mask, tf.int32)), 0)
  compact = _compact_indices(flat_mask, num_pixels)
  num_slots = points.shape[0]

  few = _FEW_CENTERS if num_slots is None else min(_FEW_CENTERS, num_slots)
  every_slot = num_slots or few
  # 1 + the last valid slot: the slots after it are all invalid.
  used = tf.reduce_max(tf.where(scores > 0, tf.range(1, tf.shape(scores)[0]
                                                      + 1), 0))
  # XLA needs static shapes: each vote is compared with `size` columns, the
  # most there can be. TF's own kernels take the columns there are: the
  # used slots, or as many as the fullest cell has candidates (at 200
  # centers 10 instead of 32 in docs/postprocessing.md's benchmark). The
  # same distances, so the same nearest slot; chunks keep the length of
  # `size` columns, so memory stays bounded the same.
  dynamic = not xla.compiling_with_xla()

  def by_every_center(size):
    # Each vote against the used slots (under XLA the first `size`), in
    # chunks as much longer as `size` is below K.
    longer = max(1, every_slot // size) if isinstance(size, int) else 1
    columns = used if dynamic else size
    return lambda: _group_compacted(  # pylint: disable=g-long-lambda
        voted, compact, count, keep,
        _nearest_of(center_y[:columns], center_x[:columns]),
        chunk_size * longer, num_pixels)

  def by_candidates():
    table = _CandidateTable(voted, flat_mask, center_y, center_x, height,
                            width)
    size = min(_CANDIDATES, every_slot)
    columns = table.most_candidates if dynamic else size
    in_cells = lambda: _group_compacted(  # pylint: disable=g-long-lambda
        voted, compact, count, keep, table.nearest(columns),
        chunk_size * max(1, every_slot // size), num_pixels)
    # Where a cell holds more candidates, the table saves too little.
    return tf.cond(table.most_candidates <= size, in_cells,
                   by_every_center(num_slots or tf.shape(scores)[0]))

  if few == num_slots:
    return tf.reshape(by_every_center(few)(), [height, width])
  return tf.reshape(tf.cond(used <= few, by_every_center(few),
                            by_candidates), [height, width])


def _compact_indices(flat_mask, num_pixels):
  """int32 [P]: the indices of the masked pixels of flat_mask (bool [P]) in
  increasing order, then zeros.

  XLA needs static shapes: each masked pixel's position is a cumulative
  sum, and a segment sum places its index there (what scatter_nd does,
  several times faster on CPU). TF's own kernels list the indices with
  `where` in a fifth of that time (its cumsum alone took 13 ms for 2 M
  pixels on the AVX2-only EPYC); the zeros pad them to the same length.
  """
  if xla.compiling_with_xla():
    position = tf.where(flat_mask,
                        tf.cumsum(tf.cast(flat_mask, tf.int32)) - 1,
                        num_pixels)
    # The unmasked pixels collect in a dropped extra slot.
    return tf.math.unsorted_segment_sum(tf.range(num_pixels), position,
                                        num_pixels + 1)[:num_pixels]
  listed = tf.cast(tf.reshape(tf.where(flat_mask), [-1]), tf.int32)
  return tf.pad(listed, [[0, num_pixels - tf.shape(listed)[0]]])


def _nearest_of(center_y, center_x):
  """A function of votes float [N, 2] (y, x) to int32 [N], the slot of the
  nearest of the centers (center_y, center_x: float [S]); ties go to the
  lower slot."""
  return lambda points: _first_nearest(_squared_distances(points, center_y,
                                                          center_x))


class _CandidateTable:
  """Per cell of the votes' plane, the centers that can be nearest there.

  Cells are CELL_SIZE pixels square over the image and a ring of _RING
  cells around it; the outermost cells reach out to the farthest masked
  vote, so every vote falls in a cell. For a cell and a center, the least
  squared distance from the cell to the center bounds the distance from
  any vote in the cell from below, the greatest from above; a center whose
  lower bound exceeds the smallest upper bound (by _BOUND_MARGIN) is never
  nearest there. Invalid slots (center_y infinite) are never candidates
  where a valid center exists.

  Attributes:
    candidates: bool [cells, S], whether a center is a candidate of a cell.
    most_candidates: int32 scalar, the most candidates of any cell.
  """

  def __init__(self, voted, flat_mask, center_y, center_x, height, width):
    """voted: float [P, 2], flat_mask: bool [P], center_y, center_x: float
    [S] (invalid slots: center_y infinite)."""
    rows = (height + CELL_SIZE - 1) // CELL_SIZE + 2 * _RING
    cols = (width + CELL_SIZE - 1) // CELL_SIZE + 2 * _RING
    self._center_y, self._center_x = center_y, center_x
    inf = float('inf')
    # The extent of the masked votes (inf and -inf when there is none),
    # reduced along rows of [2, P]: four times faster than down [P, 2].
    # NaN and infinite votes (a broken network's) are left out, so that
    # they spoil no cell's bounds, only their own pixel's answer.
    by_axis = tf.transpose(voted)
    usable = flat_mask[None] & tf.math.is_finite(by_axis)
    lowest = tf.reduce_min(tf.where(usable, by_axis, inf), axis=1)
    highest = tf.reduce_max(tf.where(usable, by_axis, -inf), axis=1)
    low_y, high_y = _cell_edges(rows, lowest[0], highest[0])
    low_x, high_x = _cell_edges(cols, lowest[1], highest[1])
    least_y, greatest_y = _axis_bounds(low_y, high_y, center_y)
    least_x, greatest_x = _axis_bounds(low_x, high_x, center_x)
    # [rows, cols, S] squared-distance bounds of each cell to each center.
    lower = tf.square(least_y)[:, None, :] + tf.square(least_x)[None, :, :]
    upper = (tf.square(greatest_y)[:, None, :] +
             tf.square(greatest_x)[None, :, :])
    smallest_upper = tf.reduce_min(upper, axis=-1, keepdims=True)
    candidates = lower <= smallest_upper * (1.0 + _BOUND_MARGIN)
    self.candidates = tf.reshape(candidates, [rows * cols, -1])
    self._rows, self._cols = rows, cols
    self.most_candidates = tf.reduce_max(
        tf.reduce_sum(tf.cast(self.candidates, tf.int32), axis=1))

  def cell_of(self, points):
    """int32 [N]: the cell of each vote, float [N, 2] (y, x)."""
    # floor(vote / CELL_SIZE) + _RING, clipped before the cast so that far
    # votes do not overflow int32.
    cell = tf.floor(points / CELL_SIZE) + _RING
    cell = tf.clip_by_value(
        tf.where(tf.math.is_nan(cell), 0.0, cell), 0.0,
        tf.cast(tf.stack([self._rows - 1, self._cols - 1]), tf.float32))
    # tf.split, not [:, 0]: TFLite copies a column slice element by element.
    row, column = tf.split(tf.cast(cell, tf.int32), 2, axis=1)
    return tf.reshape(row * self._cols + column, [-1])

  def nearest(self, size, by_reductions=False):
    """A function of votes float [N, 2] (y, x) to int32 [N], the slot of
    the nearest center, comparing each vote with `size` slots of its cell
    (an int or int32 scalar tensor, at least most_candidates and at most
    the slots): the cell's candidates in slot order, then,
    where it has fewer, other slots, which are never nearest. Ties go to the
    lower slot, as against every center. by_reductions: see
    _first_nearest."""
    num_slots = tf.shape(self.candidates)[1]
    slot = tf.range(num_slots)[None, :]
    # The `size` smallest keys: the candidates' slots in order, then the
    # others' after num_slots.
    key = tf.where(self.candidates, slot, num_slots + slot)
    _, listed = tf.math.top_k(-key, k=size, sorted=True)
    listed_y = tf.gather(self._center_y, listed)
    listed_x = tf.gather(self._center_x, listed)
    flat_listed = tf.reshape(listed, [-1])

    def nearest_listed(points):
      cell = self.cell_of(points)
      # The same float32 distances as against every center.
      distance = _squared_distances(points, tf.gather(listed_y, cell),
                                    tf.gather(listed_x, cell))
      column = _first_nearest(distance, by_reductions)
      return tf.gather(flat_listed, cell * size + column)
    return nearest_listed


def _cell_edges(count, lowest, highest):
  """float [count] low and high edges of one axis's cells, the first
  _RING cells before 0; the first cell reaches down to `lowest`, the last
  up to `highest`."""
  low = tf.cast((tf.range(count) - _RING) * CELL_SIZE, tf.float32)
  high = low + CELL_SIZE
  first = tf.one_hot(0, count, on_value=True, off_value=False)
  last = tf.one_hot(count - 1, count, on_value=True, off_value=False)
  low = tf.where(first, tf.minimum(low, lowest), low)
  high = tf.where(last, tf.maximum(high, highest), high)
  return low, high


def _axis_bounds(low, high, center):
  """float [cells, S] least and greatest |coordinate - center| over each
  cell's span [low, high] of one axis; center float [S]."""
  low, high, center = low[:, None], high[:, None], center[None, :]
  least = tf.maximum(tf.maximum(low - center, center - high), 0.0)
  greatest = tf.maximum(tf.abs(center - low), tf.abs(center - high))
  return least, greatest


def _squared_distances(points, center_y, center_x):
  """float [N, S]: squared distances of points float [N, 2] (y, x) to the
  centers (center_y, center_x: float [S], the same for every point, or
  [N, S], each point's own)."""
  # squared_difference is (a - b) * (a - b), in one op instead of two;
  # tf.split takes the columns 3 times faster than slices in TFLite.
  point_y, point_x = tf.split(points, 2, axis=1)
  return (tf.math.squared_difference(point_y, center_y) +
          tf.math.squared_difference(point_x, center_x))


def _group_every_pixel(voted, keep, nearest, chunk_size, num_pixels):
  """int32 [P]: 1 + the nearest center of each pixel where `keep`, else 0.

  Every chunk of `chunk_size` pixels in turn, in straight-line code: no
  loop, compaction or scatter (runtimes that cannot run the loop, or run it
  slowly). voted: float [P, 2], P static; nearest: a function of votes
  float [N, 2] to their nearest slots, int32 [N].
  """
  if not isinstance(num_pixels, int):
    raise ValueError('Loop-free grouping needs a fixed input size (static '
                     'height and width).')
  slots = [nearest(voted[start:start + chunk_size])
           for start in range(0, num_pixels, chunk_size)]
  return tf.where(keep, tf.concat(slots, axis=0) + 1, 0)


def _first_nearest(distance, by_reductions=False):
  """int32 [N]: the first column of each row's minimum of distance float
  [N, M]. by_reductions: with two minimum reductions instead of ArgMin (the
  same column, ties included; OpenVINO runs ArgMin as a slower TopK)."""
  if not by_reductions:
    return tf.argmin(distance, axis=-1, output_type=tf.int32)
  columns = tf.cast(tf.shape(distance)[1], tf.float32)
  column = tf.range(columns)[None, :]
  closest = tf.reduce_min(distance, axis=-1, keepdims=True)
  # Columns farther than the closest move past the last one; numbers below
  # 2 * M are exact in float32.
  farther = tf.cast(distance > closest, tf.float32)
  return tf.cast(tf.reduce_min(column + columns * farther, axis=-1),
                 tf.int32)


def _group_compacted(voted, compact, count, keep, nearest, chunk_size,
                     num_pixels):
  """int32 [P]: 1 + the nearest center of each of the first `count` pixels
  listed in `compact` (pixel indices), 0 elsewhere and where `keep` is
  False. voted: float [P, 2] (P = num_pixels); nearest: a function of votes
  float [N, 2] to their nearest slots, int32 [N]. A while loop goes over
  the chunks that hold listed pixels only."""
  num_chunks = (num_pixels + chunk_size - 1) // chunk_size
  compact = tf.pad(compact, [[0, num_chunks * chunk_size - num_pixels]])
  compact = tf.reshape(compact, [num_chunks, chunk_size])
  active_chunks = (count + chunk_size - 1) // chunk_size

  def nearest_in_chunk(i):
    return nearest(tf.gather(voted, compact[i]))

  # Writes into a preallocated tensor: no TensorList, so TFLite builtins
  # express it too.
  def body(i, slots):
    return i + 1, tf.tensor_scatter_nd_update(slots, [[i]],
                                              nearest_in_chunk(i)[None])

  # One chunk at a time: chunks computed side by side would hold their
  # temporaries at once.
  _, slots = tf.while_loop(
      lambda i, _: i < active_chunks, body,
      (tf.constant(0), tf.zeros([num_chunks, chunk_size], tf.int32)),
      parallel_iterations=1)
  slots = tf.reshape(slots, [-1])
  compact = tf.reshape(compact, [-1])
  if xla.compiling_with_xla():
    # Scatter back: slots past `count` go to a dropped extra pixel.
    slot = tf.range(num_chunks * chunk_size)
    target = tf.where(slot < count, compact, num_pixels)
    full = tf.math.unsorted_segment_sum(slots + 1, target,
                                        num_pixels + 1)[:num_pixels]
  else:
    # The first `count` only: 3 against 17 ms for 2 M pixels, 42 % listed.
    full = tf.math.unsorted_segment_sum(slots[:count] + 1, compact[:count],
                                        num_pixels)
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
    # tf.squeeze, not [0]: TFLite copies a shrinking slice element by
    # element (24 ms for the offsets at 1025 x 2049).
    return _nearest_in_image(
        *(tf.squeeze(x, 0) for x in (center_points, center_scores, offset_map,
                                     pixel_mask)), chunk_size, mode)[None]
  return tf.map_fn(
      lambda args: _nearest_in_image(*args, chunk_size, mode),
      (center_points, center_scores, offset_map, pixel_mask),
      fn_output_signature=tf.int32, parallel_iterations=1)
