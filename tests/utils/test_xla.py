"""deeplab2.utils.xla: telling XLA tracing apart from TF's own."""

import tensorflow as tf

from deeplab2.utils import xla


def _traced_answers(jit_compile):
  seen = {}

  @tf.function(jit_compile=jit_compile)
  def fn(x):
    seen['body'] = xla.compiling_with_xla()

    def branch():
      seen['branch'] = xla.compiling_with_xla()
      return x + 1.0
    return tf.cond(x > 0, branch, lambda: x)
  fn(tf.constant(1.0))
  return seen


def test_true_while_an_xla_function_traces_and_in_its_branches():
  assert _traced_answers(jit_compile=True) == {'body': True, 'branch': True}


def test_false_eagerly_and_in_other_functions():
  assert not xla.compiling_with_xla()
  assert _traced_answers(jit_compile=False) == {'body': False,
                                                'branch': False}
