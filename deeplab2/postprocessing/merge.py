"""Majority-vote merge of semantic and instance predictions into panoptic ids.

No loop over instances or classes: votes are segment sums over
(image, instance, class) ids.
"""

import tensorflow as tf


def merge_semantic_and_instance(semantic_pred, instance_index, num_centers,
                                label_spec, stuff_area_limit,
                                segment_minimum=False):
  """Builds the panoptic map.

  Rules:
  - A thing pixel belongs to the instance of its nearest center; each
    instance takes the most frequent thing class among its pixels (ties:
    the lower class id); instance ids count from 1 per class over instances
    that got at least one pixel, in the raster order of each instance's first
    pixel (deeplab2's `tf.unique` order).
  - Thing pixels of an image with no center become void.
  - Instance ids stay below `label_divisor`: an instance whose id would
    reach it (it would encode an instance of the next class) becomes void,
    its pixels get instance index 0 and its area 0. Only a class with
    label_divisor or more instances gets there, so only keep_k_centers -1
    (PostProcessorOptions refuses keep_k_centers >= label_divisor).
  - Stuff segments with fewer than `stuff_area_limit` pixels become void
    (an area equal to the limit is kept).

  Args:
    semantic_pred: int32 [B, H, W].
    instance_index: int32 [B, H, W], 1..num_centers from grouping, 0 none.
    num_centers: K, int or int32 scalar tensor.
    label_spec: label_spec.LabelSpec (classes, thing ids, ignore label,
      label divisor).
    stuff_area_limit: int.
    segment_minimum: find each instance's first pixel with one segment
      minimum (TF, TFLite) instead of segment-sum tables, which the ONNX and
      OpenVINO converters also take. The same pixels either way.

  Returns:
    panoptic: int32 [B, H, W], label_spec.encode(class, instance id), void =
      label_spec.void_label.
    instance_pred: int32 [B, H, W], the instance index (1..K) of thing
      pixels, 0 elsewhere.
    instance_class: int32 [B, K], the voted class of each center's instance.
    instance_area: int32 [B, K], its pixel count (0 = empty or void).
  """
  batch = tf.shape(semantic_pred)[0]
  num_classes = label_spec.num_classes
  void = label_spec.void_label
  is_thing = label_spec.is_thing(semantic_pred)
  instance_pred = tf.where(is_thing, instance_index, 0)
  image_index = tf.range(batch)[:, None, None]

  # Votes: counts[b, k, c] of pixels of instance k with class c (slot 0, no
  # instance, is counted too and dropped).
  slots = num_centers + 1
  segment = (image_index * slots + instance_pred) * num_classes + semantic_pred
  # Segment ids of rank 1 (flattened) convert to ONNX (tf2onnx takes no
  # other); the sums are the same.
  segment = tf.reshape(segment, [-1])
  counts = tf.math.unsorted_segment_sum(tf.ones_like(segment), segment,
                                        batch * slots * num_classes)
  counts = tf.reshape(counts, [batch, slots, num_classes])
  # Every pixel is counted once (slot 0 holds the pixels of no instance).
  class_area = tf.reduce_sum(counts, axis=1)
  counts = counts[:, 1:]
  instance_class = tf.argmax(counts, axis=-1, output_type=tf.int32)
  instance_area = tf.reduce_sum(counts, axis=-1)

  # Per-class ids: 1 + non-empty instances of the same class whose first
  # pixel comes earlier in raster order.
  non_empty = instance_area > 0
  same_class = tf.equal(instance_class[:, :, None], instance_class[:, None, :])
  instance_segment = tf.reshape(image_index * slots + instance_pred, [-1])
  if segment_minimum:
    height, width = tf.shape(semantic_pred)[1], tf.shape(semantic_pred)[2]
    raster_index = tf.reshape(tf.broadcast_to(
        tf.reshape(tf.range(height * width), [1, height, width]),
        tf.shape(semantic_pred)), [-1])
    first = tf.math.unsorted_segment_min(raster_index, instance_segment,
                                         batch * slots)
    first = tf.reshape(first, [batch, slots])[:, 1:]
    # [b, k, j]: instance j starts before instance k in raster order.
    earlier = first[:, None, :] < first[:, :, None]
  else:
    first_row, first_column = _first_pixels(
        instance_segment, tf.shape(semantic_pred), batch * slots)
    first_row = tf.reshape(first_row, [batch, slots])[:, 1:]
    first_column = tf.reshape(first_column, [batch, slots])[:, 1:]
    earlier = (first_row[:, None, :] < first_row[:, :, None]) | (
        (first_row[:, None, :] == first_row[:, :, None]) &
        (first_column[:, None, :] < first_column[:, :, None]))
  counted = same_class & earlier & non_empty[:, None, :]
  instance_id = 1 + tf.reduce_sum(tf.cast(counted, tf.int32), axis=-1)
  # An id of label_divisor or more would be an instance of the next class:
  # such an instance goes to slot 0 (no instance).
  fits = instance_id < label_spec.label_divisor
  instance_slot = tf.concat(
      [tf.zeros([batch, 1], tf.int32),
       tf.range(1, slots)[None] * tf.cast(fits, tf.int32)], axis=1)
  instance_pred = tf.gather(instance_slot, instance_pred, batch_dims=1)
  instance_area = tf.where(fits, instance_area, 0)

  # One small table per image, then one gather per pixel: slot 0 (thing
  # pixels of no instance) is void.
  instance_value = tf.concat(
      [tf.fill([batch, 1], void),
       label_spec.encode(instance_class, instance_id)], axis=1)
  thing_panoptic = tf.gather(instance_value, instance_pred, batch_dims=1)

  # Stuff: per-image class areas decide which classes stay.
  classes = tf.range(num_classes)
  stuff = set(label_spec.stuff_class_ids)
  is_stuff_class = tf.constant([c in stuff for c in range(num_classes)])
  keep = is_stuff_class[None] & (class_area >= stuff_area_limit)
  stuff_value = tf.where(keep, label_spec.encode(classes[None], 0), void)
  stuff_panoptic = tf.gather(stuff_value, semantic_pred, batch_dims=1)

  panoptic = tf.where(is_thing, thing_panoptic, stuff_panoptic)
  return panoptic, instance_pred, instance_class, instance_area


def _first_pixels(segment, shape, num_segments):
  """(row, column) of each segment's first pixel in raster order.

  Counted with segment sums into [segments, rows] and [segments, columns]
  tables (small: segments are images x centers), then the first non-zero
  entry of each row of a table: exact integers, and the ops convert to
  ONNX (tf2onnx 1.17 refuses integer segment minimums) and to OpenVINO
  (which has no segment minimum).

  Args:
    segment: int32 [B * H * W], each pixel's segment (flattened [B, H, W]).
    shape: int32 [3], (B, H, W).
    num_segments: int32 scalar.

  Returns:
    int32 [num_segments] rows and columns; H and W for an empty segment.
  """
  height, width = shape[1], shape[2]
  rows = tf.reshape(tf.broadcast_to(tf.range(height)[None, :, None], shape),
                    [-1])
  columns = tf.reshape(tf.broadcast_to(tf.range(width)[None, None, :], shape),
                       [-1])
  first_row = _first_nonzero(tf.math.unsorted_segment_sum(
      tf.ones_like(segment), segment * height + rows, num_segments * height),
                             num_segments, height)
  on_first_row = tf.cast(tf.equal(rows, tf.gather(first_row, segment)),
                         tf.int32)
  first_column = _first_nonzero(tf.math.unsorted_segment_sum(
      on_first_row, segment * width + columns, num_segments * width),
                                num_segments, width)
  return first_row, first_column


def _first_nonzero(counts, rows, length):
  """int32 [rows]: the index of the first non-zero entry of each row of
  counts ([rows * length], row-major); `length` for a row of zeros."""
  present = tf.reshape(counts, [rows, length]) > 0
  index = tf.range(length)[None, :]
  return tf.reduce_min(tf.where(present, index, length), axis=1)
