"""One experiment built from its config: the model and optimizer under a
tf.distribute strategy, restored from model_dir, trained and evaluated with
checkpoints, summaries and metric files in model_dir.

The modes that drive it (train, eval, train_and_eval, continuous_eval) are
in modes.py; the loop in train_loop.py; where checkpoints go in
checkpointing.py; the hosts' prediction files in prediction_staging.py.
"""

import dataclasses
import logging
import os
import time
from typing import Any, Sequence

import keras
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.data import input_pipeline
from deeplab2.data import record_checks
from deeplab2.evaluation import report
from deeplab2.modeling import weights
from deeplab2.training import best_checkpoint
from deeplab2.training import checkpointing
from deeplab2.training import distribution
from deeplab2.training import evaluator as evaluator_lib
from deeplab2.training import interrupts
from deeplab2.training import prediction_staging
from deeplab2.training import summaries
from deeplab2.training import train_loop
from deeplab2.training import trainer as trainer_lib

_log = logging.getLogger('deeplab2')


def metrics_path(model_dir: str, step: int) -> str:
  """The metrics JSON of the evaluation at `step`."""
  return os.path.join(model_dir, 'eval', f'metrics-{step:08d}.json')


def write_metrics(model_dir: str, step: int, metrics: dict[str, Any]) -> str:
  """Writes the metrics JSON of one evaluation (whole or not at all);
  returns its path."""
  path = metrics_path(model_dir, step)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  report.write_metrics_json({'step': step, **metrics}, path, overwrite=True)
  return path


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    options: input_pipeline.PipelineOptions
) -> tf.distribute.DistributedDataset:
  """The dataset of `options` under `strategy`: one input pipeline per host.

  Args:
    strategy: the tf.distribute strategy of the run.
    options: input_pipeline.PipelineOptions (train or eval).

  Returns:
    A tf.distribute.DistributedDataset of per-replica batches. Training
    batches are prefetched to the replica devices (the default options);
    eval batches stay in host memory (distribution.eval_input_options), so
    their file names and variably shaped labels never go to a device.
  """
  return strategy.distribute_datasets_from_function(
      lambda context: input_pipeline.make_dataset(options, context),
      options=(None if options.is_training
               else distribution.eval_input_options()))


class Experiment:
  """Everything built from one config, ready to train or evaluate.

  Only the chief host writes metrics, summaries and checkpoints into
  model_dir (see checkpointing.TrainingCheckpoints for the others).

  Args:
    config_path: the experiment textproto, or a config.ConfigFile (its path
      and command-line overrides).
    model_dir: checkpoints, summaries and metrics go here.
    strategy: a tf.distribute strategy (default:
      distribution.create_strategy()).
    stop_signals: the interrupts.StopSignals to heed (default: a new one);
      the caller enters it.

  Attributes:
    parts: the config's ExperimentParts.
    model, optimizer: the keras.Model and its optimizer, built under the
      strategy's scope.
    checkpoints: the run's TrainingCheckpoints.
    best_policy: config.values.BestCheckpoint, whether and by which metric
      evaluate() keeps the best checkpoint in model_dir/best.
    stop_signals: entered by modes.run: SIGTERM / Ctrl-C then stop training
      at the next step, with a checkpoint, and an evaluation before its
      next batch, writing nothing.
  """

  def __init__(self, config_path: 'config_lib.ConfigSource', model_dir: str,
               strategy: tf.distribute.Strategy | None = None,
               stop_signals: interrupts.StopSignals | None = None):
    self.strategy = strategy or distribution.create_strategy()
    self.model_dir = model_dir
    self.is_chief = distribution.is_chief(self.strategy)
    num_replicas = self.strategy.num_replicas_in_sync
    _log.info('strategy: %s', distribution.describe(self.strategy))
    self.parts = config_lib.load_experiment(config_path,
                                            num_replicas=num_replicas)
    _log.info('experiment "%s" from %s on %d replica(s)',
              self.parts.experiment_name, config_path, num_replicas)
    self.train_schedule = self.parts.train_schedule
    self.eval_schedule = self.parts.eval_schedule
    self.best_policy = self.parts.best_checkpoint
    self.total_steps = self.train_schedule.total_steps
    if self.parts.seed is not None:
      # Weight initialisation; the data order takes the seed separately.
      keras.utils.set_random_seed(self.parts.seed)
    _log.info('Building the model and optimizer.')
    with self.strategy.scope():
      self.model: keras.Model = self.parts.build_model()
      self.optimizer: keras.optimizers.Optimizer = (
          self.parts.build_optimizer())
      self.optimizer.build(self.model.trainable_variables)
    self.checkpoints = checkpointing.TrainingCheckpoints(
        self.strategy, self.model, self.optimizer, model_dir,
        max_to_keep=self.train_schedule.num_checkpoints_to_keep,
        checkpoint_interval=self.train_schedule.save_checkpoints_steps)
    self.stop_signals = stop_signals or interrupts.StopSignals()
    self._train_loop: train_loop.TrainLoop | None = None
    self._checked_splits: set[str] = set()
    self._evaluator: evaluator_lib.Evaluator | None = None

  @property
  def global_step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  def restore(self, checkpoint_path: str | None = None) -> str | None:
    """Restores `checkpoint_path`, or the newest intact checkpoint of
    model_dir; returns its path (None: none, the config's initial
    checkpoint, if any, or initial weights instead).

    A damaged newest checkpoint (a file missing or truncated) is named in
    a warning and the next older one is tried.

    Raises:
      checkpoints.DamagedCheckpointError: every checkpoint of model_dir is
        damaged, or the one given is (the message names it).
      ValueError: the checkpoint was written by another config.
    """
    if checkpoint_path:
      self.checkpoints.restore(checkpoint_path)
      return checkpoint_path
    path = self.checkpoints.restore_newest()
    if path:
      return path
    initial = self.parts.initial_checkpoint
    if initial.path:
      weights.restore_weights(self.model, initial.path,
                              initial.restore_semantic_last_layer,
                              initial.restore_instance_last_layer)
    return None

  def pipeline_options(self, split: str) -> input_pipeline.PipelineOptions:
    """The input pipeline options of 'train' or 'eval'; the first call per
    split checks its shards against its descriptor
    (record_checks.check_records).

    Raises:
      config.ConfigError: no shards match (at the file_pattern field).
      ValueError: the shards do not fit the descriptor (the message names
        shard and descriptor).
    """
    options = self.parts.pipeline_options(split)
    if split not in self._checked_splits:
      files = self.parts.shard_files(split)
      dataset = self.parts.dataset_source(split)
      count = record_checks.check_records(
          files, self.parts.descriptor(split).label_spec, dataset)
      _log.info('%s: %d records in %d shard(s) fit the descriptor %s.',
                split, count, len(files), dataset)
      self._checked_splits.add(split)
    return options

  def dataset(self, split: str) -> tf.distribute.DistributedDataset:
    """The distributed dataset of 'train' or 'eval'."""
    return distributed_dataset(self.strategy, self.pipeline_options(split))

  def _summary_writer(self, name: str) -> tf.summary.SummaryWriter:
    if not self.is_chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(self.model_dir, name))

  def train(self, until_step: int) -> None:
    """Trains from the current step up to `until_step`, saving checkpoints
    (see train_loop.TrainLoop.run)."""
    if self._train_loop is None:
      # Built once per experiment: the train tf.function and the input
      # pipeline then survive the evaluations of train_and_eval.
      trainer = trainer_lib.Trainer(
          self.strategy, self.model, self.parts.build_loss(), self.optimizer,
          self.parts.train_batch_size,
          weight_decay=self.parts.l2_weight_decay,
          # Several hosts must stop at the same step: they agree between
          # loops instead (TrainLoop._stop_requested).
          stop_flag=(self.stop_signals.flag
                     if distribution.num_workers(self.strategy) == 1
                     else None))
      # A seeded stream goes on from where the restored run left it.
      options = dataclasses.replace(
          self.pipeline_options('train'),
          start_batch=int(self.checkpoints.input_position.numpy()))
      writer = self._summary_writer('train')
      if self.is_chief:
        _log.info('TensorBoard: tensorboard --logdir %s', self.model_dir)
        # A batch of its own pipeline: the run's stream is not touched.
        summaries.write_training_start(
            writer, self.global_step,
            self.parts.config_text(),
            next(iter(input_pipeline.make_dataset(options))),
            self.parts.descriptor('train').label_spec)
      self._train_loop = train_loop.TrainLoop(
          self.strategy, trainer,
          iter(distributed_dataset(self.strategy, options)),
          self.train_schedule, self.optimizer, self.checkpoints,
          self.stop_signals, writer)
    self._train_loop.run(until_step)

  def _raise_if_stopped(self, step: int | None) -> None:
    if self.stop_signals.requested:
      raise interrupts.EvaluationStopped(
          step, self.stop_signals.signal_name or 'a stop signal')

  def evaluate(self) -> tuple[dict[str, Any], str | None]:
    """Evaluates the current weights; returns (metrics, the metrics JSON's
    path), which the chief writes (other hosts: path None).

    With keep_best_checkpoint, the chief then keeps the checkpoint the
    weights are (one of model_dir's) as model_dir/best when it beats the
    best so far (best_checkpoint.keep_if_best).

    Raises:
      interrupts.EvaluationStopped: a stop signal came (checked before
        each batch); no metrics or predictions were written.
    """
    schedule = self.eval_schedule
    descriptor = self.parts.descriptor('eval')
    if self._evaluator is None:
      self._evaluator = evaluator_lib.Evaluator(
          self.strategy, self.model, self.parts.build_post_processor(),
          descriptor.label_spec, num_vis_samples=schedule.num_vis_samples,
          tta=schedule.tta)
    evaluator = self._evaluator
    start = time.time()
    step = self.global_step
    predictions = None
    if schedule.save_predictions:
      predictions = prediction_staging.PredictionStaging(
          self.strategy, prediction_staging.predictions_path(
              self.model_dir, step, schedule.save_dir), descriptor)
      evaluator.prediction_writers = [predictions.add]
    try:
      metrics = evaluator.evaluate(
          self.dataset('eval'), schedule.eval_steps,
          finish_local=predictions.close_local if predictions else None,
          check_stop=lambda: self._raise_if_stopped(step))
    except BaseException:
      if predictions is not None:
        predictions.discard()
      raise
    finally:
      evaluator.prediction_writers = []
    if predictions is not None:
      folder = predictions.publish()
      if folder:
        _log.info('predictions written to %s', folder)
    if self.is_chief and self.best_policy.keep:
      # Before the metrics file: a run stopped in between evaluates this
      # step again when resumed (modes._train), keeping its best then.
      best_checkpoint.keep_if_best(
          self.model_dir, self.checkpoints.current(), step, metrics,
          self.best_policy.metric)
    path = write_metrics(self.model_dir, step, metrics) if self.is_chief else (
        None)
    summaries.write_evaluation(self._summary_writer('eval'), step, metrics,
                               evaluator.samples, descriptor.class_names)
    if self.is_chief and evaluator.confusion is not None:
      summaries.write_pictures(self.model_dir, step, evaluator.confusion,
                               descriptor.class_names)
    _log_metrics(step, metrics, time.time() - start, descriptor.class_names)
    if path:
      _log.info('metrics written to %s', path)
    return metrics, path


def _log_metrics(step: int, metrics: dict[str, Any], seconds: float,
                 class_names: Sequence[str]) -> None:
  """The log lines of one evaluation: PQ, mIoU, per class, mask AP."""
  _log.info('eval at step %d on %d images (%.1fs): PQ %.4f (things %.4f, '
            'stuff %.4f) SQ %.4f RQ %.4f mIoU %.4f', step,
            metrics['num_images'], seconds, metrics['pq_all'],
            metrics['pq_things'], metrics['pq_stuff'], metrics['sq_all'],
            metrics['rq_all'], metrics['miou'])
  _log.info('per class:\n%s', report.format_table(metrics, class_names))
  if 'ap' in metrics:
    _log.info('mask AP %.4f AP50 %.4f AP75 %.4f (small %.4f, medium %.4f, '
              'large %.4f)', metrics['ap'], metrics['ap50'],
              metrics['ap75'], metrics['ap_small'], metrics['ap_medium'],
              metrics['ap_large'])
