"""How the commands end on an expected failure: one line on stderr."""

import re
import sys

# What TF puts before an op's own message when the op ran inside a function
# or a tf.data transformation.
_TF_PREFIXES = re.compile(
    r'^(\{\{function_node [^}]*\}\}\s*)?(Error in user-defined function '
    r'passed to \S+ transformation with iterator: \S+: )?')


def op_error_line(error: Exception) -> str:
  """`ExceptionName: message`, the message's first line without TF's
  function and tf.data iterator prefixes (a tf.errors.OpError)."""
  message = getattr(error, 'message', str(error)).splitlines()[0]
  return f'{type(error).__name__}: {_TF_PREFIXES.sub("", message)}'


def fail_after_restore(message: str) -> int:
  """Prints `message` as the one line on stderr; returns the status, 1.

  For commands that restore a model: TF's warnings about the objects of a
  failed restore, logged as they are deleted at exit, are dropped.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  print(message, file=sys.stderr)
  return 1
