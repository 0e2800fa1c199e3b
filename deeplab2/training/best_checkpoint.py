"""The best evaluated checkpoint of a model_dir (keep_best_checkpoint).

`model_dir/best/` holds one checkpoint: of those of model_dir evaluated so
far, the one whose evaluation scored the highest value of the chosen
metric (every metric is higher-is-better). It holds

  ckpt-<step>.index, ckpt-<step>.data-*   copies of model_dir's files
  checkpoint                              a TF state file naming it, so that
                                          tf.train.latest_checkpoint, export's
                                          --checkpoint_path and
                                          Predictor.from_experiment take
                                          model_dir/best as a model_dir
  best.json                               {"metric", "value", "step",
                                          "checkpoint": "best/ckpt-<step>"}

It is a copy, in a folder of its own: the trainer's num_checkpoints_to_keep
counts and deletes only the `ckpt-N` checkpoints of model_dir itself (those
its state file lists), and resuming and continuous_eval look for the newest
`ckpt-N` there, never in best/. A new best is written into a temporary
folder inside model_dir and replaces best/ whole (atomic.StagedFolder): a
crash leaves the old best or the new one, never half of one. Local
model_dirs only (the replacement is two renames).
"""

import dataclasses
import json
import logging
import math
import numbers
import os
import re
import shutil
from typing import Any

from deeplab2.utils import atomic
from deeplab2.utils import checkpoints

_log = logging.getLogger('deeplab2')

FOLDER = 'best'
RECORD = 'best.json'
_NAME = re.compile(r'ckpt-\d+')


@dataclasses.dataclass(frozen=True)
class Best:
  """The best checkpoint kept.

  Attributes:
    metric: the metric it is the best by.
    value: its value of that metric.
    step: the step it was saved at.
    checkpoint: its prefix relative to model_dir, 'best/ckpt-<step>'.
  """
  metric: str
  value: float
  step: int
  checkpoint: str


def folder(model_dir: str) -> str:
  """model_dir/best."""
  return os.path.join(model_dir, FOLDER)


def read_best(model_dir: str) -> Best | None:
  """The best recorded in model_dir/best/best.json; None when there is
  none or it is unreadable (a warning says which)."""
  path = os.path.join(folder(model_dir), RECORD)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      record = json.load(f)
    return Best(metric=str(record['metric']), value=float(record['value']),
                step=int(record['step']),
                checkpoint=str(record['checkpoint']))
  except (OSError, ValueError, KeyError, TypeError) as e:
    _log.warning('%s is unreadable (%s: %s); the next evaluated checkpoint '
                 'becomes the best.', path, type(e).__name__, e)
    return None


def _usable(value: Any) -> float | None:
  """`value` as a float when it can be the best: a finite number >= 0 (not
  NaN, nor mask AP's -1, which marks a value no ground truth defines);
  else None."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    return None
  number = float(value)
  return number if math.isfinite(number) and number >= 0 else None


def _is_checkpoint_of(model_dir: str, path: str | None) -> bool:
  """Whether `path` is a `ckpt-N` prefix in model_dir itself."""
  if not path or not _NAME.fullmatch(os.path.basename(path)):
    return False
  return (os.path.realpath(os.path.dirname(path)) ==
          os.path.realpath(model_dir))


def keep_if_best(model_dir: str, checkpoint_path: str | None, step: int,
                 metrics: dict[str, Any], metric: str) -> Best | None:
  """Keeps `checkpoint_path` as model_dir/best when its evaluation beats
  the best so far (logs one line either way).

  It becomes the best when no best is recorded (or the recorded one is by
  another metric) and `metrics[metric]` is a finite number >= 0, or when
  that value is strictly higher than the best's. A failed copy (e.g. the
  trainer deleted the checkpoint meanwhile, or the disk is full) is a
  warning and leaves the old best as it was.

  Args:
    model_dir: the run's folder (local).
    checkpoint_path: the checkpoint the evaluated weights are; kept only
      when it is a `ckpt-N` of model_dir itself, not one given from
      elsewhere, nor None (weights that are no saved checkpoint).
    step: the step evaluated (the checkpoint's).
    metrics: the evaluation's metrics.
    metric: the metric to compare (best_checkpoint_metric).

  Returns:
    The new best when this checkpoint became it, else None.
  """
  if '://' in model_dir:
    _log.warning('keep_best_checkpoint: %s is not a local folder (best/ is '
                 'replaced by renames); no best checkpoint is kept.',
                 model_dir)
    return None
  if not _is_checkpoint_of(model_dir, checkpoint_path):
    where = (f'{checkpoint_path}, not a checkpoint of {model_dir}'
             if checkpoint_path else 'not a saved checkpoint')
    _log.info('keep_best_checkpoint: the weights evaluated at step %d are '
              '%s; not kept as the best.', step, where)
    return None
  assert checkpoint_path is not None
  best_folder = folder(model_dir)
  value = metrics.get(metric)
  previous = read_best(model_dir)
  if previous is not None and previous.metric != metric:
    was = (f'the best kept was by {previous.metric}: {previous.value:.4f} at '
           f'step {previous.step}')
    previous = None
  elif previous is not None:
    was = f'was {previous.value:.4f} at step {previous.step}'
  else:
    was = 'the first'
  usable = _usable(value)
  if usable is None:
    _log.info('%s %s at step %d cannot be the best (not a number >= 0)%s.',
              metric, value, step, _stays(model_dir, previous))
    return None
  value = usable
  if previous is not None and not value > previous.value:
    _log.info('%s %.4f at step %d is not above the best %.4f at step %d%s.',
              metric, value, step, previous.value, previous.step,
              _stays(model_dir, previous))
    return None
  name = os.path.basename(checkpoint_path)
  best = Best(metric=metric, value=value, step=step,
              checkpoint=f'{FOLDER}/{name}')
  try:
    with atomic.StagedFolder(best_folder, 'a best-checkpoint copy') as staged:
      assert staged.path is not None
      _write_best(staged.path, checkpoint_path, best)
  except OSError as e:
    _log.warning('could not keep %s as the best (%s: %s)%s.',
                 checkpoint_path, type(e).__name__, e,
                 _stays(model_dir, previous))
    return None
  _log.info('new best %s %.4f at step %d (%s): kept as %s', metric, value,
            step, was, os.path.join(best_folder, name))
  return best


def _stays(model_dir: str, best: Best | None) -> str:
  if best is None:
    return ''
  return f'; the best stays {os.path.join(model_dir, best.checkpoint)}'


def _write_best(staged: str, checkpoint_path: str, best: Best) -> None:
  """Copies the checkpoint into `staged` (durably) with its state file and
  best.json.

  Raises:
    OSError: a file could not be copied, or the copy is not whole.
  """
  files = checkpoints.checkpoint_files(checkpoint_path)
  for path in files:
    copy = os.path.join(staged, os.path.basename(path))
    shutil.copyfile(path, copy)
    atomic.fsync_file(copy)
  copied = os.path.join(staged, os.path.basename(checkpoint_path))
  problem = checkpoints.damaged_files(copied)
  if problem:
    raise OSError(f'the copy of {checkpoint_path} is not whole: {problem}')
  checkpoints.write_state(staged, [copied])
  record = os.path.join(staged, RECORD)
  with open(record, 'w') as f:
    json.dump(dataclasses.asdict(best), f, indent=2)
    f.write('\n')
  atomic.fsync_file(record)
