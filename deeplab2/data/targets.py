"""Panoptic-DeepLab training targets from a panoptic label, in TF ops.

All of SPEC "Augmentation and targets": semantic labels, a Gaussian center
heatmap, (y, x) center offsets and the three loss weights, computed after
augmentation from the augmented panoptic label.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2 import label_spec as label_spec_lib


@dataclasses.dataclass(frozen=True)
class TargetOptions:
  """Plain values that define the targets.

  Attributes:
    label_spec: label_spec.LabelSpec of the dataset (label divisor, ignore
      label, thing classes).
    sigma: standard deviation of the center Gaussian, in pixels.
    small_instance_threshold: instances with fewer pixels are "small".
    small_instance_weight: semantic weight on small instances' pixels (used
      when increase_small_instance_weights).
    increase_small_instance_weights: whether to up-weight small instances.
  """
  label_spec: label_spec_lib.LabelSpec
  sigma: float = 8.0
  small_instance_threshold: int = 4096
  small_instance_weight: float = 3.0
  increase_small_instance_weights: bool = True

  def __post_init__(self):
    if not isinstance(self.label_spec, label_spec_lib.LabelSpec):
      raise TypeError('TargetOptions.label_spec must be a '
                      f'deeplab2.label_spec.LabelSpec, got '
                      f'{type(self.label_spec).__name__}.')

  @property
  def gaussian_radius(self):
    """Half-size of the Gaussian window: its size is 6 * sigma + 3."""
    return int(round(3 * self.sigma + 1))


def instance_centers(panoptic_label, options):
  """Centers of mass of the non-crowd thing instances.

  Args:
    panoptic_label: int32 [H, W].
    options: TargetOptions.

  Returns:
    centers: float32 [N, 2], (y, x) rounded to the nearest pixel (ties to
      even, as tf.round).
    areas: int32 [N], pixels per instance.
    instance_index: int32 [H, W], index 0..N-1 of each pixel's instance, -1
      for pixels of no (non-crowd thing) instance.
  """
  spec = options.label_spec
  semantic, instance = spec.split(panoptic_label)
  is_instance = spec.is_thing(semantic) & (instance > 0)
  flat_label = tf.reshape(panoptic_label, [-1])
  flat_is_instance = tf.reshape(is_instance, [-1])
  pixel_ids = tf.cast(tf.where(flat_is_instance)[:, 0], tf.int32)
  ids, segment = tf.unique(tf.gather(flat_label, pixel_ids))
  count = tf.shape(ids)[0]
  width = tf.shape(panoptic_label)[1]
  # Exact integer sums (float32 sums lose pixels past 2**24 at full
  # resolution), then one float64 division: the rounding is exact.
  ys = tf.cast(pixel_ids // width, tf.int64)
  xs = tf.cast(pixel_ids % width, tf.int64)
  areas = tf.math.unsorted_segment_sum(tf.ones_like(ys), segment, count)
  sum_y = tf.math.unsorted_segment_sum(ys, segment, count)
  sum_x = tf.math.unsorted_segment_sum(xs, segment, count)
  mean = tf.stack([sum_y, sum_x], axis=1)
  mean = tf.cast(mean, tf.float64) / tf.cast(areas, tf.float64)[:, None]
  centers = tf.cast(tf.round(mean), tf.float32)
  flat_index = tf.scatter_nd(pixel_ids[:, None], segment + 1,
                             tf.shape(flat_label)) - 1
  instance_index = tf.reshape(flat_index, tf.shape(panoptic_label))
  return centers, tf.cast(areas, tf.int32), instance_index


def center_heatmap(centers, height, width, sigma, radius):
  """Max over instances of a truncated Gaussian with peak 1 at each center.

  Each center writes only its (2 * radius + 1)^2 window (a scatter-max), so
  memory grows with the number of instances, not with instances x pixels.

  Args:
    centers: float32 [N, 2], integer-valued (y, x).
    height: output height.
    width: output width.
    sigma: Gaussian standard deviation in pixels.
    radius: the window is |dy| <= radius and |dx| <= radius.

  Returns:
    float32 [height, width].
  """
  # deeplab2's window: computed in float64, then cast to float32.
  steps = np.arange(-radius, radius + 1, dtype=np.float64)
  window = tf.constant(np.exp(-(steps[:, None]**2 + steps[None, :]**2) /
                              (2 * sigma**2)).astype(np.float32))  # [k, k]
  corner = tf.cast(centers, tf.int32)
  offsets = tf.range(-radius, radius + 1)
  ys = corner[:, 0:1] + offsets[None, :]                     # [N, k]
  xs = corner[:, 1:2] + offsets[None, :]
  size = 2 * radius + 1
  num = tf.shape(centers)[0]
  yy = tf.broadcast_to(ys[:, :, None], [num, size, size])
  xx = tf.broadcast_to(xs[:, None, :], [num, size, size])
  values = tf.broadcast_to(window[None], [num, size, size])
  inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
  indices = tf.stack([tf.boolean_mask(yy, inside),
                      tf.boolean_mask(xx, inside)], axis=1)
  return tf.tensor_scatter_nd_max(tf.zeros([height, width]), indices,
                                  tf.boolean_mask(values, inside))


def make_targets(panoptic_label, options):
  """All training targets of one augmented panoptic label.

  Args:
    panoptic_label: int32 [H, W]; padding carries the label spec's
      void_label, a record without label -1.
    options: TargetOptions.

  Returns:
    dict keyed by deeplab2.common constants:
      GT_SEMANTIC: int32 [H, W], the label spec's semantic_label (ignore
        where the panoptic id is negative).
      GT_CENTER_HEATMAP: float32 [H, W].
      GT_OFFSET: float32 [H, W, 2], (y, x) of center - pixel on non-crowd
        thing pixels, 0 elsewhere.
      SEMANTIC_WEIGHT: float32 [H, W], small_instance_weight on pixels of
        instances smaller than the threshold, else 1 (void too, as in
        deeplab2: the loss itself drops ignore pixels).
      CENTER_WEIGHT: float32 [H, W], 1 except on void and crowd pixels.
      OFFSET_WEIGHT: float32 [H, W], 1 on non-crowd thing pixels.
  """
  spec = options.label_spec
  panoptic_label = tf.convert_to_tensor(panoptic_label, tf.int32)
  height = tf.shape(panoptic_label)[0]
  width = tf.shape(panoptic_label)[1]
  is_void = spec.is_void(panoptic_label)
  is_crowd = spec.is_crowd(panoptic_label)
  centers, areas, instance_index = instance_centers(panoptic_label, options)
  has_instance = instance_index >= 0
  # Pixels of no instance read a dummy row N, so gathers stay in range
  # even when there is no instance at all.
  num_instances = tf.shape(centers)[0]
  safe_index = tf.where(has_instance, instance_index, num_instances)
  centers_or_dummy = tf.concat([centers, tf.zeros([1, 2])], axis=0)
  areas_or_dummy = tf.concat([areas, tf.zeros([1], tf.int32)], axis=0)

  heatmap = center_heatmap(centers, height, width, options.sigma,
                           options.gaussian_radius)
  pixel_yx = tf.cast(tf.stack(tf.meshgrid(tf.range(height), tf.range(width),
                                          indexing='ij'), axis=-1), tf.float32)
  offset = tf.where(has_instance[..., None],
                    tf.gather(centers_or_dummy, safe_index) - pixel_yx, 0.0)

  semantic_weight = tf.ones_like(heatmap)
  if options.increase_small_instance_weights:
    is_small = has_instance & (tf.gather(areas_or_dummy, safe_index) <
                               options.small_instance_threshold)
    semantic_weight = tf.where(is_small, options.small_instance_weight,
                               semantic_weight)
  center_weight = tf.where(is_void | is_crowd, 0.0, 1.0)
  offset_weight = tf.cast(has_instance, tf.float32)
  return {
      common.GT_SEMANTIC: spec.semantic_label(panoptic_label),
      common.GT_CENTER_HEATMAP: heatmap,
      common.GT_OFFSET: offset,
      common.SEMANTIC_WEIGHT: semantic_weight,
      common.CENTER_WEIGHT: center_weight,
      common.OFFSET_WEIGHT: offset_weight,
  }
