"""Runs an experiment in one of the modes train / eval / train_and_eval /
continuous_eval, with checkpoints, summaries and metric files in model_dir.
"""

import logging
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2.data import input_pipeline
from deeplab2.evaluation import prediction_files
from deeplab2.evaluation import report
from deeplab2.modeling import weights
from deeplab2.training import distribution
from deeplab2.training import evaluator as evaluator_lib
from deeplab2.training import interrupts
from deeplab2.training import trainer as trainer_lib
from deeplab2.utils import checkpoints

MODES = ('train', 'eval', 'train_and_eval', 'continuous_eval')
_log = logging.getLogger('deeplab2')
create_strategy = distribution.create_strategy


# Steps in a row a loss-scaling optimizer may skip before training fails.
_MAX_SKIPPED_STEPS = 50


def _format_duration(seconds):
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s' if hours else (
      f'{minutes}m{seconds:02d}s')


def metrics_path(model_dir, step):
  return os.path.join(model_dir, 'eval', f'metrics-{step:08d}.json')


def predictions_path(model_dir, step, save_dir=''):
  """The folder of one evaluation's prediction files."""
  return os.path.join(save_dir or os.path.join(model_dir, 'eval'),
                      f'predictions-{step:08d}')


def prediction_writer(folder, descriptor):
  """(writer, add) for the eval dataset's official format: the three
  cityscapesScripts formats for Cityscapes, COCO panoptic otherwise.
  add(filename, maps, segment_scores) writes one image (the evaluator's
  writer call)."""
  if descriptor.name == 'cityscapes_panoptic':
    writer = prediction_files.CityscapesWriter(folder, descriptor)

    def add_cityscapes(filename, maps, segment_scores):
      writer.add(filename, maps[common.PRED_PANOPTIC],
                 maps[common.PRED_SEMANTIC], segment_scores)
    return writer, add_cityscapes
  writer = prediction_files.CocoPanopticWriter(folder, descriptor)

  def add(filename, maps, segment_scores):
    del segment_scores   # COCO panoptic holds none.
    writer.add(filename, maps[common.PRED_PANOPTIC])
  return writer, add


def distributed_dataset(strategy, options):
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


def write_metrics(model_dir, step, metrics):
  """Writes the metrics JSON of one evaluation; returns its path."""
  path = metrics_path(model_dir, step)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  report.write_metrics_json({'step': step, **metrics}, path, overwrite=True)
  return path


class Experiment:
  """Everything built from one config, ready to train or evaluate.

  Only the chief host writes metrics, summaries and checkpoints into
  model_dir; the other hosts of a multi-worker run save theirs (which
  TF's collective saving needs) into a temporary folder of their own
  machine, deleted after each save.

  Args:
    config_path: the experiment textproto.
    model_dir: checkpoints, summaries and metrics go here.
    strategy: a tf.distribute strategy (default: create_strategy()).
  """

  def __init__(self, config_path, model_dir, strategy=None):
    self.strategy = strategy or create_strategy()
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
    self.total_steps = self.train_schedule.total_steps
    if self.parts.seed is not None:
      # Weight initialisation; the data order takes the seed separately.
      keras.utils.set_random_seed(self.parts.seed)
    with self.strategy.scope():
      self.model = self.parts.build_model(num_replicas=num_replicas)
      self.optimizer = self.parts.build_optimizer()
      self.optimizer.build(self.model.trainable_variables)
    self.checkpoint = tf.train.Checkpoint(model=self.model,
                                          optimizer=self.optimizer)
    if self.is_chief:
      self._checkpoint_dir = model_dir
    else:
      # Outside model_dir: a crashed worker leaves nothing in it.
      self._checkpoint_dir = tempfile.mkdtemp(
          prefix=f'deeplab2-worker{distribution.task_id(self.strategy)}-')
    self.checkpoint_manager = tf.train.CheckpointManager(
        self.checkpoint, self._checkpoint_dir,
        max_to_keep=(self.train_schedule.num_checkpoints_to_keep
                     if self.is_chief else 1),
        step_counter=self.optimizer.iterations,
        checkpoint_interval=self.train_schedule.save_checkpoints_steps)
    # Entered by run(): SIGTERM / Ctrl-C then stop training at the next
    # step, with a checkpoint.
    self.stop_signals = interrupts.StopSignals()
    # The step of the checkpoint this run restored or last saved.
    self._saved_step, self._saved_path = None, None
    self._trainer = None
    self._train_iterator = None
    self._summary_writer = None
    self._evaluator = None

  @property
  def global_step(self):
    return int(self.optimizer.iterations.numpy())

  def restore(self, checkpoint_path=None):
    """Restores `checkpoint_path`, or the newest intact checkpoint of
    model_dir; returns its path (None: none, initial weights instead).

    A damaged newest checkpoint (a file missing or truncated) is named in
    a warning and the next older one is tried.

    Raises:
      ValueError: every checkpoint of model_dir is damaged, or the one
        given is (the message names it).
    """
    if checkpoint_path:
      self._restore_checked(checkpoint_path)
      return checkpoint_path
    path, damaged = checkpoints.restore_newest_intact(
        self.model_dir, self._restore_checked)
    if path and damaged:
      _log.warning('Resumed from %s: the newer %s damaged.', path,
                   ', '.join(damaged) + (' is' if len(damaged) == 1
                                         else ' are'))
    if path:
      return path
    if self.parts.initial_checkpoint.path:
      initial = self.parts.initial_checkpoint
      weights.restore_weights(self.model, initial.path,
                              initial.restore_semantic_last_layer,
                              initial.restore_instance_last_layer)
    return None

  def _restore_checked(self, path):
    """Restores one checkpoint; see checkpoints.restore_checked."""
    checkpoints.restore_checked(
        path, lambda: checkpoints.assert_matched(self.checkpoint.restore(path)))
    self._saved_step, self._saved_path = self.global_step, path
    _log.info('Restored %s at step %d.', path, self.global_step)

  def _dataset(self, split):
    """The distributed dataset of 'train' or 'eval'."""
    options = self.parts.pipeline_options(
        split, num_replicas=self.strategy.num_replicas_in_sync,
        seed=self.parts.seed if split == 'train' else None)
    return distributed_dataset(self.strategy, options)

  def _summary_writer_of(self, name):
    if not self.is_chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(self.model_dir, name))

  def evaluate(self):
    """Evaluates the current weights; returns (metrics, the metrics JSON's
    path), which the chief writes (other hosts: path None)."""
    if self._evaluator is None:
      self._evaluator = evaluator_lib.Evaluator(
          self.strategy, self.model, self.parts.build_post_processor(),
          self.parts.descriptor('eval').label_spec,
          num_vis_samples=self.eval_schedule.num_vis_samples,
          eval_scales=self.eval_schedule.eval_scales,
          add_flipped_images=self.eval_schedule.add_flipped_images)
    start = time.time()
    step = self.global_step
    predictions = None
    if self.eval_schedule.save_predictions:
      predictions = _PredictionFiles(
          self.strategy, predictions_path(self.model_dir, step,
                                          self.eval_schedule.save_dir),
          self.parts.descriptor('eval'))
      self._evaluator.prediction_writers = [predictions.add]
    try:
      metrics = self._evaluator.evaluate(
          self._dataset('eval'), self.eval_schedule.eval_steps,
          finish_local=predictions.close_local if predictions else None)
    except BaseException:
      if predictions is not None:
        predictions.discard()
      raise
    finally:
      self._evaluator.prediction_writers = []
    if predictions is not None:
      folder = predictions.publish()
      if folder:
        _log.info('predictions written to %s', folder)
    path = None
    if self.is_chief:
      path = write_metrics(self.model_dir, step, metrics)
    writer = self._summary_writer_of('eval')
    with writer.as_default(step=step):
      for name, value in sorted(metrics.items()):
        if isinstance(value, (int, float)):
          tf.summary.scalar(f'eval/{name}', value)
      for i, sample in enumerate(self._evaluator.samples):
        for name, picture in sample.items():
          tf.summary.image(f'eval_images/{i}/{name}', picture[None])
    writer.flush()
    _log.info('eval at step %d on %d images (%.1fs): PQ %.4f (things %.4f, '
              'stuff %.4f) SQ %.4f RQ %.4f mIoU %.4f', step,
              metrics['num_images'], time.time() - start, metrics['pq_all'],
              metrics['pq_things'], metrics['pq_stuff'], metrics['sq_all'],
              metrics['rq_all'], metrics['miou'])
    descriptor = self.parts.descriptor('eval')
    _log.info('per class:\n%s', report.format_table(metrics,
                                                     descriptor.class_names))
    if 'ap' in metrics:
      _log.info('mask AP %.4f AP50 %.4f AP75 %.4f (small %.4f, medium %.4f, '
                'large %.4f)', metrics['ap'], metrics['ap50'],
                metrics['ap75'], metrics['ap_small'], metrics['ap_medium'],
                metrics['ap_large'])
    if self.is_chief:
      _log.info('metrics written to %s', path)
    return metrics, path

  def train(self, until_step):
    """Trains from the current step up to `until_step`, saving checkpoints."""
    c = self.train_schedule
    if self._trainer is None:
      # Built once per experiment: the train tf.function and the input
      # pipeline then survive the evaluations of train_and_eval.
      self._trainer = trainer_lib.Trainer(
          self.strategy, self.model, self.parts.build_loss(), self.optimizer,
          self.parts.train_batch_size,
          weight_decay=self.parts.l2_weight_decay,
          # Several hosts must stop at the same step: they agree between
          # loops instead (_stop_requested).
          stop_flag=(self.stop_signals.flag
                     if distribution.num_workers(self.strategy) == 1
                     else None))
      self._train_iterator = iter(self._dataset('train'))
      self._summary_writer = self._summary_writer_of('train')
    trainer, iterator = self._trainer, self._train_iterator
    writer = self._summary_writer
    start_step = step = self.global_step
    start_time = time.time()
    skipped = 0
    while step < until_step:
      num_steps = min(until_step, *[
          (step // interval + 1) * interval
          for interval in (c.steps_per_loop, c.save_checkpoints_steps,
                           c.save_summaries_steps)]) - step
      loop_start = time.time()
      losses = trainer.train(iterator, num_steps)
      previous, step = step, self.global_step
      if self._stop_requested():
        # Saved by this run at this step already, or restored from it (and
        # so intact): no second save. The same on every host.
        path = (self._saved_path if self._saved_step == step
                else self._save(step))
        raise interrupts.TrainingStopped(
            step, self.stop_signals.signal_name or 'a stop signal',
            path if self.is_chief else None)
      # A loss-scaling optimizer skips steps whose gradients overflow; many
      # in a row mean the gradients are not finite at any scale.
      skipped = skipped + num_steps - (step - previous) if (
          step - previous < num_steps) else 0
      if skipped > _MAX_SKIPPED_STEPS:
        raise FloatingPointError(
            f'{skipped} training steps in a row had non-finite gradients '
            f'(step {step}); the weights were not updated or saved.')
      rate = num_steps / max(time.time() - loop_start, 1e-9)
      overall_rate = (step - start_step) / max(time.time() - start_time, 1e-9)
      learning_rate = float(self.optimizer.learning_rate)
      _log.info(
          'step %d/%d | %s | lr %.3g | %.2f steps/s | ETA %s', step,
          self.total_steps,
          ' '.join(f'{name.replace("_loss", "")} {value:.4f}'
                   for name, value in losses.items()),
          learning_rate, rate,
          _format_duration((self.total_steps - step) / overall_rate)
          if overall_rate > 0 else 'unknown')
      if step % c.save_summaries_steps == 0 or step == until_step:
        with writer.as_default(step=step):
          for name, value in losses.items():
            tf.summary.scalar(f'losses/{name}', value)
          tf.summary.scalar('learning_rate', learning_rate)
          tf.summary.scalar('steps_per_second', rate)
        writer.flush()
      # At multiples of save_checkpoints_steps, whatever step a resumed
      # run started from, and at the end.
      if step % c.save_checkpoints_steps == 0 or step == until_step:
        self._save(step)

  def _stop_requested(self):
    """Whether a stop signal arrived (on any host)."""
    requested = self.stop_signals.requested
    if distribution.num_workers(self.strategy) > 1:
      total = distribution.sum_over_workers(
          self.strategy, {'stop': np.array([int(requested)], np.int64)})
      requested = bool(total['stop'][0])
    return requested

  def _save(self, step):
    """Saves a checkpoint at `step`; returns its path."""
    path = self.checkpoint_manager.save(checkpoint_number=step,
                                        check_interval=False)
    if not self.is_chief:
      tf.io.gfile.rmtree(self._checkpoint_dir)
    self._saved_step, self._saved_path = step, path
    return path


class _PredictionFiles:
  """One evaluation's prediction files, written by every host.

  Each host writes its own images into `<folder>.partial/host-<i>/`. Once
  every host has closed its writer (the evaluation's cross-host sum comes
  after that), the chief merges them into `<folder>`, or, when an earlier
  evaluation of the same step left that, into `<folder>-2`, `-3`, ...:
  nothing is replaced, and a folder appears only when it is whole.
  """

  def __init__(self, strategy, folder, descriptor):
    self._is_chief = distribution.is_chief(strategy)
    self._folder = folder
    self._partial = folder + '.partial'
    if self._is_chief and os.path.exists(self._partial):
      shutil.rmtree(self._partial)     # left by an interrupted evaluation
    distribution.barrier(strategy)     # ... before any host writes into it
    self._host_dir = os.path.join(
        self._partial, f'host-{distribution.worker_index(strategy)}')
    self._writer, self.add = prediction_writer(self._host_dir, descriptor)

  def close_local(self):
    self._writer.close()

  def discard(self):
    shutil.rmtree(self._partial if self._is_chief else self._host_dir,
                  ignore_errors=True)

  def publish(self):
    """Merges the hosts' files (chief); returns the folder, or None."""
    if not self._is_chief:
      return None
    folder, count = self._folder, 1
    while os.path.exists(folder):
      count += 1
      folder = f'{self._folder}-{count}'
    hosts = sorted(os.listdir(self._partial),
                   key=lambda name: int(name.split('-')[1]))
    merged = os.path.join(self._partial, 'merged')
    prediction_files.merge_folders(
        [os.path.join(self._partial, name) for name in hosts], merged)
    os.replace(merged, folder)
    shutil.rmtree(self._partial)
    return folder


def check_mode(mode, strategy):
  """Raises ValueError for a mode unknown or impossible under `strategy`."""
  if mode not in MODES:
    raise ValueError(f'Unknown mode "{mode}"; valid: {", ".join(MODES)}.')
  if mode == 'continuous_eval' and distribution.num_workers(strategy) > 1:
    # Each host would wait for checkpoints on its own and they could pick
    # different ones, then hang in the cross-host sum of the metrics.
    raise ValueError('continuous_eval runs on one host (one or several '
                     'GPUs, or a TPU), not under a multi-worker TF_CONFIG.')


def run(mode, config_path, model_dir, strategy=None):
  """Runs `mode`; returns the metrics of the last evaluation, if any.

  train: trains to training_number_of_steps (resuming from model_dir).
  eval: evaluates the latest checkpoint in model_dir once.
  train_and_eval: trains, evaluating every eval_interval steps and at the
    end; an already finished run trains no more steps and re-evaluates.
  continuous_eval: evaluates each new checkpoint until the last step, or
    until no new checkpoint comes within continuous_eval_timeout seconds.
  """
  # One strategy: a MultiWorkerMirroredStrategy may be created only once.
  strategy = strategy or create_strategy()
  check_mode(mode, strategy)
  experiment = Experiment(config_path, model_dir, strategy)
  if mode in ('train', 'train_and_eval'):
    os.makedirs(model_dir, exist_ok=True)
    with experiment.stop_signals:
      return _train(mode, experiment)
  if mode == 'continuous_eval':
    return _continuous_eval(
        experiment, lambda: Experiment(config_path, model_dir,
                                       experiment.strategy))
  restored = experiment.restore()
  if mode == 'eval':
    if not restored:
      raise FileNotFoundError(f'No checkpoint in {model_dir} to evaluate.')
    return experiment.evaluate()[0]
  raise AssertionError(mode)   # check_mode knows the modes


def _train(mode, experiment):
  """train / train_and_eval (see run)."""
  total = experiment.total_steps
  experiment.restore()
  if mode == 'train':
    if experiment.global_step >= total:
      _log.info('Training already finished at step %d.', experiment.global_step)
    experiment.train(total)
    return None
  interval = experiment.eval_schedule.eval_interval
  metrics = None
  if experiment.global_step >= total:
    _log.info('Training already finished at step %d.', experiment.global_step)
  while experiment.global_step < total:
    next_eval = min(total, (experiment.global_step // interval + 1) * interval)
    experiment.train(next_eval)
    metrics = experiment.evaluate()[0]
  if metrics is None:
    metrics = experiment.evaluate()[0]
  return metrics


def _continuous_eval(experiment, rebuild):
  """Evaluates each new checkpoint once; a checkpoint deleted (by the
  trainer's num_checkpoints_to_keep) before it is read is skipped.

  A restore that fails half-way can leave restorations pending on the
  model's and optimizer's variables; `rebuild` gives a fresh Experiment so
  the next checkpoint is read cleanly."""
  metrics = None
  timeout = experiment.eval_schedule.continuous_eval_timeout
  evaluated = 0
  for path in tf.train.checkpoints_iterator(experiment.model_dir,
                                            timeout=timeout):
    try:
      experiment.restore(path)
    except checkpoints.DamagedCheckpointError as e:
      # Usually deleted by the trainer's num_checkpoints_to_keep meanwhile.
      _log.warning('Skipped: %s.', e)
      experiment = rebuild()
      continue
    metrics = experiment.evaluate()[0]
    evaluated += 1
    if experiment.global_step >= experiment.total_steps:
      break
  else:
    if not evaluated:
      raise FileNotFoundError(
          f'continuous_eval: no checkpoint in {experiment.model_dir} could '
          f'be evaluated within continuous_eval_timeout ({timeout} s).')
    _log.info('No new checkpoint in %s within %ss; stopping after %d '
              'evaluation(s).', experiment.model_dir, timeout, evaluated)
  return metrics
