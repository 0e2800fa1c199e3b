"""Align-corners resizing: a map of size s * k + 1 resized to s' * k + 1 keeps
its corner pixels on the same image points."""

import tensorflow as tf


def resize_bilinear(images, size):
  """float [B, H, W, C] -> [B, size[0], size[1], C], align_corners=True."""
  return tf.raw_ops.ResizeBilinear(images=images, size=size,
                                   align_corners=True)


def resize_nearest(images, size):
  """[B, H, W, C] -> [B, size[0], size[1], C] nearest, align_corners=True."""
  return tf.raw_ops.ResizeNearestNeighbor(images=images, size=size,
                                          align_corners=True)


def resize_and_rescale_offsets(offsets, size):
  """Resizes (y, x) offsets and scales them to the new pixel units.

  Args:
    offsets: float [B, h, w, 2], (y, x) offsets in pixels of the h x w grid.
    size: (H, W) int32 target size.

  Returns:
    float [B, H, W, 2], offsets in pixels of the H x W grid.
  """
  shape = tf.shape(offsets)
  size = tf.convert_to_tensor(size, tf.int32)
  resized = resize_bilinear(offsets, size)
  scale = (tf.cast(size - 1, offsets.dtype) /
           tf.cast(tf.maximum(shape[1:3] - 1, 1), offsets.dtype))
  return resized * scale


def resize_to_range_size(size, min_size=0, max_size=0, factor=0):
  """deeplab2's resize-to-range target size for an int32 (height, width).

  The shorter side goes to `min_size`, unless the longer side would then
  exceed `max_size`, in which case the longer side goes to `max_size`
  (sizes are floored). With `factor`, each side is raised to the next
  factor * k + 1. Zero turns a bound off.
  """
  size_f = tf.cast(size, tf.float32)
  new_size = tf.cast(size, tf.int32)
  if min_size:
    new_size = tf.cast(tf.floor(size_f * (min_size / tf.reduce_min(size_f))),
                       tf.int32)
  if max_size:
    small = tf.cast(tf.floor(size_f * (max_size / tf.reduce_max(size_f))),
                    tf.int32)
    if min_size:
      new_size = tf.cond(tf.reduce_max(new_size) > max_size,
                         lambda: small, lambda: new_size)
    else:
      new_size = small
  if factor:
    new_size += (factor - (new_size - 1) % factor) % factor
  return new_size


def pad_image(images, paddings):
  """Pads float images [B, H, W, 3] with 127.5, zero after the model's
  normalisation, so that padding looks like no signal.

  Args:
    images: float32 [B, H, W, 3] in 0..255.
    paddings: [[top, bottom], [left, right]] (ints or int32 tensors).

  Returns:
    float32 [B, H + top + bottom, W + left + right, 3].
  """
  return tf.pad(images - 127.5, [[0, 0]] + list(paddings) + [[0, 0]]) + 127.5
