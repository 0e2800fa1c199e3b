"""Evaluation's preprocessing, for any image: resize to a range, then pad
with 127.5 to the eval crop (or, for a larger image, to the next
output_stride * k + 1)."""

from collections.abc import Sequence
from typing import TypeAlias

import tensorflow as tf

from deeplab2.inference import options as options_lib
from deeplab2.utils import resize

# (height, width): Python ints when known statically, else int32 [2].
Size: TypeAlias = Sequence[int] | tf.Tensor


def _size_list(size: Size) -> list:
  """int32 [2] tensor -> [height, width] of Python ints when it is a
  constant computed in eager mode, else of scalar tensors."""
  if isinstance(size, (list, tuple)):
    return list(size)
  return [size[0], size[1]]


def processed_size(image_size: Size,
                   options: options_lib.InferenceOptions) -> Size:
  """The size the model sees the image at, before padding.

  Args:
    image_size: (height, width), Python ints or an int32 [2] tensor.
    options: InferenceOptions.

  Returns:
    The same kind as `image_size`: the resized size with a resize to a
    range, else `image_size`. Python ints go in and come out when the size
    is known (a fixed-size export): the resize is computed eagerly then, by
    the same TF ops as the input pipeline's.
  """
  if not options.resizes:
    return image_size
  if isinstance(image_size, (list, tuple)):
    with tf.init_scope():
      size = resize.resize_to_range_size(
          tf.constant(image_size, tf.int32), options.min_resize_value,
          options.max_resize_value, options.resize_factor)
      return [int(v) for v in size.numpy()]
  return resize.resize_to_range_size(image_size, options.min_resize_value,
                                     options.max_resize_value,
                                     options.resize_factor)


def padded_size(size: Size, options: options_lib.InferenceOptions) -> Size:
  """Per side: the crop when the side fits in it, else the next
  output_stride * k + 1. Python ints in, Python ints out; else int32 [2]."""
  stride = options.output_stride
  if isinstance(size, (list, tuple)):
    return [crop if side <= crop else (side - 1 + stride - 1) // stride *
            stride + 1 for side, crop in zip(size, options.crop_size)]
  size = tf.convert_to_tensor(size, tf.int32)
  crop = tf.constant(options.crop_size, tf.int32)
  stretched = (size - 1 + stride - 1) // stride * stride + 1
  return tf.where(size <= crop, crop, stretched)


def _static_size(images: tf.Tensor) -> Size:
  static = images.shape[1:3]
  if static.is_fully_defined():
    return [int(v) for v in static]
  return tf.shape(images)[1:3]


def preprocess(images: tf.Tensor, options: options_lib.InferenceOptions
               ) -> tuple[tf.Tensor, Size]:
  """Evaluation's preprocessing of a batch of same-size images.

  Args:
    images: uint8 or float [B, H, W, 3], 0..255.
    options: InferenceOptions.

  Returns:
    padded: float32 [B, H', W', 3], the model's input.
    size: (height, width) of the image inside `padded` (top left); Python
      ints when H and W are static, else an int32 [2] tensor.
  """
  images = tf.cast(images, tf.float32)
  original = _static_size(images)
  size = processed_size(original, options)
  if options.resizes:
    images = resize.resize_bilinear(images, size)
  target = padded_size(size, options)
  height, width = _size_list(size)
  target_height, target_width = _size_list(target)
  padded = resize.pad_image(images, [[0, target_height - height],
                                     [0, target_width - width]])
  if isinstance(target, list) and not padded.shape[1:3].is_fully_defined():
    padded = tf.ensure_shape(padded, [None] + target + [3])
  return padded, size
