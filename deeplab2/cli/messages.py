"""How the commands end on an expected failure: one line on stderr."""

import sys


def fail_after_restore(message: str) -> int:
  """Prints `message` as the one line on stderr; returns the status, 1.

  For commands that restore a model: TF's warnings about the objects of a
  failed restore, logged as they are deleted at exit, are dropped.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  print(message, file=sys.stderr)
  return 1
