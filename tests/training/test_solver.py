"""The solver as deeplab2 defines it: warm-up then poly / cosine over all
steps, and no weight decay on batch-norm parameters or biases."""

import keras
import numpy as np
import pytest

from deeplab2 import config as config_lib
from deeplab2.modeling.layers import normalization
from deeplab2.solver import optimizers
from deeplab2.solver import schedules
from conftest import tiny_config_text


@pytest.mark.parametrize('step', [0, 1, 250, 999, 1000, 4321, 9999, 10000,
                                  12000])
def test_poly_after_warmup_is_keras_polynomial_decay_over_all_steps(step):
  ours = schedules.WarmupDecay('poly', 0.01, 10000, warmup_steps=1000,
                               power=0.9, end_rate=0.001)
  decay = keras.optimizers.schedules.PolynomialDecay(
      0.01, decay_steps=10000, end_learning_rate=0.001, power=0.9)
  expected = 0.01 * step / 1000 if step < 1000 else float(decay(step))
  assert float(ours(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize('step', [0, 300, 5000, 9999, 10000, 11000])
def test_cosine_is_keras_cosine_decay_to_zero(step):
  ours = schedules.WarmupDecay('cosine', 0.01, 10000)
  decay = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=10000,
                                                 alpha=0.0)
  assert float(ours(step)) == pytest.approx(float(decay(step)), rel=1e-6,
                                            abs=1e-9)
  assert float(schedules.WarmupDecay('cosine', 0.01, 10000)(10000)) == (
      pytest.approx(0.0, abs=1e-9))


def test_adamw_never_decays_batch_norm_parameters_or_biases():
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=(33, 33))
  optimizer = optimizers.build_optimizer('adamw', 1e-3,
                                         decoupled_weight_decay=1e-4)
  optimizer.build(model.trainable_variables)
  decayed = {v.path.rsplit('/', 1)[-1] for v in model.trainable_variables
             if optimizer._use_weight_decay(v)}  # pylint: disable=protected-access
  kept = {v.path.rsplit('/', 1)[-1] for v in model.trainable_variables
          if not optimizer._use_weight_decay(v)}  # pylint: disable=protected-access
  assert 'kernel' in decayed and decayed <= {'kernel', 'depthwise_kernel'}
  assert {'gamma', 'beta', 'bias'} == kept


def test_gradient_clipping_and_loss_scaling_wrap_the_summed_gradients():
  optimizer = optimizers.build_optimizer('sgd', 0.1, clip_gradient_norm=1.0,
                                         loss_scaling=True)
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  inner = optimizer.inner_optimizer
  assert inner.global_clipnorm == 1.0
  pairs = [(np.ones(2, np.float32), 'v')]
  # Gradients arrive summed across replicas: no second sum.
  assert inner._all_reduce_sum_gradients(pairs) == pairs  # pylint: disable=protected-access


def test_poly_fields_with_the_cosine_policy_are_one_warning_each(tmp_path):
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  config = config_lib.parse_experiment_text(tiny_config_text('/unused'))
  solver = config.trainer_options.solver_options
  solver.learning_policy = 'cosine'
  solver.poly_end_learning_rate = 1e-5
  path = tmp_path / 'cosine.textproto'
  path.write_text(text_format.MessageToString(config))
  warnings = config_lib.load_experiment(str(path)).warnings
  assert [w for w in warnings if 'poly_end_learning_rate: the cosine '
          'policy decays to 0 (as deeplab2); ignored' in w]
  assert not [w for w in warnings if 'poly_learning_power' in w]


@pytest.mark.parametrize('name', ['Adam', 'AdamW'])
@pytest.mark.parametrize('in_graph', [False, True])
def test_adam_steps_are_keras_adams_bit_for_bit(name, in_graph):
  # Ours computes the step's scalars once per apply; the weights must not
  # move by a single bit against Keras' own (deeplab2's optimizer computes
  # them so too), over steps of a decaying rate and gradients of every size.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  shapes = [(3, 3, 4, 8), (8,), (5,)]
  initial = [rng.normal(size=s).astype(np.float32) * 3 for s in shapes]
  steps = [[(rng.normal(size=s) * 10.0 ** rng.integers(-8, 2)).astype(
      np.float32) for s in shapes] for _ in range(4)]

  def train(optimizer_class):
    variables = [tf.Variable(value) for value in initial]
    kwargs = {'weight_decay': 0.01} if name == 'AdamW' else {}
    optimizer = optimizer_class(
        keras.optimizers.schedules.PolynomialDecay(4e-4, 100, 0.0, 0.9),
        **kwargs)
    apply = lambda grads: optimizer.apply_gradients(zip(grads, variables))
    if in_graph:
      apply = tf.function(apply, autograph=False)
    for gradients in steps:
      apply([tf.constant(g) for g in gradients])
    return [v.numpy() for v in variables]

  ours = train(getattr(optimizers, name))
  theirs = train(getattr(keras.optimizers, name))
  for got, expected, before in zip(ours, theirs, initial):
    assert not np.array_equal(got, before)
    np.testing.assert_array_equal(got, expected)
