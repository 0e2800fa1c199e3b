"""Majority-vote merge of semantic and instance predictions into panoptic ids.

No loop over instances or classes: votes are segment sums over
(image, instance, class) ids.
"""

import tensorflow as tf


def is_thing_class(semantic, thing_class_ids):
  """bool tensor like `semantic`: whether each id is a thing class."""
  if not thing_class_ids:
    return tf.zeros_like(semantic, tf.bool)
  things = tf.constant(list(thing_class_ids), semantic.dtype)
  return tf.reduce_any(tf.equal(semantic[..., None], things), axis=-1)


def merge_semantic_and_instance(semantic_pred, instance_index, num_centers,
                                num_classes, thing_class_ids, label_divisor,
                                ignore_label, stuff_area_limit):
  """Builds the panoptic map.

  Rules:
  - A thing pixel belongs to the instance of its nearest center; each
    instance takes the most frequent thing class among its pixels (ties:
    the lower class id); instance ids count from 1 per class, in center
    order (highest score first), over instances that got at least one pixel.
  - Thing pixels of an image with no center become void.
  - Stuff segments with fewer than `stuff_area_limit` pixels become void
    (an area equal to the limit is kept).

  Args:
    semantic_pred: int32 [B, H, W].
    instance_index: int32 [B, H, W], 1..num_centers from grouping, 0 none.
    num_centers: K, int or int32 scalar tensor.
    num_classes: static int.
    thing_class_ids: tuple of ints.
    label_divisor: int.
    ignore_label: int.
    stuff_area_limit: int.

  Returns:
    panoptic: int32 [B, H, W], class * label_divisor + instance id, void =
      ignore_label * label_divisor.
    instance_pred: int32 [B, H, W], the instance index (1..K) of thing
      pixels, 0 elsewhere.
    instance_class: int32 [B, K], the voted class of each center's instance.
    instance_area: int32 [B, K], its pixel count (0 = empty).
  """
  shape = tf.shape(semantic_pred)
  batch = shape[0]
  void = ignore_label * label_divisor
  is_thing = is_thing_class(semantic_pred, thing_class_ids)
  instance_pred = tf.where(is_thing, instance_index, 0)

  # Votes: counts[b, k, c] of thing pixels of instance k with class c.
  slots = num_centers + 1
  image_index = tf.range(batch)[:, None, None]
  segment = (image_index * slots + instance_pred) * num_classes + semantic_pred
  segment = tf.where(instance_pred > 0, segment, -1)
  counts = tf.math.unsorted_segment_sum(tf.ones_like(segment), segment,
                                        batch * slots * num_classes)
  counts = tf.reshape(counts, [batch, slots, num_classes])[:, 1:]
  instance_class = tf.argmax(counts, axis=-1, output_type=tf.int32)
  instance_area = tf.reduce_sum(counts, axis=-1)

  # Per-class ids: 1 + earlier non-empty instances of the same class.
  non_empty = instance_area > 0
  same_class = tf.equal(instance_class[:, :, None], instance_class[:, None, :])
  order = tf.range(num_centers)
  earlier = order[None, :] < order[:, None]  # [k, j]: j comes before k.
  counted = same_class & earlier[None] & non_empty[:, None, :]
  instance_id = 1 + tf.reduce_sum(tf.cast(counted, tf.int32), axis=-1)

  gather_index = tf.maximum(instance_pred - 1, 0)
  pixel_class = tf.gather(instance_class, gather_index, batch_dims=1)
  pixel_id = tf.gather(instance_id, gather_index, batch_dims=1)
  thing_panoptic = tf.where(instance_pred > 0,
                            pixel_class * label_divisor + pixel_id, void)

  # Stuff: per-image class areas; small segments become void.
  is_stuff = ~is_thing & tf.not_equal(semantic_pred, ignore_label)
  stuff_segment = tf.where(is_stuff, image_index * num_classes + semantic_pred,
                           -1)
  stuff_area = tf.math.unsorted_segment_sum(tf.ones_like(stuff_segment),
                                            stuff_segment, batch * num_classes)
  pixel_stuff_area = tf.gather(stuff_area, tf.maximum(stuff_segment, 0))
  stuff_panoptic = tf.where(
      is_stuff & (pixel_stuff_area >= stuff_area_limit),
      semantic_pred * label_divisor, void)

  panoptic = tf.where(is_thing, thing_panoptic, stuff_panoptic)
  return panoptic, instance_pred, instance_class, instance_area
