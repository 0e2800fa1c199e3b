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


def assert_matched(status):
  """status.assert_existing_objects_matched(), and when that fails,
  expect_partial() first: the status then logs no warning per variable."""
  try:
    return status.assert_existing_objects_matched()
  except AssertionError:
    status.expect_partial()
    raise


def _files_with_prefix(prefix):
  """Files named `<prefix>...` (a literal prefix: no glob characters)."""
  folder, name = os.path.split(prefix)
  try:
    entries = tf.io.gfile.listdir(folder or '.')
  except tf.errors.NotFoundError:
    return []
  return [os.path.join(folder, entry) for entry in entries
          if entry.startswith(name)]


def damaged_files(path):
  """Why the checkpoint `path` (a prefix) cannot be whole, or None.

  Checks that its .index and every .data shard exist and that the index
  reads; truncated data shows only when read.
  """
  index = path + '.index'
  if not tf.io.gfile.exists(index):
    return f'{os.path.basename(index)} is missing'
  shards = [f for f in _files_with_prefix(path + '.data-')
            if '-of-' in f and not f.endswith('.tmp')]
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
  """The checkpoints of model_dir, newest first.

  They are the ones its `checkpoint` file lists. When that file is missing
  or unreadable while `ckpt-N.index` files exist, those are taken by step
  (with a warning), so a lost state file never restarts training at 0.
  """
  state = None
  try:
    state = tf.train.get_checkpoint_state(model_dir)
  except (tf.errors.OpError, ValueError):
    pass
  if state is not None:
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
      paths.append(state.model_checkpoint_path)
    return list(reversed(paths))
  found = []
  for index in _files_with_prefix(os.path.join(model_dir, 'ckpt-')):
    step = index[len(os.path.join(model_dir, 'ckpt-')):-len('.index')]
    if index.endswith('.index') and step.isdigit():
      found.append((int(step), index[:-len('.index')]))
  if found:
    _log.warning('%s has checkpoints but no readable `checkpoint` file; '
                 'taking them by step.', model_dir)
  return [path for _, path in sorted(found, reverse=True)]


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


def restore_newest_intact(model_dir, restore_one):
  """Restores the newest checkpoint of model_dir that is not damaged.

  Args:
    model_dir: the folder of the checkpoints (newest_first).
    restore_one: callable(path) restoring one checkpoint; raises
      DamagedCheckpointError for a damaged one (restore_checked does).

  Returns:
    (the path restored or None when there is no checkpoint, the newer
    damaged paths skipped); each skipped one is named in a warning.

  Raises:
    DamagedCheckpointError: every checkpoint is damaged.
  """
  damaged = []
  for path in newest_first(model_dir):
    try:
      restore_one(path)
    except DamagedCheckpointError as e:
      _log.warning('%s; trying an older checkpoint.', e)
      damaged.append(path)
      continue
    return path, damaged
  if damaged:
    raise DamagedCheckpointError(f'Every checkpoint in {model_dir} is '
                                 f'damaged: {", ".join(damaged)}.')
  return None, damaged
