"""The checkpoints of one training run: where each host saves, what was
restored, and saving at most once per step.

Only the chief host writes into model_dir. The other hosts of a
multi-worker run save theirs (which TF's collective saving needs) into a
temporary folder of their own machine, deleted after each save, so a
crashed worker leaves nothing in model_dir.
"""

import errno
import logging
import os
import tempfile

import keras
import tensorflow as tf

from deeplab2.modeling import restore
from deeplab2.training import distribution
from deeplab2.utils import checkpoints

_log = logging.getLogger('deeplab2')

# The input position's entry in a checkpoint (absent from older ones).
_POSITION_KEY = 'input_position/.ATTRIBUTES/VARIABLE_VALUE'


class TrainingCheckpoints:
  """Saves and restores the model and optimizer of one run.

  Args:
    strategy: the run's tf.distribute.Strategy (which host this is).
    model: the keras.Model trained.
    optimizer: its keras optimizer; `iterations` is the global step.
    model_dir: the chief's checkpoint folder.
    max_to_keep: checkpoints the chief keeps (older ones are deleted).
    checkpoint_interval: steps between checkpoints (CheckpointManager's).

  Attributes:
    checkpoint: the tf.train.Checkpoint of `model`, `optimizer`,
      `input_position` and the model's random states.
    input_position: int64 tf.Variable, the global batches the run has
      taken from its training input (the train loop counts them): a
      seeded resume starts the input stream there. Checkpoints written
      before it existed restore it as the global step (and leave the random
      states as they are).
  """

  def __init__(self, strategy: tf.distribute.Strategy, model: keras.Model,
               optimizer: keras.optimizers.Optimizer, model_dir: str,
               max_to_keep: int, checkpoint_interval: int):
    self.is_chief = distribution.is_chief(strategy)
    self.model_dir = model_dir
    self._optimizer = optimizer
    with tf.device('/CPU:0'):
      self.input_position = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name='input_position')
    # The random states of the model's training-time randomness (dropout,
    # drop path): layer variables that Keras keeps out of the model's
    # checkpoint children, yet a resume must continue.
    weights = {id(v) for v in model.weights}
    random_states = [v for v in model.variables if id(v) not in weights]
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, input_position=self.input_position,
        random_states=random_states)
    self._without_position = tf.train.Checkpoint(model=model,
                                                 optimizer=optimizer)
    if self.is_chief:
      self._folder = model_dir
    else:
      # Outside model_dir: a crashed worker leaves nothing in it.
      self._folder = tempfile.mkdtemp(
          prefix=f'deeplab2-worker{distribution.task_id(strategy)}-')
    self._max_to_keep = max_to_keep if self.is_chief else 1
    self._checkpoint_interval = checkpoint_interval
    # Made at the first save: creating one reads the folder's state file,
    # which evaluation (it only reads checkpoints) must not need whole.
    self._manager: tf.train.CheckpointManager | None = None
    # The step of the checkpoint this run restored or last saved, its path.
    self._step: int | None = None
    self._path: str | None = None

  def _step_now(self) -> int:
    return int(self._optimizer.iterations.numpy())

  def restore(self, path: str) -> None:
    """Restores the checkpoint prefix `path`: every variable of the model
    and the optimizer must be in it (see modeling.restore.restore_one).

    Raises:
      checkpoints.DamagedCheckpointError: a file of it missing or damaged.
      ValueError: it was written by another config.
    """
    self._restore_one(path)
    self._step, self._path = self._step_now(), path
    _log.info('Restored %s at step %d.', path, self._step)

  def _restore_one(self, path: str) -> None:
    try:
      names = {name for name, _ in tf.train.list_variables(path)}
    except (tf.errors.OpError, ValueError):
      names = {_POSITION_KEY}    # damaged: restore_one says how
    if _POSITION_KEY in names:
      restore.restore_one(self.checkpoint, path)
      return
    restore.restore_one(self._without_position, path)
    self.input_position.assign(self._optimizer.iterations)

  def restore_newest(self) -> str | None:
    """Restores the newest intact checkpoint of model_dir; returns its path
    (None: model_dir holds none). Newer damaged ones are named in a
    warning.

    Raises:
      checkpoints.DamagedCheckpointError: every checkpoint is damaged.
      ValueError: see restore.
    """
    path, damaged = checkpoints.restore_newest_intact(self.model_dir,
                                                      self._restore_one)
    if path is None:
      return None
    self._step, self._path = self._step_now(), path
    _log.info('Restored %s at step %d.', path, self._step)
    if damaged:
      _log.warning('Resumed from %s: the newer %s damaged.', path,
                   ', '.join(damaged) + (' is' if len(damaged) == 1
                                         else ' are'))
    return path

  def save(self, step: int) -> str:
    """Saves a checkpoint at `step`; returns its path (on a worker other
    than the chief, a path already deleted)."""
    if self._manager is None:
      if self.is_chief:
        checkpoints.repair_state(self._folder)
      self._manager = tf.train.CheckpointManager(
          self.checkpoint, self._folder, max_to_keep=self._max_to_keep,
          step_counter=self._optimizer.iterations,
          checkpoint_interval=self._checkpoint_interval)
    try:
      path = self._manager.save(checkpoint_number=step, check_interval=False)
    except (tf.errors.OpError, OSError) as e:
      raise self._save_failed(step, e) from None
    if self.is_chief:
      _log.info('Saved %s.', path)
    else:
      tf.io.gfile.rmtree(self._folder)
    self._step, self._path = step, path
    return path

  def _save_failed(self, step: int, error: Exception) -> OSError:
    """Removes what the failed save at `step` wrote; returns the error to
    raise: one line, naming the folder and the cause."""
    prefix = os.path.join(self._folder, f'ckpt-{step}')
    for path in tf.io.gfile.glob(prefix + '_temp') + tf.io.gfile.glob(
        prefix + '.*'):
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)
    message = checkpoints.first_line(error)
    full = os.strerror(errno.ENOSPC)
    cause = (f'{full} (the disk is full)' if full in message
             else f'{type(error).__name__}: {message}')
    reason = (f'cannot save the checkpoint of step {step} in {self._folder}: '
              f'{cause}; its partial files were removed')
    if self._path:
      reason += f'; the newest whole checkpoint is {self._path}'
    return OSError(reason)

  def current(self) -> str | None:
    """The checkpoint the weights are now: the one this run restored or
    last saved, while the step has not moved since; else None (trained
    further, or initial weights). On a host other than the chief, a path
    already deleted."""
    if self._path is not None and self._step == self._step_now():
      return self._path
    return None

  def at(self, step: int) -> str:
    """A checkpoint at `step`: the one this run saved or restored at that
    step (intact, as it was read), or a new one. The same on every host."""
    if self._step == step and self._path is not None:
      return self._path
    return self.save(step)
