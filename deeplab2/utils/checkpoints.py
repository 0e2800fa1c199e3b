"""Checkpoint files: which are whole, and restoring without a flood of
warnings. Shared by training, evaluation and export."""

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


def restore_checked(path, restore_fn, check_files=True):
  """Runs `restore_fn()` (which restores `path`) and explains failures.

  TF's per-variable warnings of a failed restore (hundreds of lines, logged
  as its objects are deleted) are dropped: the error says what matters.

  Args:
    path: the checkpoint prefix.
    restore_fn: callable doing the restore.
    check_files: first check that the checkpoint's files are whole.

  Raises:
    DamagedCheckpointError: a file missing, truncated or unreadable.
    ValueError: the checkpoint holds other variables or shapes (another
      config's); the message has TF's first line, which names the variable
      and both shapes.
  """
  problem = damaged_files(path) if check_files else None
  if problem:
    raise DamagedCheckpointError(f'Checkpoint {path} is damaged ({problem})')
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel(logging.ERROR)
  failure = None
  try:
    try:
      restore_fn()
    except (tf.errors.OpError, IndexError) as e:
      failure = DamagedCheckpointError(
          f'Checkpoint {path} is damaged ({type(e).__name__}: '
          f'{first_line(e)})')
    except (ValueError, AssertionError) as e:
      failure = ValueError(f'Checkpoint {path} does not fit this config: '
                           f'{first_line(e)}')
    # The failed restore's objects are gone with `e`'s traceback: collect
    # them while their warnings are still silenced.
    gc.collect()
  finally:
    logger.setLevel(level)
  if failure is not None:
    raise failure
