"""Checkpoint files: which are whole, and restoring without a flood of
warnings. Shared by training, evaluation and export."""

import gc
import logging
import math
import os
import time

import tensorflow as tf

from deeplab2.utils import atomic

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


def checkpoint_files(path):
  """The files of the checkpoint prefix `path` (`.../ckpt-400`): its
  `.index` and its `.data-*-of-*` shards, not a writer's temporary files;
  sorted. Only `path` itself: `ckpt-40` does not take `ckpt-400`'s."""
  return sorted(
      f for f in _files_with_prefix(path + '.')
      if f == path + '.index' or (
          f.startswith(path + '.data-') and '-of-' in f and
          not f.endswith('.tmp')))


def training_step(path):
  """The global step a training checkpoint was saved at, or None (another
  kind of checkpoint: deeplab2's, a weights file)."""
  try:
    reader = tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError):
    return None
  key = 'optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE'
  return int(reader.get_tensor(key)) if reader.has_tensor(key) else None


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


STATE_FILE = 'checkpoint'


def _state_or_problem(model_dir):
  """(model_dir's CheckpointState or None, why its state file is unreadable
  or None). A missing state file is (None, None)."""
  path = os.path.join(model_dir, STATE_FILE)
  try:
    state = tf.train.get_checkpoint_state(model_dir)
  except (tf.errors.OpError, ValueError) as e:   # binary, empty
    return None, first_line(e)
  if state is None and tf.io.gfile.exists(path):
    return None, 'it does not parse as a checkpoint state'
  return state, None


def _by_step(model_dir):
  """model_dir's `ckpt-N` checkpoints found by their .index files, newest
  first: model_dir's own entries only, never a subfolder's (best/)."""
  prefix = os.path.join(model_dir, 'ckpt-')
  found = []
  for index in _files_with_prefix(prefix):
    step = index[len(prefix):-len('.index')]
    if index.endswith('.index') and step.isdigit():
      found.append((int(step), index[:-len('.index')]))
  return [path for _, path in sorted(found, reverse=True)]


def newest_first(model_dir, warn=True):
  """The checkpoints of model_dir, newest first.

  They are the ones its `checkpoint` state file lists. When that file is
  missing or unreadable while `ckpt-N.index` files exist, those are taken
  by step (with a warning, unless `warn` is False), so a lost state file
  never restarts training at 0 nor leaves a checkpoint unevaluated.
  """
  state, problem = _state_or_problem(model_dir)
  if state is not None:
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
      paths.append(state.model_checkpoint_path)
    return list(reversed(paths))
  found = _by_step(model_dir)
  if found and warn:
    why = (f'its `{STATE_FILE}` file is unreadable ({problem})' if problem
           else f'it has no `{STATE_FILE}` file')
    _log.warning('%s: %s; taking its checkpoints by step (newest %s).',
                 model_dir, why, os.path.basename(found[0]))
  return found


def repair_state(model_dir):
  """Makes model_dir's state file whole again before a trainer writes.

  An unreadable `checkpoint` file is kept as `checkpoint.unreadable[-N]`;
  a new one (also when it was missing) lists the `ckpt-N` checkpoints by
  step, so the newest is the one resumed and num_checkpoints_to_keep
  still counts the old ones. A warning says so. A readable state file, or
  a missing one with no checkpoint beside it, is left alone.

  Returns:
    The path the unreadable file was copied to, or None.
  """
  state, problem = _state_or_problem(model_dir)
  found = _by_step(model_dir)
  if state is not None or (problem is None and not found):
    return None
  state_path = os.path.join(model_dir, STATE_FILE)
  kept = None
  if problem is not None:
    kept = state_path + '.unreadable'
    suffix = 1
    while tf.io.gfile.exists(kept):
      suffix += 1
      kept = f'{state_path}.unreadable-{suffix}'
    tf.io.gfile.copy(state_path, kept)
  write_state(model_dir, found)
  why = (f'was unreadable ({problem}): kept as {os.path.basename(kept)}'
         if kept else 'was missing')
  _log.warning('%s %s; a new one lists the %d checkpoint(s) found by step.',
               state_path, why, len(found))
  return kept


def write_state(model_dir, newest_first_paths):
  """Writes a `checkpoint` state file listing these checkpoints of
  model_dir (names relative to it, so the folder may move), each with its
  index file's time, so that tf.train.CheckpointManager counts them
  towards max_to_keep."""
  lines = []
  if newest_first_paths:
    lines.append(f'model_checkpoint_path: '
                 f'"{os.path.basename(newest_first_paths[0])}"')
  for path in reversed(newest_first_paths):
    lines.append(f'all_model_checkpoint_paths: "{os.path.basename(path)}"')
  for path in reversed(newest_first_paths):
    seconds = tf.io.gfile.stat(path + '.index').mtime_nsec / 1e9
    lines.append(f'all_model_checkpoint_timestamps: {seconds:.6f}')
  text = ''.join(line + '\n' for line in lines)
  state_path = os.path.join(model_dir, STATE_FILE)
  if '://' in model_dir:   # object stores replace a file in one write
    with tf.io.gfile.GFile(state_path, 'w') as f:
      f.write(text)
  else:
    atomic.write_file(state_path, text, recover=False)


def new_checkpoints(model_dir, timeout, should_stop=None, poll_seconds=1.0):
  """Yields each checkpoint of model_dir newer than the last one yielded,
  as it appears (the newest only, when several came meanwhile).

  Like tf.train.checkpoints_iterator, but the state file may be missing or
  unreadable (see newest_first), and `should_stop` is asked while waiting.

  Args:
    model_dir: the folder a trainer saves into.
    timeout: seconds to wait for a new checkpoint before returning; None
      waits forever (continuous_eval_timeout -1, the config's default).
    should_stop: optional callable; True ends the waiting (returns).
    poll_seconds: how often the folder is looked at.
  """
  last = None
  warned = False
  while True:
    deadline = math.inf if timeout is None else time.time() + timeout
    while True:
      paths = newest_first(model_dir, warn=not warned)
      warned = warned or bool(paths)
      if paths and paths[0] != last:
        break
      if should_stop is not None and should_stop():
        return
      if time.time() >= deadline:
        return
      time.sleep(poll_seconds)
    last = paths[0]
    yield last


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
