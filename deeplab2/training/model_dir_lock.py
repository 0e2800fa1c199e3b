"""One trainer per model_dir: a lock file claimed for the run.

Training claims its model_dir by creating `<model_dir>/trainer.lock` (host,
pid, start time) exclusively, and removes it when the run ends, however it
ends short of the process being killed. A second trainer finds the file and
is refused, naming the holder. A lock left by a killed trainer is taken
over, with a warning, only when its holder is provably dead: a process on
this host whose pid no longer runs (or now runs another program, by its
start time in /proc). A holder on another host cannot be checked from here;
its lock stays until it ends or someone removes the file. Evaluation
beside training reads only and claims nothing.
"""

import contextlib
import datetime
import json
import logging
import os
import socket
from typing import Any, Iterator

LOCK_NAME = 'trainer.lock'

_log = logging.getLogger(__name__)


class ModelDirInUse(ValueError):
  """Another trainer holds the model_dir."""


def _process_start(pid: int) -> str | None:
  """The process's start time in clock ticks since boot (/proc), or None."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      # Fields after the command name (which may hold spaces and ')').
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _read(path: str) -> dict[str, Any] | None:
  """The lock's record; None when it cannot be read as one."""
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  if (not isinstance(record, dict) or not isinstance(record.get('pid'), int)
      or not isinstance(record.get('host'), str)):
    return None
  return record


def _is_dead(holder: dict[str, Any]) -> bool:
  """Whether the holder provably no longer runs (see the module doc)."""
  if holder['host'] != socket.gethostname():
    return False
  try:
    os.kill(holder['pid'], 0)
  except ProcessLookupError:
    return True
  except PermissionError:      # alive, another user's
    return False
  started = holder.get('process_start')
  return started is not None and _process_start(holder['pid']) not in (
      None, started)


def _describe(path: str, holder: dict[str, Any] | None) -> str:
  if holder is None:
    return (f'{path} exists but cannot be read as a lock; if no trainer '
            'runs on this model_dir, remove that file')
  return (f'pid {holder["pid"]} on {holder["host"]}, started '
          f'{holder.get("started", "?")} ({path}); evaluation beside it is '
          'fine (--mode=eval or continuous_eval); to train here, stop that '
          'run, or remove the file if it no longer runs')


@contextlib.contextmanager
def claim(model_dir: str) -> Iterator[None]:
  """Holds model_dir's lock while the block runs.

  Raises:
    ModelDirInUse: another trainer holds it (or its lock file is
      unreadable); the message is one line naming the holder.
  """
  path = os.path.join(model_dir, LOCK_NAME)
  record = {
      'host': socket.gethostname(), 'pid': os.getpid(),
      'started': datetime.datetime.now().astimezone().isoformat(
          timespec='seconds'),
      'process_start': _process_start(os.getpid())}
  for _ in range(2):
    try:
      descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      holder = _read(path)
      if holder is None or not _is_dead(holder):
        raise ModelDirInUse(f'{model_dir} is being trained by another '
                            f'process: {_describe(path, holder)}.') from None
      _log.warning('Taking over %s: its trainer (pid %d on this host, '
                   'started %s) no longer runs.', path, holder['pid'],
                   holder.get('started', '?'))
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)
      continue
    with os.fdopen(descriptor, 'w') as f:
      json.dump(record, f)
      f.flush()
      os.fsync(f.fileno())
    break
  else:
    raise ModelDirInUse(f'{model_dir} is being trained by another process: '
                        f'{_describe(path, _read(path))}.')
  try:
    yield
  finally:
    holder = _read(path)
    if (holder is not None and holder['pid'] == record['pid'] and
        holder['host'] == record['host']):
      os.remove(path)
