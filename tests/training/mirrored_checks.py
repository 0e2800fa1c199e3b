"""Runs a tiny model under MirroredStrategy over 2 logical CPU devices and
under one device, and writes what the tests compare to a JSON file.

  python tests/training/mirrored_checks.py WORK_DIR OUT_JSON [CHECK,...]

A separate process: logical devices must be set before TensorFlow starts.
"""

import dataclasses
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

_CPU = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from conftest import tiny_config_text
from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2.data import build_synthetic
from deeplab2.data import input_pipeline
from deeplab2.data import synthetic
from deeplab2.data import tfrecord
from deeplab2.losses import panoptic_deeplab_loss
from deeplab2.training import evaluator as evaluator_lib
from deeplab2.training import experiment
from deeplab2.training import trainer as trainer_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

ONE = tf.distribute.get_strategy()
TWO = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
# Two steps of SGD at a small rate: one-device and two-replica sync batch
# norm round differently (1e-8); a random tiny net amplifies that per step
# with the rate (and ReLUs that flip, see _parts), and Adam's first updates
# (about lr * sign(gradient)) would amplify it further.
TRAIN_STEPS = 2


def _write_datasets(work_dir):
  """3 val images of 33 x 33, and 3 of different sizes for resized eval."""
  data_dir = os.path.join(work_dir, 'data')
  build_synthetic.write_synthetic_dataset(
      data_dir, num_train=4, num_val=3, seed=5, num_shards=1,
      image_size=33)
  sizes = [(33, 33), (25, 33), (33, 21)]
  with tfrecord.ShardedWriter(data_dir, 'sized', 1) as writer:
    for (height, width), (name, image, panoptic, _) in zip(
        sizes, synthetic.generate_split(9, 'val', 3, 33)):
      writer.write(tfrecord.make_example(
          tfrecord.encode_png(image[:height, :width]), 'png', height, width,
          name + '.png', panoptic[:height, :width]))
    writer.commit()
  return data_dir


def _parts(data_dir, num_replicas, eval_batch=1, eval_files='val',
           resize=0):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir))
  config.trainer_options.solver_options.use_sync_batchnorm = True
  config.trainer_options.solver_options.optimizer = 'sgd'
  # A small rate keeps the round-off amplification of training equality
  # well inside the 1e-5 bar. Sync batch norm's other summation order can
  # flip a ReLU whose input is within rounding of 0: that pixel's gradient
  # then differs by a finite amount, and the weights after one step by
  # that times the rate (at 2e-4: 3.5e-5 in the stem kernel and 7e-5 in the
  # next step's center loss, in about one run in five, with TF's depthwise
  # kernel gradient or ours; at 2e-3 it reached 2e-5 in one CI run).
  config.trainer_options.solver_options.base_learning_rate = 1e-5
  config.train_dataset_options.batch_size = 4
  eval_options = config.eval_dataset_options
  eval_options.batch_size = eval_batch
  eval_options.file_pattern[:] = [
      os.path.join(data_dir, f'{eval_files}-*.tfrecord')]
  if resize:
    eval_options.max_resize_value[:] = [resize]
  return config_lib.from_message(config, num_replicas=num_replicas)


def _train(strategy, parts, initial_weights, batch, overflow_check=False):
  """Trains TRAIN_STEPS steps on the same global batch; returns the losses
  of each step, the final weights, the model and (with overflow_check) what
  check_overflow found after them."""
  assert parts.num_replicas == strategy.num_replicas_in_sync
  with strategy.scope():
    # No ASPP dropout: its masks are drawn per replica.
    model = parts.build_model(aspp_dropout_rate=0.0)
    optimizer = parts.build_optimizer()
    loss_fn = parts.build_loss()
    if overflow_check:
      # Loss scaling multiplies and divides by powers of two: the steps
      # before the overflow train exactly as without it.
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      loss_fn = _InfOnReplicaOne(loss_fn, model)
  model.set_weights(initial_weights)
  # experimental_distribute_dataset splits each global batch in order:
  # replica 0 takes its first half.
  dataset = tf.data.Dataset.from_tensor_slices(batch).batch(
      parts.train_batch_size).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  trainer = trainer_lib.Trainer(strategy, model, loss_fn, optimizer,
                                parts.train_batch_size)
  losses = [trainer.train(iterator, 1) for _ in range(TRAIN_STEPS)]
  weights = [w.tolist() for w in model.get_weights()]
  overflow = (check_overflow(trainer, iterator, loss_fn) if overflow_check
              else None)
  return losses, weights, model, overflow


def check_training(data_dir):
  """One device against two replicas; the two-replica run then takes the
  overflow step of check_overflow (one traced training serves both)."""
  parts_one = _parts(data_dir, 1)
  parts_two = _parts(data_dir, 2)
  options = dataclasses.replace(parts_one.pipeline_options('train'), seed=7)
  batch = next(iter(input_pipeline.make_dataset(options)))
  batch = {k: v for k, v in batch.items()}
  reference = parts_one.build_model()
  initial = reference.get_weights()
  one_losses, one_weights, one_model, _ = _train(ONE, parts_one, initial,
                                                 batch)
  two_losses, two_weights, two_model, overflow = _train(
      TWO, parts_two, initial, batch, overflow_check=True)
  return {'one_losses': one_losses, 'two_losses': two_losses,
          'one_weights': one_weights, 'two_weights': two_weights,
          'weight_names': [w.path for w in one_model.weights],
          'sync_batchnorm': any(
              getattr(layer, 'synchronized', False)
              for layer in two_model._flatten_layers())}, overflow  # pylint: disable=protected-access


def _evaluator(strategy, parts, model):
  assert parts.num_replicas == strategy.num_replicas_in_sync
  return evaluator_lib.Evaluator(strategy, model,
                                 parts.build_post_processor(),
                                 parts.label_spec)


def _evaluate(evaluator, parts):
  # As Experiment distributes it: batches in host memory.
  return evaluator.evaluate(experiment.distributed_dataset(
      evaluator.strategy, parts.pipeline_options('eval')))


def check_evaluation(data_dir):
  """One model and one Evaluator per strategy (as Experiment keeps one),
  the same weights, evaluated on each dataset and batch size."""
  weights = _parts(data_dir, 1).build_model().get_weights()
  evaluators = {}
  for strategy, num_replicas in ((ONE, 1), (TWO, 2)):
    parts = _parts(data_dir, num_replicas)
    with strategy.scope():
      model = parts.build_model()
    model.set_weights(weights)
    evaluators[num_replicas] = _evaluator(strategy, parts, model)
  results = {}
  for name, files, resize in (('plain', 'val', 0), ('resized', 'sized', 29)):
    results[name] = {'one': _evaluate(
        evaluators[1], _parts(data_dir, 1, 1, files, resize))}
    # Batch 1: rounded up to 1 per replica, one replica idles at the end;
    # batch 3: 2 per replica, the last batch padded.
    for eval_batch in (1, 3):
      results[name][f'two_batch{eval_batch}'] = _evaluate(
          evaluators[2], _parts(data_dir, 2, eval_batch, files, resize))
  return results


def _batch_devices(dataset):
  """{key: [device of each replica's tensor]} of the first batch."""
  batch = next(iter(dataset))
  return {key: [tensor.device for tensor in TWO.experimental_local_results(
      value)] for key, value in batch.items()}


def check_eval_input(data_dir):
  """Where the two replicas' eval batches lie: as Experiment distributes
  them, and with the default input options (which fetch to the devices)."""
  options = _parts(data_dir, 2, 1, 'sized', 29).pipeline_options('eval')
  return {
      'experiment': _batch_devices(
          experiment.distributed_dataset(TWO, options)),
      'default': _batch_devices(TWO.distribute_datasets_from_function(
          lambda context: input_pipeline.make_dataset(options, context)))}


class _InfOnReplicaOne:
  """The loss, plus a term whose gradient is inf on replica 1 only while
  `poisoned` is True, and 0 otherwise (its value is 0: every loss stays
  finite, and the steps before the poison train exactly as without it)."""

  def __init__(self, loss_fn, model):
    self.loss_fn = loss_fn
    self.loss_names = loss_fn.loss_names
    self.variable = model.trainable_variables[0]
    self.poisoned = tf.Variable(False, trainable=False)

  def __call__(self, outputs, batch):
    losses = dict(self.loss_fn(outputs, batch))
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    scale = tf.where(tf.logical_and(self.poisoned, tf.equal(replica, 1)),
                     np.inf, 0.0)

    @tf.custom_gradient
    def poisoned(x):
      return tf.zeros([]), lambda dy: dy * scale * tf.ones_like(x)

    # The trainer differentiates the total loss.
    losses[panoptic_deeplab_loss.TOTAL_LOSS] += poisoned(self.variable)
    return losses


def check_overflow(trainer, iterator, loss_fn):
  """One more step of a two-replica trainer (loss scaling, loss_fn an
  _InfOnReplicaOne) with an inf gradient on replica 1: what changed."""
  model, optimizer = trainer.model, trainer.optimizer
  before = [[v.numpy().copy() for v in TWO.experimental_local_results(
      variable.value)] for variable in model.trainable_variables]
  iterations_before = int(optimizer.iterations.numpy())
  scale_before = float(optimizer.dynamic_scale.numpy())
  loss_fn.poisoned.assign(True)
  losses = trainer.train(iterator, 1)
  changed = {}
  for replica in range(2):
    changed[replica] = sum(
        int(not np.array_equal(
            TWO.experimental_local_results(v.value)[replica].numpy(),
            b[replica]))
        for v, b in zip(model.trainable_variables, before))
  return {'losses': losses, 'iterations_before': iterations_before,
          'iterations_after': int(optimizer.iterations.numpy()),
          'scale_before': scale_before,
          'scale_after': float(optimizer.dynamic_scale.numpy()),
          'variables_changed_per_replica': changed}


CHECKS = {'evaluation': check_evaluation, 'eval_input': check_eval_input}


def main(work_dir, out_path, names=None):
  """Runs the checks named (default: all) and writes their results.

  'training' writes the results of 'training' and 'overflow'."""
  data_dir = _write_datasets(work_dir)
  results = {}
  for name in (names.split(',') if names else ['training', *CHECKS]):
    if name == 'training':
      results['training'], results['overflow'] = check_training(data_dir)
    else:
      results[name] = CHECKS[name](data_dir)
  with open(out_path, 'w') as f:
    json.dump(results, f)


if __name__ == '__main__':
  main(*sys.argv[1:4])
