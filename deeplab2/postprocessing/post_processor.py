"""The one post-processor used by evaluation, export and inference."""

import dataclasses

import tensorflow as tf

from deeplab2 import common
from deeplab2 import label_spec as label_spec_lib
from deeplab2.postprocessing import centers
from deeplab2.postprocessing import grouping
from deeplab2.postprocessing import merge
from deeplab2.utils import shapes
from deeplab2.utils import xla


# How TF's kernels compute the semantic argmax
# (PostProcessorOptions.semantic_argmax); the classes are the same, ties to
# the lower one.
# top_k(1): half the time of TF's ArgMax kernel, and the max comes with it.
TOP_K = 'top_k'
# argmax: TFLite's ArgMax takes a third of its TopK's time (44 against 130
# ms at 1025 x 2049, 19 classes); serving/tflite.py chooses it.
ARGMAX = 'argmax'
SEMANTIC_ARGMAX_FORMS = (TOP_K, ARGMAX)


@dataclasses.dataclass(frozen=True)
class PostProcessorOptions:
  """Plain values (EvaluatorOptions and the dataset's label spec).

  Attributes:
    label_spec: label_spec.LabelSpec (classes, thing ids, ignore label,
      label divisor).
    center_score_threshold: heatmap values <= this are never centers.
    nms_kernel: odd max-pool window of the center NMS.
    keep_k_centers: centers kept per image; -1 keeps all. Must be below
      label_spec.label_divisor: instance ids of a class run 1..divisor - 1
      (with -1, instances of a class past that become void).
    stuff_area_limit: stuff segments with fewer pixels become void.
    grouping_mode: one of grouping.MODES: grouping.LOOP (default) loops
      over the pixel chunks that hold thing pixels; EVERY_PIXEL and
      EVERY_PIXEL_MIN compute every chunk without a loop (fixed input size
      only), for the ONNX and OpenVINO models. All give the same maps.
    semantic_argmax: TOP_K (default) or ARGMAX, how TF's kernels (and
      TFLite's) compute the semantic argmax; under XLA and in the ONNX and
      OpenVINO models it is always argmax. The same maps either way.
  """
  label_spec: label_spec_lib.LabelSpec
  center_score_threshold: float = 0.1
  nms_kernel: int = 7
  keep_k_centers: int = 200
  stuff_area_limit: int = 0
  grouping_mode: str = grouping.LOOP
  semantic_argmax: str = TOP_K

  def __post_init__(self):
    if self.grouping_mode not in grouping.MODES:
      raise ValueError(f'grouping_mode={self.grouping_mode!r}: must be one '
                       f'of {", ".join(grouping.MODES)}.')
    if self.semantic_argmax not in SEMANTIC_ARGMAX_FORMS:
      raise ValueError(f'semantic_argmax={self.semantic_argmax!r}: must be '
                       f'one of {", ".join(SEMANTIC_ARGMAX_FORMS)}.')
    if not isinstance(self.label_spec, label_spec_lib.LabelSpec):
      raise TypeError('PostProcessorOptions.label_spec must be a '
                      f'deeplab2.label_spec.LabelSpec, got '
                      f'{type(self.label_spec).__name__}.')
    divisor = self.label_spec.label_divisor
    if self.keep_k_centers >= divisor:
      raise ValueError(
          f'keep_k_centers={self.keep_k_centers} can give one class '
          f'{self.keep_k_centers} instances, but label_divisor={divisor} '
          f'holds instance ids 1..{divisor - 1} only; keep_k_centers must '
          'be below label_divisor.')


class PanopticDeepLabPostProcessor:
  """Turns model outputs into semantic, instance and panoptic maps.

  Works on batches, with dynamic H and W, eagerly or in a tf.function.
  """

  def __init__(self, options):
    if options.keep_k_centers <= 0 and options.keep_k_centers != -1:
      raise ValueError('keep_k_centers must be positive or -1 (all), got '
                       f'{options.keep_k_centers}.')
    self.options = options

  def replaced(self, **changes) -> 'PanopticDeepLabPostProcessor':
    """A post-processor of these options changed (dataclasses.replace)."""
    return type(self)(dataclasses.replace(self.options, **changes))

  def __call__(self, outputs):
    """Post-processes a batch.

    Args:
      outputs: dict with semantic_logits float [B, H, W, C], and, for the
        panoptic maps, center_heatmap float [B, H, W] and offset_map
        float [B, H, W, 2].

    Returns:
      dict of semantic_pred, panoptic_pred, instance_pred (int32 [B, H, W]),
      and, with the instance branch,
      center_points int32 [B, K, 2], center_scores float32 [B, K] and
      instance_scores float32 [B, K] (0 for empty slots).
    """
    o = self.options
    spec = o.label_spec
    logits = tf.cast(outputs[common.PRED_SEMANTIC_LOGITS], tf.float32)
    # The loop grouping is the TF and TFLite path; the others are for the
    # ONNX and OpenVINO converters, which take fewer kernels.
    native = o.grouping_mode == grouping.LOOP
    semantic, max_logit = semantic_prediction(
        logits, by_top_k=native and o.semantic_argmax == TOP_K)
    result = {common.PRED_SEMANTIC: semantic}
    if common.PRED_CENTER_HEATMAP not in outputs:
      result[common.PRED_PANOPTIC] = spec.encode(semantic, 0)
      result[common.PRED_INSTANCE] = tf.zeros_like(semantic)
      return result
    points, scores = centers.find_centers(
        outputs[common.PRED_CENTER_HEATMAP], o.center_score_threshold,
        o.nms_kernel, o.keep_k_centers)
    offsets = outputs[common.PRED_OFFSET_MAP]
    num_centers = tf.shape(scores)[1]
    # Only the instance scores read it: with no center in the batch there
    # is no instance, and it is not computed. (The converters' graphs,
    # straight-line code, always compute it.)
    log_norm = log_normaliser(
        logits, max_logit, needed=tf.reduce_any(scores > 0) if native
        else True)

    single = semantic.shape[0] == 1

    def one_image(i):
      """[1, ...] maps of image i."""
      # One image at a time: peak memory does not grow with the batch.
      # x[i][None] (not x[i:i + 1]) keeps the static shape XLA needs; a batch
      # of one is taken whole, as TFLite copies an [i] slice element by
      # element.
      def image(x):
        return x if single else x[i][None]

      image_semantic = image(semantic)
      image_scores = image(scores)
      thing_mask = spec.is_thing(image_semantic)
      instance_index = grouping.group_pixels(
          image(points), image_scores, image(offsets),
          pixel_mask=thing_mask, mode=o.grouping_mode)
      panoptic, instance_pred, instance_class, instance_area = (
          merge.merge_semantic_and_instance(
              image_semantic, instance_index, num_centers, spec,
              o.stuff_area_limit, segment_minimum=native))
      score = instance_scores(logits, image(log_norm), i, instance_pred,
                              instance_class, instance_area, image_scores)
      return panoptic, instance_pred, score

    if single:
      # No loop for a batch of one: TFLite then needs no TensorList ops.
      panoptic, instance_pred, score = one_image(0)
    else:
      panoptic, instance_pred, score = tf.map_fn(
          lambda i: tuple(v[0] for v in one_image(i)),
          tf.range(tf.shape(semantic)[0]),
          fn_output_signature=(tf.int32, tf.int32, tf.float32),
          parallel_iterations=1)
    result.update({
        common.PRED_PANOPTIC: panoptic,
        common.PRED_INSTANCE: instance_pred,
        common.PRED_CENTER_POINTS: points,
        common.PRED_CENTER_SCORES: scores,
        common.PRED_INSTANCE_SCORES: score,
    })
    return result


_LOG_NORMALISER_ROWS = 64
# Under XLA a reduction over the classes, the minor axis, runs as a scalar
# loop per pixel on CPU; as one elementwise op per class slice it vectorises
# over the pixels (docs/postprocessing.md: 26 against 62 ms for 19 classes
# at 1025 x 2049). Up to this many classes (COCO panoptic's 133 included);
# above it, the reductions.
_MAX_CLASS_SLICES = 256


def semantic_prediction(logits, by_top_k=True):
  """The argmax over classes, in the fastest of its equal forms where it is
  traced.

  Args:
    logits: float32 [B, H, W, C].
    by_top_k: top_k(1) where TF's kernels run it; False: argmax (TFLite, and
      the ONNX and OpenVINO converters' graphs). XLA always takes argmax.

  Returns:
    int32 [B, H, W], the first class of the highest logit, and float32
    [B, H, W] that logit where it comes for free (top_k), else None.
  """
  if by_top_k and not xla.compiling_with_xla():
    # top_k(1) is the argmax (ties: the lower class, as argmax) in half
    # the time on CPU, and it gives the max that log_normaliser needs
    # (XLA's top_k is 20x slower than its argmax).
    return top_class(logits)
  return tf.argmax(logits, axis=-1, output_type=tf.int32), None


def top_class(logits):
  """top_k(1) over classes: the argmax and the max in one pass.

  Args:
    logits: float32 [B, H, W, C].

  Returns:
    int32 [B, H, W] the first class of the highest logit; float32
    [B, H, W] that logit.
  """
  top = tf.math.top_k(logits, k=1)
  return tf.squeeze(top.indices, -1), tf.squeeze(top.values, -1)


def log_normaliser(logits, max_logit=None, needed=True):
  """logsumexp over classes, computed for blocks of rows at a time.

  A plain reduce_logsumexp holds two [B, H, W, C] temporaries; blocks of
  _LOG_NORMALISER_ROWS rows keep them small. With a dynamic height (an
  exported model) it goes one image at a time instead. Under XLA the blocks
  are a loop's steps, each summing class slices (_MAX_CLASS_SLICES): the
  loop also keeps XLA from fusing the sums into the instance scores' pixel
  gather, where they ran one pixel at a time.

  Args:
    logits: float32 [B, H, W, C].
    max_logit: optional float32 [B, H, W], the max over classes, when
      known: one pass less, the same values as reduce_logsumexp.
    needed: True, or a bool scalar tensor: where False, zeros, and nothing
      is computed.

  Returns:
    float32 [B, H, W].
  """
  if (xla.compiling_with_xla() and logits.shape.is_fully_defined() and
      logits.shape[-1] <= _MAX_CLASS_SLICES):
    return _log_normaliser_by_class_slices(logits, needed)
  if needed is True:
    return _log_normaliser_in_blocks(logits, max_logit)
  return tf.cond(needed,
                 lambda: _log_normaliser_in_blocks(logits, max_logit),
                 lambda: tf.zeros(tf.shape(logits)[:3], tf.float32))


def _shifted_log_sum_exp(max_logit, sum_of_exps):
  """reduce_logsumexp's own formula: log(sum_of_exps(shift)) + shift, the
  shift being max_logit, 0 where it is not finite."""
  shift = tf.where(tf.math.is_finite(max_logit), max_logit, 0.0)
  return tf.math.log(sum_of_exps(shift)) + shift


def _log_normaliser_in_blocks(logits, max_logit):
  height = logits.shape[1]

  def block(block_logits, block_max):
    if block_max is None:
      block_max = tf.reduce_max(block_logits, axis=-1)
    return _shifted_log_sum_exp(block_max, lambda shift: tf.reduce_sum(
        tf.exp(block_logits - shift[..., None]), axis=-1))

  if height is None:
    if max_logit is None:
      return tf.map_fn(lambda image: block(image, None), logits,
                       parallel_iterations=1)
    return tf.map_fn(lambda args: block(*args), (logits, max_logit),
                     fn_output_signature=tf.float32, parallel_iterations=1)
  blocks = []
  for top in range(0, height, _LOG_NORMALISER_ROWS):
    rows = slice(top, top + _LOG_NORMALISER_ROWS)
    # One block after the other: run side by side, their temporaries
    # would all be held at once.
    with tf.control_dependencies(blocks[-1:]):
      blocks.append(block(logits[:, rows], None if max_logit is None
                          else max_logit[:, rows]))
  return tf.concat(blocks, axis=1)


def _log_normaliser_by_class_slices(logits, needed):
  """Under XLA (static shapes): a loop over blocks of rows, as many steps
  as blocks where `needed`, none otherwise; the last block ends at the last
  row (overlapping the one before), so that all have the same size."""
  batch, height, width, _ = logits.shape
  rows = min(_LOG_NORMALISER_ROWS, height)
  num_blocks = -(-height // rows)

  def block(i, blocks):
    top = tf.minimum(i * rows, height - rows)
    classes = tf.unstack(tf.slice(logits, [0, top, 0, 0],
                                  [batch, rows, width, logits.shape[-1]]),
                        axis=-1)
    highest = classes[0]
    for value in classes[1:]:
      highest = tf.maximum(highest, value)
    value = _shifted_log_sum_exp(highest, lambda shift: tf.add_n(
        [tf.exp(value - shift) for value in classes]))
    return i + 1, tf.tensor_scatter_nd_update(blocks, [[i]], value[None])

  steps = tf.where(needed, num_blocks, 0)
  _, blocks = tf.while_loop(
      lambda i, _: i < steps, block,
      (tf.constant(0), tf.zeros([num_blocks, batch, rows, width])),
      parallel_iterations=1)
  blocks = tf.transpose(blocks, [1, 0, 2, 3])
  leading = tf.reshape(blocks[:, :-1],
                       [batch, (num_blocks - 1) * rows, width])
  last_rows = height - (num_blocks - 1) * rows
  return tf.concat([leading, blocks[:, -1, rows - last_rows:]], axis=1)


def instance_scores(logits, log_norm, image_index, instance_pred,
                    instance_class, instance_area, center_scores):
  """Center score x mean probability of the instance's class in its mask.

  Args:
    logits: float32 [B', H, W, C], semantic logits of the whole batch.
    log_norm: float32 [1, H, W], log_normaliser(logits) of the image.
    image_index: int32 scalar, the image's index in `logits`.
    instance_pred: int32 [1, H, W], 1..K, 0 = no instance.
    instance_class: int32 [1, K].
    instance_area: int32 [1, K].
    center_scores: float32 [1, K].

  Returns:
    float32 [1, K], 0 for empty instances.
  """
  batch, height, width, num_classes = shapes.dims(logits)
  k = shapes.dims(instance_class)[1]
  # int32 indices when the batch's logits are known to fit, else int64.
  static_size = logits.shape.num_elements()
  index_dtype = (tf.int32 if static_size is not None and static_size < 2**31
                 else tf.int64)
  del batch
  # Flattened by reshapes: a [0] index is a slice that TFLite copies element
  # by element.
  instance_pred = tf.reshape(instance_pred, [-1])
  pixel_class = tf.gather(instance_class[0], tf.maximum(instance_pred - 1, 0))
  # Gather the one logit each pixel needs straight from the batch tensor,
  # without slicing out the image's [H, W, C] logits.
  num_pixels = tf.cast(height * width, index_dtype)
  pixel = tf.range(num_pixels, dtype=index_dtype)
  flat_index = ((tf.cast(image_index, index_dtype) * num_pixels + pixel) *
                tf.cast(num_classes, index_dtype) +
                tf.cast(pixel_class, index_dtype))
  pixel_logit = tf.gather(tf.reshape(logits, [-1]), flat_index)
  pixel_prob = tf.exp(pixel_logit - tf.reshape(log_norm, [-1]))
  # Pixels of no instance go to an extra segment, dropped: TF would drop a
  # segment id of -1, but ONNX's ScatterND, the converters' segment sum,
  # reads it as the last instance.
  segment = tf.where(instance_pred > 0, instance_pred - 1, k)
  prob_sum = tf.math.unsorted_segment_sum(pixel_prob, segment, k + 1)[:k]
  area = tf.cast(instance_area[0], tf.float32)
  return (center_scores[0] * tf.math.divide_no_nan(prob_sum, area))[None]
