"""Writing a file or a folder so that a crash leaves the old one or none.

Every writer of the package goes through this module:
- `write_file(path, data)` / `open_atomic(path)` / `staged_file(path)`: the
  content goes to a hidden temporary file beside `path`, is flushed to disk
  (fsync) and renamed onto `path` in one step. A reader sees the old file
  or the new one, never half of it.
- `StagedFolder(path)`: a whole folder is written beside `path` and swapped
  in at the end (two renames, with Ctrl-C and SIGTERM held back between
  them); an exception removes it and leaves `path` as it was.

Temporary names are `.<name>.tmp-<host>-<pid>-<tag>` (being written) and
`.<name>.old-<host>-<pid>-<tag>` (the old folder during a swap): unique per
writer, so two writers never share one, and telling which process left
them. Before writing, `recover_stale(path)` removes those of processes of
this machine that no longer run (a killed writer) and, when such a process
was killed in the middle of a swap, puts the old folder back. Each cleanup
is logged as a warning on the `deeplab2` logger.

Paths are local: these are POSIX renames.
"""

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import threading
from typing import IO, Iterator

_log = logging.getLogger('deeplab2')

STAGING = 'tmp'
BACKUP = 'old'


def _host() -> str:
  return re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname()) or 'host'


def sibling_path(path: str, kind: str = STAGING,
                 tag: str | None = None) -> str:
  """The hidden temporary name beside `path` for this process.

  Args:
    path: the file or folder to be written.
    kind: STAGING (being written) or BACKUP (the old folder during a swap).
    tag: distinguishes writers of one process; random by default.

  Returns:
    `<folder of path>/.<name>.<kind>-<host>-<pid>-<tag>`.
  """
  parent, name = os.path.split(os.path.abspath(path))
  tag = tag or secrets.token_hex(4)
  return os.path.join(parent, f'.{name}.{kind}-{_host()}-{os.getpid()}-{tag}')


def _sibling_pattern(name: str) -> 're.Pattern[str]':
  return re.compile(rf'\.{re.escape(name)}\.(?P<kind>{STAGING}|{BACKUP})-'
                    r'(?P<host>.+)-(?P<pid>\d+)-(?P<tag>[0-9a-f]+)')


def is_temporary(entry: str) -> bool:
  """Whether a folder entry's name is one of this module's temporary names."""
  return re.fullmatch(rf'\..+\.(?:{STAGING}|{BACKUP})-.+-\d+-[0-9a-f]+',
                      entry) is not None


def process_alive(pid: int) -> bool:
  """Whether process `pid` (of this machine) runs; a zombie does not."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except (OSError, IndexError):
    return True


def remove(path: str) -> bool:
  """Deletes a file or a folder tree; False (and a warning) when some stays."""
  if not os.path.isdir(path) or os.path.islink(path):
    try:
      os.remove(path)
    except FileNotFoundError:
      pass
    except OSError as e:
      _log.warning('could not remove %s: %s', path, e)
      return False
    return True
  failures = []
  shutil.rmtree(path, onerror=lambda *args: failures.append(args[2][1]))
  if failures:
    _log.warning('could not remove all of %s: %s', path, failures[0])
  return not failures


@contextlib.contextmanager
def signals_deferred() -> Iterator[list]:
  """Holds SIGINT / SIGTERM back until the block is done.

  A signal that arrives meanwhile is re-raised afterwards through the
  previous handler (KeyboardInterrupt, the caller's SIGTERM handler, or the
  default action). The block may clear the yielded list: the signals then
  count as answered. Only the main thread can hold signals; elsewhere
  Python runs no handler in this thread anyway.
  """
  if threading.current_thread() is not threading.main_thread():
    yield []
    return
  arrived = []
  previous = {}
  for number in (signal.SIGINT, signal.SIGTERM):
    previous[number] = signal.signal(
        number, lambda signum, frame: arrived.append(signum))
  try:
    yield arrived
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)
    for number in dict.fromkeys(arrived):
      signal.raise_signal(number)


def recover_stale(path: str, writer: str = 'a writer') -> None:
  """Cleans up after killed writers of `path` (which need not exist).

  Temporary files and folders beside `path` left by a process of this
  machine that no longer runs are removed; if such a process was killed
  while swapping folders (`path` missing, its old content in the backup),
  the old content is moved back. Those of running processes, of this one,
  or of other machines stay. Each action is logged as a warning.

  Args:
    path: the file or folder that is written.
    writer: how the warnings name the killed process ('a conversion').
  """
  path = os.path.realpath(path)
  parent, name = os.path.split(path)
  pattern = _sibling_pattern(name)
  try:
    entries = os.listdir(parent)
  except OSError:
    return
  matches = sorted((m for m in map(pattern.fullmatch, entries) if m),
                   key=lambda m: (m['kind'] != BACKUP, m.string))
  for match in matches:
    stale = os.path.join(parent, match.string)
    pid = int(match['pid'])
    if pid == os.getpid() and match['host'] == _host():
      continue
    if match['host'] != _host() or process_alive(pid):
      _log.warning('%s belongs to %s that may still run (process %d on %s); '
                   'left alone.', stale, writer, pid, match['host'])
      continue
    if match['kind'] == BACKUP and not os.path.lexists(path):
      try:
        os.rename(stale, path)
        _log.warning('restored %s from %s: process %d was killed while '
                     'replacing it.', path, stale, pid)
      except OSError as e:
        _log.warning('could not restore %s from %s: %s', path, stale, e)
    elif remove(stale):
      _log.warning('removed %s, left by process %d (%s that was killed).',
                   stale, pid, writer)


def fsync_folder(folder: str) -> None:
  """Makes renames in `folder` durable (where the system allows it)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def fsync_file(path: str) -> None:
  """Flushes a closed file's content to disk."""
  with open(path, 'rb') as f:
    os.fsync(f.fileno())


@contextlib.contextmanager
def staged_file(path: str, recover: bool = True) -> Iterator[str]:
  """Yields a temporary path to write; renames it onto `path` at the end.

  For writers that take a path (PIL, TFLite, a video encoder). On leaving
  the block normally the temporary file is synced and renamed onto `path`;
  on an exception it is removed and `path` is left as it was.

  Args:
    path: the file to write (its folder must exist).
    recover: first remove temporary files of killed writers of `path`
      (one folder listing; writers of many files in one folder do it once).

  Yields:
    The temporary path, beside `path`.
  """
  if recover:
    recover_stale(path)
  temporary = sibling_path(path)
  try:
    yield temporary
    fsync_file(temporary)
    os.replace(temporary, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(temporary)
    raise
  fsync_folder(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def open_atomic(path: str, mode: str = 'w', recover: bool = True,
                **open_kwargs) -> Iterator[IO]:
  """`open(path, mode)` whose content replaces `path` only when complete.

  Args:
    path: the file to write.
    mode: 'w' or 'wb'.
    recover: as for `staged_file`.
    **open_kwargs: passed to `open` (e.g. encoding).

  Yields:
    The open temporary file.
  """
  if mode not in ('w', 'wb'):
    raise ValueError(f'open_atomic writes a whole file: mode {mode!r} is '
                     "not 'w' or 'wb'.")
  with staged_file(path, recover=recover) as temporary:
    with open(temporary, mode, **open_kwargs) as f:
      yield f


def write_file(path: str, data: bytes | str, recover: bool = True) -> None:
  """Writes `data` (bytes, or str as UTF-8 text) to `path` atomically."""
  if isinstance(data, str):
    with open_atomic(path, 'w', recover=recover, encoding='utf-8') as f:
      f.write(data)
  else:
    with open_atomic(path, 'wb', recover=recover) as f:
      f.write(data)


class SwapError(OSError):
  """Neither the new folder nor the old one could be put in place.

  Both are kept; the message names them. Nothing is deleted.
  """


class StagedFolder:
  """A temporary folder beside `path` that replaces it when complete.

  Use as a context manager and write into `.path`. Leaving the block
  normally swaps it in as `target` (the old folder is renamed to a backup,
  the new one into place, the backup deleted, with signals held back);
  leaving it with an exception deletes the temporary folder and leaves
  `target` as it was. Entering first runs `recover_stale(target)`.

  Attributes:
    target: the folder to replace, as given.
    path: the folder to write into (None until entered).
  """

  def __init__(self, target: str, writer: str = 'a writer'):
    self.target = target
    self.path: str | None = None
    self._real = os.path.realpath(target)
    self._writer = writer
    self._tag = secrets.token_hex(4)

  def __enter__(self) -> 'StagedFolder':
    recover_stale(self._real, self._writer)
    parent = os.path.dirname(self._real)
    os.makedirs(parent, exist_ok=True)
    path = sibling_path(self._real, STAGING, self._tag)
    os.mkdir(path)
    self.path = path
    return self

  def __exit__(self, exc_type, exc, tb) -> bool:
    if exc_type is None:
      try:
        self.swap()
      except SwapError:
        raise   # both folders are kept; the message says where
      except BaseException:
        self.discard()
        raise
      return False
    self.discard()
    return False

  def swap(self) -> None:
    """Renames the staged folder onto `target` (see the class docstring).

    Raises:
      OSError: the rename failed; `target` holds its old content again.
      SwapError: even putting the old content back failed; the message
        names the backup and the staged folder, both kept.
    """
    backup = sibling_path(self._real, BACKUP, self._tag)
    with signals_deferred() as arrived:
      had_old = os.path.lexists(self._real)
      if had_old:
        os.rename(self._real, backup)
      try:
        os.rename(self.path, self._real)
      except OSError as e:
        if not had_old:
          raise
        try:
          os.rename(backup, self._real)
        except OSError:
          raise SwapError(
              e.errno,
              f'cannot replace {self.target}: {e.strerror or e}; its old '
              f'content is in {backup} and the new one in {self.path}: '
              f'rename one of them to {self.target}') from e
        raise
      fsync_folder(os.path.dirname(self._real))
      if had_old:
        remove(backup)
      # The new folder is in place: a Ctrl-C or SIGTERM that came during
      # the swap has nothing left to stop.
      arrived.clear()

  def discard(self) -> bool:
    """Deletes the staged folder; False when some of it stays."""
    if self.path is None or not os.path.lexists(self.path):
      return True
    with signals_deferred():   # a second Ctrl-C waits for the cleanup
      return remove(self.path)
