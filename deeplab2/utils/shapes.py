"""Static-when-known tensor dimensions."""

import tensorflow as tf


def dims(tensor):
  """Each dimension as a Python int when known statically, else a tensor.

  XLA needs shape arguments (of pad, reshape, ...) to be compile-time
  constants; inside loop bodies only static dimensions are.
  """
  static = tensor.shape.as_list()
  dynamic = tf.shape(tensor)
  return [d if d is not None else dynamic[i] for i, d in enumerate(static)]
