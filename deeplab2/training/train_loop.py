"""The training loop: steps in loops of steps_per_loop, a log line and
summaries per loop, checkpoints at their interval, and a checkpointed stop
on SIGTERM / Ctrl-C (on any host)."""

import collections
import logging
import time
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from deeplab2.config import values as config_values
from deeplab2.training import checkpointing
from deeplab2.training import distribution
from deeplab2.training import interrupts
from deeplab2.training import trainer as trainer_lib

_log = logging.getLogger('deeplab2')

# Steps in a row a loss-scaling optimizer may skip before training fails.
MAX_SKIPPED_STEPS = 50

# Loops whose rate makes the ETA.
_ETA_LOOPS = 5


def format_duration(seconds: float) -> str:
  """'1h02m03s', or '2m03s' under an hour."""
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s' if hours else (
      f'{minutes}m{seconds:02d}s')


class TrainLoop:
  """Trains one experiment's model; built once, run up to several steps.

  The train tf.function and the input pipeline survive between calls of
  `run` (the evaluations of train_and_eval).

  Args:
    strategy: the run's tf.distribute.Strategy.
    trainer: the Trainer of the model, loss and optimizer.
    iterator: the distributed train dataset's iterator.
    schedule: the config's TrainSchedule (loop, summary and checkpoint
      intervals; total_steps for the ETA).
    optimizer: the keras optimizer (`iterations`, `learning_rate`).
    checkpoints: the run's TrainingCheckpoints.
    stop_signals: the entered (or not) interrupts.StopSignals.
    summary_writer: where the train scalars go.
  """

  def __init__(self, strategy: tf.distribute.Strategy,
               trainer: trainer_lib.Trainer, iterator: Iterator,
               schedule: config_values.TrainSchedule,
               optimizer: keras.optimizers.Optimizer,
               checkpoints: checkpointing.TrainingCheckpoints,
               stop_signals: interrupts.StopSignals,
               summary_writer: tf.summary.SummaryWriter):
    self._strategy = strategy
    self._trainer = trainer
    self._iterator = iterator
    self._schedule = schedule
    self._optimizer = optimizer
    self._checkpoints = checkpoints
    self._stop_signals = stop_signals
    self._writer = summary_writer
    self._traced = False

  def _global_step(self) -> int:
    return int(self._optimizer.iterations.numpy())

  def run(self, until_step: int) -> None:
    """Trains from the current step up to `until_step`, saving checkpoints
    at multiples of save_checkpoints_steps (whatever step a resumed run
    started from) and at the end.

    Raises:
      interrupts.TrainingStopped: a stop signal arrived; a checkpoint of
        the step reached exists.
      FloatingPointError: a loss was not finite, or more than
        MAX_SKIPPED_STEPS steps in a row had non-finite gradients (the
        weights were then not saved).
    """
    c = self._schedule
    step = self._global_step()
    start = (time.time(), step)
    # (time, step) at the end of the last loops: once there are two, the ETA
    # takes their rate, not one with the first loop's tracing in it.
    loop_ends: collections.deque = collections.deque(maxlen=_ETA_LOOPS + 1)
    if step < until_step:
      _log.info('Training from step %d to %d%s.', step, until_step,
                '' if self._traced else ' (the first loop also traces the '
                'training step: it takes longer)')
      self._traced = True
    skipped = 0
    while step < until_step:
      num_steps = min(until_step, *[
          (step // interval + 1) * interval
          for interval in (c.steps_per_loop, c.save_checkpoints_steps,
                           c.save_summaries_steps)]) - step
      loop_start = time.time()
      self._stop_signals.settle()
      losses = self._trainer.train(self._iterator, num_steps)
      self._checkpoints.input_position.assign_add(self._trainer.batches_read)
      previous, step = step, self._global_step()
      if self._stop_requested():
        path = self._checkpoints.at(step)
        raise interrupts.TrainingStopped(
            step, self._stop_signals.signal_name or 'a stop signal',
            path if self._checkpoints.is_chief else None)
      # A loss-scaling optimizer skips steps whose gradients overflow; many
      # in a row mean the gradients are not finite at any scale.
      skipped = skipped + num_steps - (step - previous) if (
          step - previous < num_steps) else 0
      if skipped > MAX_SKIPPED_STEPS:
        raise FloatingPointError(
            f'{skipped} training steps in a row had non-finite gradients '
            f'(step {step}); the weights were not updated or saved.')
      now = time.time()
      rate = num_steps / max(now - loop_start, 1e-9)
      loop_ends.append((now, step))
      (first_time, first_step) = loop_ends[0] if len(loop_ends) > 1 else start
      recent_rate = (step - first_step) / max(now - first_time, 1e-9)
      self._report(step, losses, rate, recent_rate,
                   summarise=(step % c.save_summaries_steps == 0 or
                              step == until_step))
      if step % c.save_checkpoints_steps == 0 or step == until_step:
        self._checkpoints.save(step)

  def _report(self, step: int, losses: dict[str, float], rate: float,
              recent_rate: float, summarise: bool) -> None:
    """The log line of a loop, and its summaries when `summarise`."""
    learning_rate = float(self._optimizer.learning_rate)
    total = self._schedule.total_steps
    _log.info(
        'step %d/%d | %s | lr %.3g | %.2f steps/s | ETA %s', step, total,
        ' '.join(f'{name.replace("_loss", "")} {value:.4f}'
                 for name, value in losses.items()),
        learning_rate, rate,
        format_duration((total - step) / recent_rate)
        if recent_rate > 0 else 'unknown')
    if not summarise:
      return
    with self._writer.as_default(step=step):
      for name, value in losses.items():
        tf.summary.scalar(f'losses/{name}', value)
      tf.summary.scalar('learning_rate', learning_rate)
      tf.summary.scalar('steps_per_second', rate)
    self._writer.flush()

  def _stop_requested(self) -> bool:
    """Whether a stop signal arrived (on any host)."""
    requested = self._stop_signals.requested
    if distribution.num_workers(self._strategy) > 1:
      total = distribution.sum_over_workers(
          self._strategy, {'stop': np.array([int(requested)], np.int64)})
      requested = bool(total['stop'][0])
    return requested
