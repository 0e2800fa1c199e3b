"""Checkpoint files: which are whole, and restoring without a flood of
warnings. Shared by training, evaluation and export."""

import contextlib
import gc
import logging
import os

import tensorflow as tf

_log = logging.getLogger('deeplab2')


class DamagedCheckpointError(ValueError):
  """A checkpoint with a file missing, truncated or unreadable."""


def first_line(error):
  """The first line of an exception's message (TF's or Python's)."""
  lines = getattr(error, 'message', str(error)).strip().splitlines()
  return lines[0][:300] if lines else type(error).__name__


def damaged_files(path):
  """Why the checkpoint `path` (a prefix) cannot be whole, or None.

  Checks that its .index and every .data shard exist and that the index
  reads; truncated data shows only when read.
  """
  index = path + '.index'
  if not tf.io.gfile.exists(index):
    return f'{os.path.basename(index)} is missing'
  shards = tf.io.gfile.glob(path + '.data-*-of-*')
  if not shards:
    return f'{os.path.basename(path)}.data-*-of-* is missing'
  expected = int(shards[0].rsplit('-of-', 1)[1])
  if len(shards) != expected:
    return f'{expected - len(shards)} of its {expected} .data shards missing'
  try:
    tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError) as e:
    return f'{os.path.basename(index)} unreadable: {first_line(e)}'
  return None


def newest_first(model_dir):
  """The checkpoints the `checkpoint` file of model_dir lists, newest first."""
  state = tf.train.get_checkpoint_state(model_dir)
  return list(reversed(state.all_model_checkpoint_paths)) if state else []


@contextlib.contextmanager
def quiet_restore():
  """Silences TF's per-variable warnings of a restore that fails.

  A restore that raises (another config's checkpoint) leaves a status
  object whose deletion logs one warning per unresolved variable, hundreds
  of lines before the one error that matters. They are dropped here: the
  caller reports the error.
  """
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    gc.collect()       # the failed restore's objects log as they go
    logger.setLevel(level)
