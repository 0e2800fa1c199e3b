"""Runs an experiment in one of the modes train / eval / train_and_eval /
continuous_eval, with checkpoints, summaries and metric files in model_dir.

  strategy = distribution.create_strategy()
  modes.check_mode('train_and_eval', strategy)
  metrics = modes.run('train_and_eval', config_path, model_dir, strategy)
"""

import contextlib
import logging
import os
from typing import Any, Callable

import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.data import record_checks
from deeplab2.training import distribution
from deeplab2.training import experiment as experiment_lib
from deeplab2.training import interrupts
from deeplab2.training import model_dir_lock
from deeplab2.utils import checkpoints

MODES = ('train', 'eval', 'train_and_eval', 'continuous_eval')
_log = logging.getLogger('deeplab2')

Metrics = dict[str, Any]


def check_mode(mode: str, strategy: tf.distribute.Strategy) -> None:
  """Raises ValueError for a mode unknown or impossible under `strategy`."""
  if mode not in MODES:
    raise ValueError(f'Unknown mode "{mode}"; valid: {", ".join(MODES)}.')
  if mode == 'continuous_eval' and distribution.num_workers(strategy) > 1:
    # Each host would wait for checkpoints on its own and they could pick
    # different ones, then hang in the cross-host sum of the metrics.
    raise ValueError('continuous_eval runs on one host (one or several '
                     'GPUs, or a TPU), not under a multi-worker TF_CONFIG.')


def run(mode: str, config_path: 'config_lib.ConfigSource', model_dir: str,
        strategy: tf.distribute.Strategy | None = None) -> Metrics | None:
  """Runs `mode`; returns the metrics of the last evaluation, if any.

  train: trains to training_number_of_steps (resuming from model_dir).
  eval: evaluates the latest checkpoint in model_dir once.
  train_and_eval: trains, evaluating every eval_interval steps and at the
    end; an already finished run trains no more steps and re-evaluates.
  continuous_eval: evaluates each new checkpoint until the last step, or
    until no new checkpoint comes within continuous_eval_timeout seconds.

  Raises:
    ValueError: see check_mode; a config error (config.ConfigError), or a
      checkpoint of another config or damaged.
    FileNotFoundError: eval or continuous_eval found no checkpoint.
    interrupts.TrainingStopped: a stop signal ended training (with a
      checkpoint).
    interrupts.EvaluationStopped: a stop signal ended an evaluation
      (nothing of it written).
    model_dir_lock.ModelDirInUse: (a ValueError) another trainer holds
      model_dir.
  """
  # One strategy: a MultiWorkerMirroredStrategy may be created only once.
  strategy = strategy or distribution.create_strategy()
  check_mode(mode, strategy)
  experiment = experiment_lib.Experiment(config_path, model_dir, strategy)
  try:
    return _run(mode, config_path, model_dir, experiment)
  except tf.errors.DataLossError as e:
    where = _corrupt_record(experiment, mode)
    if where is None:     # not a record: e.g. a damaged checkpoint
      raise
    raise ValueError(where) from e


def _corrupt_record(experiment: experiment_lib.Experiment,
                    mode: str) -> str | None:
  """The shard and record behind a DataLossError, or None (see
  record_checks.find_corrupt_record)."""
  splits = {'train': ('train',), 'train_and_eval': ('train', 'eval')}
  files = []
  for split in splits.get(mode, ('eval',)):
    files += experiment.parts.shard_files(split)
  return record_checks.find_corrupt_record(files)


def _run(mode: str, config_path: 'config_lib.ConfigSource', model_dir: str,
         experiment: experiment_lib.Experiment) -> Metrics | None:
  """run's work once the experiment is built."""
  if mode in ('train', 'train_and_eval'):
    # Shards that are missing or do not fit the descriptor: one line, and
    # nothing made yet.
    for split in ('train', 'eval') if mode == 'train_and_eval' else ('train',):
      experiment.pipeline_options(split)
    os.makedirs(model_dir, exist_ok=True)
    # The chief writes the checkpoints and summaries: it claims model_dir.
    lock = (model_dir_lock.claim(model_dir) if experiment.is_chief
            else contextlib.nullcontext())
    with lock, experiment.stop_signals:
      return _train(mode, experiment)
  with experiment.stop_signals:
    if mode == 'continuous_eval':
      return _continuous_eval(
          experiment, lambda: experiment_lib.Experiment(
              config_path, model_dir, experiment.strategy,
              experiment.stop_signals))
    if mode == 'eval':
      # model_dir's checkpoints only: the config's initial checkpoint is
      # nothing to evaluate, so it is not read.
      restored = experiment.checkpoints.restore_newest()
      if not restored:
        raise FileNotFoundError(f'No checkpoint in {model_dir} to evaluate.')
      return experiment.evaluate()[0]
  raise AssertionError(mode)   # check_mode knows the modes


def _train(mode: str, experiment: experiment_lib.Experiment) -> Metrics | None:
  """train / train_and_eval (see run)."""
  total = experiment.total_steps
  experiment.restore()
  if experiment.global_step >= total:
    _log.info('Training already finished at step %d.', experiment.global_step)
  if mode == 'train':
    experiment.train(total)
    return None
  interval = experiment.eval_schedule.eval_interval
  metrics = None
  step = experiment.global_step
  # Resumed where an evaluation was stopped before writing its metrics (one
  # host: other hosts may not see the chief's model_dir).
  if (0 < step < total and step % interval == 0 and
      distribution.num_workers(experiment.strategy) == 1 and
      not os.path.exists(
          experiment_lib.metrics_path(experiment.model_dir, step))):
    _log.info('Evaluating step %d first: its evaluation did not finish.',
              step)
    experiment.evaluate()
  while experiment.global_step < total:
    next_eval = min(total, (experiment.global_step // interval + 1) * interval)
    experiment.train(next_eval)
    metrics = experiment.evaluate()[0]
  if metrics is None:
    metrics = experiment.evaluate()[0]
  return metrics


def _continuous_eval(
    experiment: experiment_lib.Experiment,
    rebuild: Callable[[], experiment_lib.Experiment]) -> Metrics | None:
  """Evaluates each new checkpoint once; a checkpoint deleted (by the
  trainer's num_checkpoints_to_keep) before it is read is skipped.

  A restore that fails half-way can leave restorations pending on the
  model's and optimizer's variables; `rebuild` gives a fresh Experiment so
  the next checkpoint is read cleanly."""
  metrics = None
  timeout = experiment.eval_schedule.continuous_eval_timeout
  evaluated = 0
  stop = experiment.stop_signals
  _log.info('continuous_eval: watching %s for new checkpoints until step %d%s.',
            experiment.model_dir, experiment.total_steps,
            '' if timeout is None else f' or {timeout} s without one')
  for path in checkpoints.new_checkpoints(
      experiment.model_dir, timeout, should_stop=lambda: stop.requested):
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
    if stop.requested:
      raise interrupts.EvaluationStopped(None, stop.signal_name or
                                         'a stop signal')
    if not evaluated:
      raise FileNotFoundError(
          f'continuous_eval: no checkpoint in {experiment.model_dir} could '
          f'be evaluated within continuous_eval_timeout ({timeout} s).')
    _log.info('No new checkpoint in %s within %ss; stopping after %d '
              'evaluation(s).', experiment.model_dir, timeout, evaluated)
  return metrics
