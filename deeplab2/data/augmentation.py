"""Geometric augmentation of an image and its panoptic label, in TF ops.

Order (SPEC): random scale -> pad with a random offset up to the crop size ->
random crop -> left-right flip. Resizes use align-corners so that a crop of
output_stride * k + 1 pixels lines up with the feature maps.
"""

import tensorflow as tf

from deeplab2.utils import resize


def resize_align_corners(image, label, size):
  """Resizes float image [H, W, 3] (bilinear) and int32 label [H, W] (nearest)."""
  size = tf.cast(size, tf.int32)
  image = resize.resize_bilinear(image[None], size)[0]
  label = resize.resize_nearest(label[None, :, :, None], size)
  return image, label[0, :, :, 0]


def random_scale_factor(min_scale, max_scale, step_size, seed=None):
  """One scale from linspace(min, max, step), or uniform when step is 0."""
  if min_scale == max_scale:
    return tf.constant(min_scale, tf.float32)
  if step_size == 0:
    return tf.random.uniform([], min_scale, max_scale, seed=seed)
  num_steps = int(round((max_scale - min_scale) / step_size)) + 1
  choices = tf.linspace(min_scale, max_scale, num_steps)
  index = tf.random.uniform([], 0, num_steps, dtype=tf.int32, seed=seed)
  return tf.cast(choices[index], tf.float32)


def scale(image, label, factor):
  """Scales so that (size - 1) * factor + 1 pixels keep the corners aligned."""
  shape = tf.cast(tf.shape(label), tf.float32)
  new_size = tf.cast(tf.round((shape - 1.0) * factor + 1.0), tf.int32)
  return resize_align_corners(image, label, new_size)


def pad_to_size(image, label, height, width, label_pad_value, offset=(0, 0)):
  """Pads image with 127.5 (zero after normalisation) and label with void.

  Args:
    image: float32 [H, W, 3].
    label: int32 [H, W].
    height: target height (>= H).
    width: target width (>= W).
    label_pad_value: ignore_label * label_divisor.
    offset: (top, left) padding; the rest goes bottom and right.
  """
  shape = tf.shape(label)
  top, left = offset
  bottom = height - shape[0] - top
  right = width - shape[1] - left
  paddings = [[top, bottom], [left, right]]
  image = tf.pad(image - 127.5, paddings + [[0, 0]]) + 127.5
  label = tf.pad(label, paddings, constant_values=label_pad_value)
  return image, label


def random_pad_and_crop(image, label, crop_height, crop_width,
                        label_pad_value, seed=None):
  """Pads up to the crop with a random offset, then crops randomly."""
  shape = tf.shape(label)
  padded_height = tf.maximum(shape[0], crop_height)
  padded_width = tf.maximum(shape[1], crop_width)
  top = tf.random.uniform([], 0, padded_height - shape[0] + 1, tf.int32,
                          seed=seed)
  left = tf.random.uniform([], 0, padded_width - shape[1] + 1, tf.int32,
                           seed=seed)
  image, label = pad_to_size(image, label, padded_height, padded_width,
                             label_pad_value, (top, left))
  crop_top = tf.random.uniform([], 0, padded_height - crop_height + 1,
                               tf.int32, seed=seed)
  crop_left = tf.random.uniform([], 0, padded_width - crop_width + 1, tf.int32,
                                seed=seed)
  image = image[crop_top:crop_top + crop_height,
                crop_left:crop_left + crop_width]
  label = label[crop_top:crop_top + crop_height,
                crop_left:crop_left + crop_width]
  return image, label


def random_flip(image, label, seed=None):
  """Left-right flip with probability 0.5."""
  flip = tf.random.uniform([], seed=seed) < 0.5
  image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
  label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
  return image, label
