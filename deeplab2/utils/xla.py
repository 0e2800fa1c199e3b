"""Whether the graph being traced will be compiled by XLA."""

import tensorflow as tf


def compiling_with_xla():
  """True inside tf.function(jit_compile=True) (and its cond branches and
  loop bodies) while it traces; False eagerly and in other functions.

  For ops whose fastest form differs between XLA and TF's own kernels (on
  CPU, top_k(1) is twice as fast as argmax in TF and 20x slower in XLA).
  Reads TF's private XLA context marker, the one TF's own ops consult; if
  a TF release drops it, this answers False (TF's kernels' choice), which
  changes speed only, never results.
  """
  try:
    # pylint: disable=g-import-not-at-top
    from tensorflow.python.ops import control_flow_util
    # pylint: enable=g-import-not-at-top
    return bool(control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()))
  except (ImportError, AttributeError):
    return False
