"""Where time goes, per module: op names grouped by their scopes, and a
profiled call's self-times and multiply-adds meeting at the module."""

import keras
import tensorflow as tf

from deeplab2.utils import model_stats
from deeplab2.utils import op_profile


def test_module_of_drops_the_op_and_the_tracing_suffixes():
  name = 'panoptic_deeplab_1/resnet50_1/res2_block1_1/conv1_1/Relu'
  assert op_profile.module_of(name, 3) == (
      'panoptic_deeplab/resnet50/res2_block1')
  assert op_profile.module_of(name, 9) == (
      'panoptic_deeplab/resnet50/res2_block1/conv1')
  # A scope whose own name ends in digits keeps them.
  assert op_profile.module_of('model_1/res5_12/Conv2D', 2) == 'model/res5'
  assert op_profile.module_of('Relu', 3) == ''


def test_module_rates_add_times_and_counts_by_module():
  times = [('m_1/a_1/conv_1/Relu', 'FusedConv2D', 3.0),
           ('m_1/a_1/Relu', 'FusedConv2D', 1.0),
           ('m_1/b_1/ResizeBilinear', 'ResizeBilinear', 5.0)]
  counts = {'m_1/a_1/conv_1/convolution': 600, 'm_1/a_1/conv2_1/Conv2D': 40,
            'm_1/c_1/MatMul': 7}
  assert op_profile.module_rates(times, counts, 2) == [
      ('m/b', 5.0, 0), ('m/a', 4.0, 640), ('m/c', 0.0, 7)]


def test_multiply_adds_by_op_names_each_convolution_and_sums_to_the_total():
  model = keras.Sequential([
      keras.Input((9, 9, 4)),
      keras.layers.Conv2D(8, 3, padding='same', name='first'),
      keras.layers.DepthwiseConv2D(3, padding='same', name='second')])
  by_op = model_stats.multiply_adds_by_op(model, (1, 9, 9, 4))
  assert sum(by_op.values()) == model_stats.multiply_adds(model, (1, 9, 9, 4))
  by_module = {op_profile.module_of(name, 9): count
               for name, count in by_op.items()}
  assert {m.split('/')[-1] for m in by_module} == {'first', 'second'}
  assert sorted(by_module.values()) == [81 * 8 * 9, 81 * 8 * 36]


def test_op_self_times_name_the_profiled_ops():
  x = tf.random.normal([64, 64])
  step = tf.function(lambda a: tf.matmul(a, a) + 1.0)
  step(x)
  rows = op_profile.op_self_times(lambda: step(x).numpy(), 2)
  kinds = {kind for _, kind, _ in rows}
  assert any('MatMul' in kind for kind in kinds), kinds
  assert any(name.split('/')[-1].startswith('MatMul')
             for name, _, _ in rows), rows
  assert all(ms >= 0 for _, _, ms in rows)
