"""The one post-processor used by evaluation, export and inference."""

import dataclasses

import tensorflow as tf

from deeplab2 import common
from deeplab2.postprocessing import centers
from deeplab2.postprocessing import grouping
from deeplab2.postprocessing import merge


@dataclasses.dataclass(frozen=True)
class PostProcessorOptions:
  """Plain values (EvaluatorOptions and the dataset descriptor).

  Attributes:
    num_classes: semantic classes.
    thing_class_ids: classes with instances.
    label_divisor: panoptic = class * label_divisor + instance.
    ignore_label: void class.
    center_score_threshold: heatmap values <= this are never centers.
    nms_kernel: odd max-pool window of the center NMS.
    keep_k_centers: centers kept per image; -1 keeps all.
    stuff_area_limit: stuff segments with fewer pixels become void.
  """
  num_classes: int
  thing_class_ids: tuple
  label_divisor: int
  ignore_label: int
  center_score_threshold: float = 0.1
  nms_kernel: int = 7
  keep_k_centers: int = 200
  stuff_area_limit: int = 0


class PanopticDeepLabPostProcessor:
  """Turns model outputs into semantic, instance and panoptic maps.

  Works on batches, with dynamic H and W, eagerly or in a tf.function.
  """

  def __init__(self, options):
    if options.keep_k_centers <= 0 and options.keep_k_centers != -1:
      raise ValueError('keep_k_centers must be positive or -1 (all), got '
                       f'{options.keep_k_centers}.')
    self.options = options

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
    logits = tf.cast(outputs[common.PRED_SEMANTIC_LOGITS], tf.float32)
    semantic = tf.argmax(logits, axis=-1, output_type=tf.int32)
    result = {common.PRED_SEMANTIC: semantic}
    if common.PRED_CENTER_HEATMAP not in outputs:
      result[common.PRED_PANOPTIC] = semantic * o.label_divisor
      result[common.PRED_INSTANCE] = tf.zeros_like(semantic)
      return result
    points, scores = centers.find_centers(
        outputs[common.PRED_CENTER_HEATMAP], o.center_score_threshold,
        o.nms_kernel, o.keep_k_centers)
    instance_index = grouping.group_pixels(points, scores,
                                           outputs[common.PRED_OFFSET_MAP])
    panoptic, instance_pred, instance_class, instance_area = (
        merge.merge_semantic_and_instance(
            semantic, instance_index, tf.shape(scores)[1], o.num_classes,
            o.thing_class_ids, o.label_divisor, o.ignore_label,
            o.stuff_area_limit))
    result.update({
        common.PRED_PANOPTIC: panoptic,
        common.PRED_INSTANCE: instance_pred,
        common.PRED_CENTER_POINTS: points,
        common.PRED_CENTER_SCORES: scores,
        common.PRED_INSTANCE_SCORES: instance_scores(
            logits, instance_pred, instance_class, instance_area, scores),
    })
    return result


def _class_probability(logits, pixel_class):
  """softmax(logits)[..., pixel_class] without a [B, H, W, C] softmax.

  The log-normaliser is computed one image at a time to bound memory.
  """
  log_norm = tf.map_fn(lambda l: tf.reduce_logsumexp(l, axis=-1), logits,
                       parallel_iterations=1)
  pixel_logit = tf.gather(logits, pixel_class, batch_dims=3)
  return tf.exp(pixel_logit - log_norm)


def instance_scores(logits, instance_pred, instance_class, instance_area,
                    center_scores):
  """Center score x mean probability of the instance's class in its mask.

  Args:
    logits: float32 [B, H, W, C] semantic logits.
    instance_pred: int32 [B, H, W], 1..K, 0 = no instance.
    instance_class: int32 [B, K].
    instance_area: int32 [B, K].
    center_scores: float32 [B, K].

  Returns:
    float32 [B, K], 0 for empty instances.
  """
  shape = tf.shape(instance_class)
  batch, k = shape[0], shape[1]
  pixel_class = tf.gather(instance_class, tf.maximum(instance_pred - 1, 0),
                          batch_dims=1)
  pixel_prob = _class_probability(logits, pixel_class)
  segment = tf.where(instance_pred > 0,
                     tf.range(batch)[:, None, None] * k + instance_pred - 1,
                     -1)
  prob_sum = tf.reshape(
      tf.math.unsorted_segment_sum(pixel_prob, segment, batch * k), [batch, k])
  area = tf.cast(instance_area, tf.float32)
  mean_prob = tf.math.divide_no_nan(prob_sum, area)
  return center_scores * mean_prob
