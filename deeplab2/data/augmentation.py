"""Geometric augmentation of an image and its panoptic label, in TF ops.

Order (SPEC): optional resize to a range -> random scale -> pad with a random
offset up to the crop size -> random crop -> left-right flip. Random choices
are stateless, drawn from a per-sample `seed` (int [2] tensor), so a
pipeline with a fixed seed repeats itself exactly. Resizes use align-corners so that a crop of
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


def resize_to_range(image, label, min_size=0, max_size=0, factor=0):
  """Resizes float image [H, W, 3] and int32 label [H, W] to the range."""
  new_size = resize.resize_to_range_size(tf.shape(label), min_size,
                                         max_size, factor)
  return resize_align_corners(image, label, new_size)


def random_scale_factor(min_scale, max_scale, step_size, seed):
  """One scale from linspace(min, max, step), or uniform when step is 0."""
  if min_scale == max_scale:
    return tf.constant(min_scale, tf.float32)
  if step_size == 0:
    return tf.random.stateless_uniform([], seed, min_scale, max_scale)
  num_steps = int(round((max_scale - min_scale) / step_size)) + 1
  choices = tf.linspace(min_scale, max_scale, num_steps)
  index = tf.random.stateless_uniform([], seed, 0, num_steps, tf.int32)
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
  image = resize.pad_image(image[None], paddings)[0]
  label = tf.pad(label, paddings, constant_values=label_pad_value)
  return image, label


def random_pad_and_crop(image, label, crop_height, crop_width,
                        label_pad_value, seed):
  """Pads up to the crop with a random offset, then crops randomly."""
  seeds = tf.random.split(seed, 4)
  shape = tf.shape(label)
  padded_height = tf.maximum(shape[0], crop_height)
  padded_width = tf.maximum(shape[1], crop_width)

  def draw(index, upper):
    return tf.random.stateless_uniform([], seeds[index], 0, upper, tf.int32)

  top = draw(0, padded_height - shape[0] + 1)
  left = draw(1, padded_width - shape[1] + 1)
  image, label = pad_to_size(image, label, padded_height, padded_width,
                             label_pad_value, (top, left))
  crop_top = draw(2, padded_height - crop_height + 1)
  crop_left = draw(3, padded_width - crop_width + 1)
  image = image[crop_top:crop_top + crop_height,
                crop_left:crop_left + crop_width]
  label = label[crop_top:crop_top + crop_height,
                crop_left:crop_left + crop_width]
  return image, label


def random_flip(image, label, seed, probability=0.5):
  """Left-right flip with the given probability."""
  flip = tf.random.stateless_uniform([], seed) < probability
  image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
  label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
  return image, label
