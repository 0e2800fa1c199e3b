"""The one atomic-write helper: killed writers leave the old file or folder."""

import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from deeplab2.utils import atomic


def _run_killed(script):
  """Runs `script` in a fresh Python that SIGKILLs itself; checks it died."""
  result = subprocess.run([sys.executable, '-c', textwrap.dedent(script)],
                          capture_output=True, text=True, check=False)
  assert result.returncode == -signal.SIGKILL, result.stderr


def _hidden(folder):
  return sorted(e for e in os.listdir(folder) if e.startswith('.'))


def test_writer_killed_before_rename_leaves_old_file(tmp_path, caplog):
  path = tmp_path / 'report.json'
  path.write_text('old')
  _run_killed(f"""
      import os, signal
      from deeplab2.utils import atomic
      with atomic.open_atomic({str(path)!r}) as f:
        f.write('new, half written')
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)   # between write and rename
      """)
  assert path.read_text() == 'old'
  [temporary] = _hidden(tmp_path)
  assert atomic.is_temporary(temporary)
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    atomic.write_file(str(path), 'new')
  assert path.read_text() == 'new'
  assert _hidden(tmp_path) == []
  assert 'killed' in caplog.text and temporary in caplog.text


def test_exception_removes_temporary_and_keeps_old(tmp_path):
  path = tmp_path / 'a.bin'
  path.write_bytes(b'old')
  with pytest.raises(RuntimeError, match='boom'):
    with atomic.open_atomic(str(path), 'wb') as f:
      f.write(b'new')
      raise RuntimeError('boom')
  assert path.read_bytes() == b'old'
  assert os.listdir(tmp_path) == ['a.bin']


def test_two_writers_get_different_temporary_names(tmp_path):
  with atomic.staged_file(str(tmp_path / 'x')) as first:
    with atomic.staged_file(str(tmp_path / 'x')) as second:
      assert first != second
      for name in (first, second):
        with open(name, 'w') as f:
          f.write(name)
  assert (tmp_path / 'x').read_text() == first   # the last to finish wins
  assert os.listdir(tmp_path) == ['x']


def test_running_writers_files_are_left_alone(tmp_path, caplog):
  path = tmp_path / 'x'
  other = atomic.sibling_path(str(path)).replace(f'-{os.getpid()}-',
                                                 f'-{os.getppid()}-')
  open(other, 'w').close()
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    atomic.write_file(str(path), b'1')
  assert os.path.exists(other)
  assert 'may still run' in caplog.text


def test_open_atomic_refuses_append(tmp_path):
  with pytest.raises(ValueError, match="mode 'a'"):
    with atomic.open_atomic(str(tmp_path / 'x'), 'a'):
      pass


def test_staged_folder_replaces_whole_or_not_at_all(tmp_path):
  target = tmp_path / 'export'
  target.mkdir()
  (target / 'old.txt').write_text('old')
  with pytest.raises(KeyError):
    with atomic.StagedFolder(str(target)) as staged:
      (open(os.path.join(staged.path, 'new.txt'), 'w')).close()
      raise KeyError('failed half way')
  assert os.listdir(target) == ['old.txt']
  assert os.listdir(tmp_path) == ['export']
  with atomic.StagedFolder(str(target)) as staged:
    (open(os.path.join(staged.path, 'new.txt'), 'w')).close()
  assert os.listdir(target) == ['new.txt']
  assert os.listdir(tmp_path) == ['export']


def test_swap_killed_between_renames_is_restored(tmp_path, caplog):
  target = tmp_path / 'export'
  target.mkdir()
  (target / 'old.txt').write_text('old')
  _run_killed(f"""
      import os, signal
      from deeplab2.utils import atomic
      os.rename = lambda source, dest, _rename=os.rename: (
          _rename(source, dest), os.kill(os.getpid(), signal.SIGKILL))
      with atomic.StagedFolder({str(target)!r}) as staged:
        open(os.path.join(staged.path, 'new.txt'), 'w').close()
      """)
  assert not target.exists()      # killed after moving the old one aside
  assert len(_hidden(tmp_path)) == 2
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    atomic.recover_stale(str(target))
  assert os.listdir(target) == ['old.txt']
  assert _hidden(tmp_path) == []
  assert 'restored' in caplog.text


def test_a_swap_that_cannot_be_undone_keeps_both_folders(tmp_path,
                                                         monkeypatch):
  target = tmp_path / 'export'
  target.mkdir()
  (target / 'old.txt').write_text('old')
  real_rename = os.rename
  calls = []

  def rename(source, dest):
    calls.append(source)
    if len(calls) > 1:          # the new folder in, then the old one back
      raise PermissionError(13, 'denied')
    real_rename(source, dest)

  with pytest.raises(atomic.SwapError, match='rename one of them') as error:
    with atomic.StagedFolder(str(target)) as staged:
      open(os.path.join(staged.path, 'new.txt'), 'w').close()
      monkeypatch.setattr(os, 'rename', rename)
  monkeypatch.undo()
  backup, new = sorted(_hidden(tmp_path), key=lambda e: '.tmp-' in e)
  assert os.listdir(tmp_path / backup) == ['old.txt']
  assert os.listdir(tmp_path / new) == ['new.txt']
  assert backup in str(error.value) and new in str(error.value)
