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
