"""Conversions never lose data and never hang: a failed or interrupted
--overwrite leaves the old dataset byte for byte, Ctrl-C and SIGTERM stop
a two-worker conversion within seconds, a rerun after SIGKILL cleans up
(and says so), and a full disk, a read-only folder or --num_shards=0 are
one `error:` line."""

import errno
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from deeplab2.data import build_synthetic
from deeplab2.data import coco
from deeplab2.data import conversion
from deeplab2.data import staging
from deeplab2.utils import atomic
from conftest import TEST_DATA

COCO_SAMPLE = os.path.join(TEST_DATA, 'coco_panoptic_sample')
MISSING_IMAGE = '000000142238.jpg'


def _coco_root(path, splits=('train', 'val'), repeat=1):
  """The COCO sample as a COCO root; each split lists it `repeat` times."""
  with open(os.path.join(COCO_SAMPLE, 'panoptic_examples.json')) as f:
    data = json.load(f)
  data['images'] = [dict(image, id=image['id'] * 10000 + k)
                    for k in range(repeat) for image in data['images']]
  data['annotations'] = [dict(a, image_id=a['image_id'] * 10000 + k)
                         for k in range(repeat) for a in data['annotations']]
  os.makedirs(os.path.join(path, 'annotations'))
  for split in splits:
    shutil.copytree(os.path.join(COCO_SAMPLE, 'panoptic_examples'),
                    os.path.join(path, 'annotations', f'panoptic_{split}2017'))
    shutil.copytree(os.path.join(COCO_SAMPLE, 'input_images'),
                    os.path.join(path, f'{split}2017'))
    with open(os.path.join(path, 'annotations',
                           f'panoptic_{split}2017.json'), 'w') as f:
      json.dump(data, f)
  return str(path)


def _convert(root, output, **kwargs):
  kwargs.setdefault('num_shards', 2)
  return conversion.convert_dataset(lambda split: coco.find_split(root, split),
                                    ['train', 'val'], output, **kwargs)


def _snapshot(folder):
  """{file name: bytes} of a folder (None when it is missing)."""
  if not os.path.exists(folder):
    return None
  result = {}
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), 'rb') as f:
      result[name] = f.read()
  return result


def _leftovers(top):
  """Temporary files or folders anywhere under `top`."""
  found = []
  for folder, dirs, files in os.walk(top):
    found += [os.path.join(folder, n) for n in dirs + files
              if '.tmp' in n or '.old-' in n]
  return found


def _script_main(name):
  return importlib.import_module(f'deeplab2.cli.{name}').main


def _our_lines(stderr):
  """stderr without TensorFlow's start-up chatter and progress bars."""
  noise = ('WARNING: All log messages', 'I0000', 'W0000', 'E0000',
           'To enable the following instructions')
  return [line for line in stderr.splitlines()
          if line.strip() and not line.startswith(noise) and
          ' img/s ETA ' not in line]


@pytest.fixture(name='old_dataset')
def _old_dataset(tmp_path):
  """(COCO root, output folder holding a converted train+val dataset)."""
  root = _coco_root(tmp_path / 'coco')
  output = str(tmp_path / 'data' / 'out')
  _convert(root, output)
  return root, output


def _fail_second_rename(monkeypatch):
  real_rename = os.rename
  calls = []

  def rename(source, target):
    calls.append(source)
    if len(calls) == 2:   # the staging folder onto output_dir
      raise OSError(errno.EIO, 'Input/output error', target)
    return real_rename(source, target)

  monkeypatch.setattr(os, 'rename', rename)


@pytest.mark.parametrize('failure', ['second_split', 'swap'])
def test_a_failed_overwrite_leaves_the_old_dataset(old_dataset, failure,
                                                   monkeypatch):
  root, output = old_dataset
  before = _snapshot(output)
  if failure == 'second_split':
    os.remove(os.path.join(root, 'val2017', MISSING_IMAGE))
    expected = (conversion.SampleError, f'{MISSING_IMAGE}: image file is '
                'missing')
  else:
    _fail_second_rename(monkeypatch)
    expected = (conversion.OutputError, rf'cannot replace {output} with the '
                'finished conversion: Input/output error; it was left as it '
                'was')
  with pytest.raises(expected[0], match=expected[1]):
    _convert(root, output, num_shards=1, overwrite=True)
  assert _snapshot(output) == before
  assert not _leftovers(os.path.dirname(output))


def test_a_swap_that_cannot_be_undone_keeps_both(old_dataset, monkeypatch):
  """Both renames after the first fail: the message says where the old
  dataset and the conversion are, and neither is deleted."""
  root, output = old_dataset
  before = _snapshot(output)
  real_rename = os.rename

  def rename(source, target):
    if os.path.basename(source) != 'out':   # all but output_dir -> backup
      raise OSError(errno.EIO, 'Input/output error', target)
    return real_rename(source, target)

  monkeypatch.setattr(os, 'rename', rename)
  with pytest.raises(conversion.OutputError) as info:
    _convert(root, output, num_shards=1, overwrite=True)
  match = re.fullmatch(
      rf'cannot replace {re.escape(output)}: Input/output error; its old '
      r'content is in (\S+) and the new one in (\S+): rename one of them '
      rf'to {re.escape(output)}', str(info.value))
  assert match, str(info.value)
  backup, staged = match.groups()
  assert not os.path.exists(output)
  assert _snapshot(backup) == before
  assert sorted(os.listdir(staged)) == [
      'dataset_descriptor.json', 'train-00000-of-00001.tfrecord',
      'val-00000-of-00001.tfrecord']


@pytest.mark.parametrize('overwrite', [True, False])
def test_a_folder_with_other_files_is_refused(old_dataset, overwrite):
  root, output = old_dataset
  with open(os.path.join(output, 'ckpt-1.index'), 'wb') as f:
    f.write(b'a checkpoint')
  before = _snapshot(output)
  message = (rf'{output} holds files that are not a converted dataset '
             r'\(ckpt-1.index\): the converter replaces its output folder as '
             'a whole and never deletes files it did not write')
  with pytest.raises(FileExistsError, match=message):
    _convert(root, output, overwrite=overwrite)
  with pytest.raises(FileExistsError, match=message):
    build_synthetic.write_synthetic_dataset(output, 2, 1, image_size=33,
                                            overwrite=overwrite)
  assert _snapshot(output) == before
  assert not _leftovers(os.path.dirname(output))


def _live_processes(pgid):
  """Pids of the processes (zombies aside) in process group `pgid`."""
  pids = []
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
      continue
    if int(fields[2]) == pgid and fields[0] != 'Z':
      pids.append(int(entry))
  return pids


def _wait_until(condition, timeout):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if condition():
      return True
    time.sleep(0.05)
  return condition()


def _start_conversion(tmp_path, output, *flags):
  """A 2-worker conversion of 600 images in its own process group."""
  root = _coco_root(tmp_path / 'big', splits=('train',), repeat=300)
  with open(tmp_path / 'stdout.txt', 'w') as stdout, \
      open(tmp_path / 'stderr.txt', 'w') as stderr:
    return subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-m', 'deeplab2.cli.build_coco_data',
         f'--coco_root={root}', '--splits=train', f'--output_dir={output}',
         '--num_shards=2', '--num_workers=2', *flags],
        stdout=stdout, stderr=stderr, start_new_session=True)


def _stop(process):
  if process.poll() is None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize('signal_number,when', [
    (signal.SIGINT, 'workers_running'), (signal.SIGTERM, 'first_shard')])
def test_an_interrupt_stops_a_two_worker_conversion(
    old_dataset, tmp_path, signal_number, when):
  """Ctrl-C (SIGINT to the process group, while the workers convert) and
  SIGTERM (to the parent, as soon as its first temporary shard exists)."""
  _, output = old_dataset
  before = _snapshot(output)
  process = _start_conversion(tmp_path, output, '--overwrite')
  try:
    def started():
      if when == 'first_shard':
        return any('.tfrecord.tmp-' in n
                   for n in _leftovers(tmp_path / 'data'))
      return ' 1/600 ' in (tmp_path / 'stderr.txt').read_text()

    assert _wait_until(started, 60), (tmp_path / 'stderr.txt').read_text()
    assert process.poll() is None
    sent = time.monotonic()
    if signal_number == signal.SIGINT:
      os.killpg(process.pid, signal.SIGINT)
    else:
      os.kill(process.pid, signal.SIGTERM)
    status = process.wait(timeout=10)
    elapsed = time.monotonic() - sent
  finally:
    _stop(process)
  stderr = (tmp_path / 'stderr.txt').read_text()
  assert status == 128 + signal_number, stderr
  assert elapsed < 10
  assert 'Traceback' not in stderr
  name = signal.Signals(signal_number).name
  assert _our_lines(stderr) == [
      f'error: interrupted by {name} before the conversion was complete: '
      f'{output} was not replaced and the temporary files were removed.']
  assert _wait_until(lambda: not _live_processes(process.pid), 5), (
      _live_processes(process.pid))
  assert _snapshot(output) == before
  assert not _leftovers(tmp_path / 'data')


def test_a_rerun_after_sigkill_cleans_up_and_says_so(old_dataset, tmp_path,
                                                     capsys):
  root, output = old_dataset
  before = _snapshot(output)
  process = _start_conversion(tmp_path, output, '--overwrite')
  try:
    assert _wait_until(lambda: any(
        '.tfrecord.tmp-' in n for n in _leftovers(tmp_path / 'data')),
                       60), (tmp_path / 'stderr.txt').read_text()
    os.kill(process.pid, signal.SIGKILL)   # the parent only
    process.wait(timeout=10)
  finally:
    _stop(process)
  assert _snapshot(output) == before
  staged = [p for p in _leftovers(tmp_path / 'data')
             if os.path.dirname(p) == str(tmp_path / 'data')]
  assert len(staged) == 1 and f'-{process.pid}-' in staged[0]
  # What an older converter left inside the folder.
  stale_shard = os.path.join(output, 'train-00000-of-00007.tfrecord.tmp')
  with open(stale_shard, 'wb') as f:
    f.write(b'partial')
  status = _script_main('build_coco_data')(
      [f'--coco_root={root}', f'--output_dir={output}', '--num_shards=1',
       '--overwrite'])
  err = capsys.readouterr().err
  assert status == 0, err
  assert (f'warning: removed {staged[0]}, left by process {process.pid} (a '
          'conversion that was killed).') in err.splitlines()
  assert (f'warning: removed 1 temporary files from {output} '
          '(train-00000-of-00007.tfrecord.tmp), left by a conversion that '
          'was killed.') in err.splitlines()
  assert sorted(os.listdir(output)) == [
      'dataset_descriptor.json', 'train-00000-of-00001.tfrecord',
      'val-00000-of-00001.tfrecord']
  assert os.listdir(tmp_path / 'data') == ['out']
  # The orphaned workers see their parent gone and exit.
  assert _wait_until(lambda: not _live_processes(process.pid), 20), (
      _live_processes(process.pid))


def test_a_conversion_killed_while_swapping_is_undone(tmp_path, caplog):
  output = str(tmp_path / 'out')
  build_synthetic.write_synthetic_dataset(output, 2, 1, image_size=33,
                                          num_shards=1)
  before = _snapshot(output)
  dead = subprocess.Popen(['true'])
  dead.wait()
  host = atomic._host()  # pylint: disable=protected-access
  backup = str(tmp_path / f'.out.old-{host}-{dead.pid}-0a1b2c3d')
  staged = str(tmp_path / f'.out.tmp-{host}-{dead.pid}-0a1b2c3d')
  running = str(tmp_path / f'.out.tmp-{host}-{os.getppid()}-0a1b2c3d')
  os.rename(output, backup)   # killed between the two renames
  os.mkdir(staged)
  os.mkdir(running)
  staging.recover_stale(output)
  assert _snapshot(output) == before
  assert sorted(os.listdir(tmp_path)) == [os.path.basename(running), 'out']
  assert f'restored {output} from {backup}' in caplog.text
  assert 'belongs to a conversion that may still run' in caplog.text


def test_temporary_files_of_killed_writers_inside_the_output_go(tmp_path,
                                                               caplog):
  """Temporary shards and descriptors (atomic's names) in a dataset folder
  are a conversion's, not foreign files: those of dead processes go."""
  output = str(tmp_path / 'out')
  build_synthetic.write_synthetic_dataset(output, 2, 1, image_size=33,
                                          num_shards=1)
  before = _snapshot(output)
  dead = subprocess.Popen(['true'])
  dead.wait()
  host = atomic._host()  # pylint: disable=protected-access
  stale = [f'.train-00000-of-00003.tfrecord.tmp-{host}-{dead.pid}-0a1b2c3d',
           f'.dataset_descriptor.json.tmp-{host}-{dead.pid}-0a1b2c3d']
  running = f'.val-00000-of-00003.tfrecord.tmp-{host}-{os.getppid()}-0a1b2c3d'
  for name in stale + [running]:
    with open(os.path.join(output, name), 'wb') as f:
      f.write(b'partial')
  staging.recover_stale(output)
  assert sorted(os.listdir(output)) == sorted(list(before) + [running])
  for name in stale:
    assert (f'removed {os.path.join(output, name)}, left by process '
            f'{dead.pid} (a conversion that was killed).') in caplog.text
  assert f'{os.path.join(output, running)} belongs to a conversion' in (
      caplog.text)
  build_synthetic.write_synthetic_dataset(output, 2, 1, image_size=33,
                                          num_shards=1, overwrite=True)
  assert _snapshot(output) == before


class _FullDiskWriter:
  """tf.io.TFRecordWriter on a disk that fills up: the second write and
  every close fail."""

  def __init__(self, path):
    self._file = open(path, 'wb')  # pylint: disable=consider-using-with
    self._writes = 0

  def write(self, record):
    self._writes += 1
    if self._writes > 1:
      raise tf.errors.ResourceExhaustedError(
          None, None, 'No space left on device')
    self._file.write(record)

  def close(self):
    self._file.close()
    raise tf.errors.ResourceExhaustedError(None, None,
                                           'No space left on device')


def test_a_full_disk_is_one_error_line(old_dataset, monkeypatch, capsys):
  root, output = old_dataset
  before = _snapshot(output)
  monkeypatch.setattr(tf.io, 'TFRecordWriter', _FullDiskWriter)
  status = _script_main('build_coco_data')(
      [f'--coco_root={root}', f'--output_dir={output}', '--num_shards=1',
       '--overwrite'])
  err = capsys.readouterr().err
  assert status == 1
  assert _our_lines(err) == [
      f'error: cannot write the conversion of {output}: No space left on '
      'device; it was left as it was and the temporary files were removed.']
  assert _snapshot(output) == before
  assert not _leftovers(os.path.dirname(output))


def test_a_read_only_folder_is_one_error_line(tmp_path, monkeypatch, capsys):
  parent = tmp_path / 'read_only'
  parent.mkdir()
  output = str(parent / 'synthetic')
  if os.geteuid() == 0:   # root writes anyway: make mkdir fail as it would
    def refuse(path, mode=0o777):
      raise PermissionError(errno.EACCES, 'Permission denied', path)
    monkeypatch.setattr(os, 'mkdir', refuse)
  else:
    parent.chmod(0o555)
  try:
    status = _script_main('build_synthetic_data')(
        [f'--output_dir={output}', '--num_train=2', '--num_val=1',
         '--image_size=33'])
  finally:
    parent.chmod(0o755)
  err = capsys.readouterr().err
  assert status == 1
  assert err == (f'error: cannot write in {parent}: Permission denied; the '
                 'conversion goes into a temporary folder there first, then '
                 f'replaces {output}.\n')
  assert os.listdir(parent) == []


@pytest.mark.parametrize('script,flags', [
    ('build_coco_data', ['--coco_root=/nonexistent']),
    ('build_synthetic_data', [])])
@pytest.mark.parametrize('num_shards', [0, -3])
def test_no_shards_is_one_error_line(tmp_path, capsys, script, flags,
                                     num_shards):
  output = str(tmp_path / 'out')
  status = _script_main(script)(
      flags + [f'--output_dir={output}', f'--num_shards={num_shards}'])
  assert status == 1
  assert capsys.readouterr().err == (
      f'error: --num_shards={num_shards}: a split needs 1 shard or more.\n')
  assert os.listdir(tmp_path) == []
