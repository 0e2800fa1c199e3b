"""Converts samples in COCO panoptic format into sharded TFRecords plus a
dataset descriptor, in parallel, checking every segment.

Dataset layouts (COCO, Cityscapes, Mapillary Vistas) only find their files
and categories (coco.py, cityscapes.py, mapillary.py); this module does the
rest. The library reports progress through a callback and never prints;
what it cleaned up after an earlier, killed conversion it logs as warnings
on the `deeplab2` logger.

Nothing is written into the output folder itself: a conversion goes into a
temporary folder beside it (StagedOutput), which replaces the output folder
only once every split and the descriptor are complete. A failure or an
interrupt (KeyboardInterrupt, or any exception a SIGTERM handler raises)
leaves the old output as it was and removes the temporary folder.
"""

import contextlib
import dataclasses
import glob
import logging
import multiprocessing
from multiprocessing import resource_tracker
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import threading

import numpy as np

from deeplab2.data import dataset_descriptor
from deeplab2.data import panoptic_format
from deeplab2.data import tfrecord

SampleError = panoptic_format.SampleError

_log = logging.getLogger('deeplab2')


class OutputError(OSError):
  """The output cannot be written (a read-only folder, a full disk, ...).

  The message names the output folder; the old output is left as it was.
  """


class WorkerError(RuntimeError):
  """A worker process failed or died (e.g. killed for memory)."""


@dataclasses.dataclass
class SplitReport:
  """What one split's conversion did.

  Attributes:
    split: the split name.
    written: records written.
    skipped: messages of the samples left out (only with skip_bad_samples).
    paths: the shard files.
  """
  split: str
  written: int
  skipped: list
  paths: list


def check_num_shards(num_shards: int) -> None:
  """Refuses fewer than one shard per split.

  Raises:
    ValueError: naming the --num_shards flag.
  """
  if num_shards < 1:
    raise ValueError(f'--num_shards={num_shards}: a split needs 1 shard or '
                     'more.')


def check_builtin_divisor(name: str, label_divisor: int | None) -> None:
  """Refuses a label divisor other than that of the built-in `name`.

  Args:
    name: the dataset name to write.
    label_divisor: the requested divisor (the --label_divisor flag), or
      None for the default.

  Raises:
    ValueError: naming the flag, both values and the built-in descriptor.
  """
  if label_divisor is None or name not in dataset_descriptor.DATASETS:
    return
  builtin = dataset_descriptor.DATASETS.get(name)
  if label_divisor != builtin.label_divisor:
    raise ValueError(
        f'--label_divisor={label_divisor} differs from '
        f'label_divisor={builtin.label_divisor} of the built-in descriptor '
        f'"{name}": drop --label_divisor, or pass another --dataset_name '
        'for a dataset of your own.')


def check_builtin_name(
    descriptor: dataset_descriptor.DatasetDescriptor) -> None:
  """Refuses to write a built-in dataset name with other labels.

  A descriptor named like a registered dataset (`coco_panoptic`,
  `cityscapes_panoptic`, ...) must mean what the built-in one means: the
  same label divisor, classes and thing ids (colours may differ).

  Raises:
    ValueError: a divisor (check_builtin_divisor) or other labels that
      differ from the built-in descriptor's.
  """
  if descriptor.name not in dataset_descriptor.DATASETS:
    return
  check_builtin_divisor(descriptor.name, descriptor.label_divisor)
  builtin = dataset_descriptor.DATASETS.get(descriptor.name)
  differences = descriptor.label_differences(builtin)
  if differences:
    raise ValueError(
        f'The data has other labels than the built-in descriptor '
        f'"{builtin.name}" (these vs built-in: {"; ".join(differences)}): '
        'pass another --dataset_name.')


def check_other_splits(
    output_dir: str, splits: list,
    descriptor: dataset_descriptor.DatasetDescriptor) -> dict:
  """Refuses labels that differ from those of shards that stay.

  Shards of splits other than `splits` stay in `output_dir` (even with
  overwrite); the existing dataset_descriptor.json says what their labels
  mean, so the new descriptor must mean the same.

  Args:
    output_dir: the output folder (may not exist yet).
    splits: the splits about to be written.
    descriptor: DatasetDescriptor of the new conversion.

  Returns:
    dict split -> size, from the existing descriptor, of the other splits
    whose shards stay (to keep in the new descriptor).

  Raises:
    ValueError: the existing descriptor has other label facts (or cannot
      be read) while shards of other splits stay.
  """
  other_splits = sorted({
      tfrecord.shard_split(p)
      for p in glob.glob(os.path.join(output_dir, '*.tfrecord'))} -
                        set(splits) - {None})
  path = os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME)
  if not other_splits or not os.path.exists(path):
    return {}
  existing = dataset_descriptor.read_json(path)
  differences = descriptor.label_differences(existing)
  if differences:
    raise ValueError(
        f'{path} has other labels ({"; ".join(differences)}, new vs '
        f'existing) and the {", ".join(other_splits)} shards beside it stay '
        'and would not match: convert all splits together, or into another '
        '--output_dir.')
  return {split: existing.splits_to_sizes[split] for split in other_splits
          if split in existing.splits_to_sizes}


# Folders beside the output folder `<name>`: `.<name>.tmp-<host>-<pid>-<tag>`
# while a conversion writes, `.<name>.old-<host>-<pid>-<tag>` for the old
# output during the swap.
_STAGING, _BACKUP = 'tmp', 'old'


def _host():
  return re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname()) or 'host'


def _sibling_name(name, kind, tag):
  return f'.{name}.{kind}-{_host()}-{os.getpid()}-{tag}'


def _sibling_pattern(name):
  return re.compile(rf'\.{re.escape(name)}\.(?P<kind>{_STAGING}|{_BACKUP})-'
                    r'(?P<host>.+)-(?P<pid>\d+)-(?P<tag>[0-9a-f]+)')


def _process_alive(pid):
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


def _remove_tree(path):
  """Deletes a folder; returns False (and logs) when some of it stays."""
  failures = []
  shutil.rmtree(path, onerror=lambda *args: failures.append(args[2][1]))
  if failures:
    _log.warning('could not remove all of %s: %s', path, failures[0])
  return not failures


def recover_stale(output_dir: str) -> None:
  """Cleans up after conversions into `output_dir` that were killed.

  Temporary folders beside output_dir left by a process of this machine
  that no longer runs are removed; if such a process was killed while
  swapping the folders (output_dir missing, its old content in a backup
  folder), the old content is moved back. Temporary shards inside
  output_dir (`*.tfrecord.tmp`, `dataset_descriptor.json.tmp`) are removed
  too. Each is logged as a warning. Folders of running conversions, or of
  other machines, stay.

  Args:
    output_dir: the output folder (need not exist).
  """
  output_dir = os.path.realpath(output_dir)
  parent, name = os.path.split(output_dir)
  pattern = _sibling_pattern(name)
  try:
    entries = os.listdir(parent)
  except OSError:
    return
  matches = sorted((m for m in map(pattern.fullmatch, entries) if m),
                   key=lambda m: (m['kind'] != _BACKUP, m.string))
  for match in matches:
    path = os.path.join(parent, match.string)
    pid = int(match['pid'])
    if pid == os.getpid() and match['host'] == _host():
      continue
    if match['host'] != _host() or _process_alive(pid):
      _log.warning('%s belongs to a conversion that may still run (process '
                   '%d on %s); left alone.', path, pid, match['host'])
      continue
    if match['kind'] == _BACKUP and not os.path.lexists(output_dir):
      try:
        os.rename(path, output_dir)
        _log.warning('restored %s from %s: process %d was killed while '
                     'replacing it.', output_dir, path, pid)
      except OSError as e:
        _log.warning('could not restore %s from %s: %s', output_dir, path, e)
    elif _remove_tree(path):
      _log.warning('removed %s, left by process %d (a conversion that was '
                   'killed).', path, pid)
  if os.path.isdir(output_dir) and not os.path.ismount(output_dir):
    _, temps, foreign = _classify(output_dir)
    if foreign:   # not a dataset folder: StagedOutput refuses it untouched
      return
    for entry in temps:
      with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(output_dir, entry))
    if temps:
      _log.warning('removed %d temporary files from %s (%s), left by a '
                   'conversion that was killed.', len(temps), output_dir,
                   ', '.join(temps[:3]) + (', ...' if len(temps) > 3 else ''))


def _classify(folder):
  """Sorted entries of a folder: (shards and descriptor, temporary files
  of a conversion, anything else)."""
  ours, temps, foreign = [], [], []
  for entry in sorted(os.listdir(folder)):
    if entry == dataset_descriptor.DESCRIPTOR_FILENAME or (
        tfrecord.shard_split(entry) is not None and
        os.path.isfile(os.path.join(folder, entry))):
      ours.append(entry)
    elif (tfrecord.is_temp_shard(entry) or
          entry == dataset_descriptor.DESCRIPTOR_FILENAME + '.tmp'):
      temps.append(entry)
    else:
      foreign.append(entry)
  return ours, temps, foreign


@contextlib.contextmanager
def _signals_deferred():
  """Holds SIGINT / SIGTERM back until the block is done.

  A signal that arrives meanwhile is re-raised afterwards through the
  previous handler (KeyboardInterrupt, the caller's SIGTERM handler, or the
  default action). Only the main thread can hold signals; elsewhere Python
  runs no handler in this thread anyway.
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
    # The block may clear the list: the signals then count as answered.
    yield arrived
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)
    for number in dict.fromkeys(arrived):
      signal.raise_signal(number)


class StagedOutput:
  """A temporary folder beside `output_dir` that replaces it when complete.

  Use as a context manager and write everything into `path`. Leaving the
  block normally swaps `path` in as output_dir (two renames, with signals
  held back); leaving it with an exception deletes `path` and leaves
  output_dir as it was. OSErrors (a read-only folder, a full disk) come out
  as OutputError naming output_dir.

  Entering it first cleans up after killed conversions (recover_stale),
  then checks output_dir, which may be missing, empty, or hold a dataset
  this module wrote: shards (`<split>-NNNNN-of-NNNNN.tfrecord`) and
  `dataset_descriptor.json`. A folder holding anything else (a model_dir
  with checkpoints, the raw dataset, a README) is refused, with or without
  overwrite: the swap replaces the folder as a whole, and this module never
  deletes files it did not write. Shards of other splits than `splits` are
  kept: hard-linked (or copied) into `path` before any writing, so the old
  folder stays untouched until the swap. The disk needs room for the old
  and the new conversion at once, and the folder of output_dir must be
  writable.

  The temporary folders are named `.<name>.tmp-<host>-<pid>-<tag>` (while
  writing) and `.<name>.old-<host>-<pid>-<tag>` (the old output during the
  swap), so a later conversion recognises those of a killed process.

  Attributes:
    path: the folder to write into (None until entered).
    output_dir: the output folder, as given.
  """

  def __init__(self, output_dir: str, splits, overwrite: bool = False,
               overwrite_hint: str = '--overwrite'):
    """Records the arguments; nothing happens on disk before entering.

    Args:
      output_dir: the folder to replace (created when missing).
      splits: the splits about to be written; their old shards go.
      overwrite: replace an existing conversion of these splits.
      overwrite_hint: how the refusal message names `overwrite`.
    """
    self.output_dir = output_dir
    self.path = None
    self._splits = list(splits)
    self._overwrite = overwrite
    self._overwrite_hint = overwrite_hint
    self._real = os.path.realpath(output_dir)
    self._parent, self._name = os.path.split(self._real)
    self._tag = secrets.token_hex(4)

  def __enter__(self):
    recover_stale(self.output_dir)
    kept = self._check()
    try:
      self._create(kept)
    except BaseException as e:
      self._discard()
      if isinstance(e, OSError) and not isinstance(e, OutputError):
        raise self._error(e) from e
      raise
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is None:
      try:
        self._swap()
      except OutputError:
        raise
      except OSError as e:
        self._discard()
        raise OutputError(
            f'cannot replace {self.output_dir} with the finished '
            f'conversion: {e.strerror or e}; it was left as it was and the '
            'conversion removed.') from e
      except BaseException:
        self._discard()
        raise
      return False
    removed = self._discard()
    if issubclass(exc_type, OSError) and not issubclass(exc_type,
                                                        OutputError):
      raise self._error(exc, removed) from exc
    return False

  def _check(self):
    """Refuses output_dir as the class docstring says; returns kept shards."""
    if not os.path.lexists(self._real):
      return []
    if not os.path.isdir(self._real):
      raise FileExistsError(f'{self.output_dir} exists and is not a folder.')
    if os.path.ismount(self._real):
      raise OutputError(
          f'{self.output_dir} is a mount point: the converter replaces its '
          'output folder as a whole; pick a folder inside it.')
    ours, _, foreign = _classify(self._real)
    descriptor = dataset_descriptor.DESCRIPTOR_FILENAME
    shards = [e for e in ours if e != descriptor]
    if foreign:
      raise FileExistsError(
          f'{self.output_dir} holds files that are not a converted dataset '
          f'({", ".join(foreign[:3])}{", ..." if len(foreign) > 3 else ""}): '
          'the converter replaces its output folder as a whole and never '
          'deletes files it did not write; pick a new or empty folder.')
    replaced = [e for e in shards if tfrecord.shard_split(e) in self._splits]
    if descriptor in ours:
      replaced.append(descriptor)
    if replaced and not self._overwrite:
      raise FileExistsError(
          f'{os.path.join(self.output_dir, replaced[0])} exists '
          f'({len(replaced)} output files in all); pass '
          f'{self._overwrite_hint} to replace them.')
    if not os.access(self._real, os.W_OK):
      raise OutputError(f'{self.output_dir} is read-only; it cannot be '
                        'replaced.')
    return [e for e in shards if tfrecord.shard_split(e) not in self._splits]

  def _create(self, kept):
    os.makedirs(self._parent, exist_ok=True)
    path = os.path.join(self._parent,
                        _sibling_name(self._name, _STAGING, self._tag))
    os.mkdir(path)
    self.path = path
    if os.path.isdir(self._real):
      shutil.copymode(self._real, self.path)
    for entry in kept:
      source = os.path.join(self._real, entry)
      target = os.path.join(self.path, entry)
      try:
        os.link(source, target)
      except OSError:
        shutil.copy2(source, target)

  def _swap(self):
    backup = os.path.join(self._parent,
                          _sibling_name(self._name, _BACKUP, self._tag))
    with _signals_deferred() as arrived:
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
          raise OutputError(
              f'cannot replace {self.output_dir}: {e.strerror or e}; its old '
              f'content is in {backup} and the conversion in {self.path}: '
              f'rename one of them to {self.output_dir}.') from e
        raise
      if had_old:
        _remove_tree(backup)
      # The conversion is complete and in place: a Ctrl-C or SIGTERM that
      # came during the swap has nothing left to stop.
      arrived.clear()

  def _discard(self):
    """Deletes the temporary folder; False when some of it stays."""
    if self.path is None or not os.path.lexists(self.path):
      return True
    with _signals_deferred():   # a second Ctrl-C waits for the cleanup
      return _remove_tree(self.path)

  def _error(self, error, removed=True):
    """OutputError naming output_dir for an OSError while writing."""
    reason = error.strerror or str(error)
    if self.path is None:
      return OutputError(
          f'cannot write in {self._parent}: {reason}; the conversion goes '
          f'into a temporary folder there first, then replaces '
          f'{self.output_dir}.')
    cleanup = ('the temporary files were removed' if removed else
               f'some temporary files stay in {self.path}')
    return OutputError(f'cannot write the conversion of {self.output_dir}: '
                       f'{reason}; it was left as it was and {cleanup}.')


class _Failure:
  """What a worker sends back for an unexpected exception."""

  def __init__(self, message):
    self.message = message


def _worker(tasks, results, category_map):
  """A worker process: converts the samples it receives until None.

  SIGINT is ignored (the parent stops the workers, with SIGTERM); it was
  blocked since the process started, so a Ctrl-C during start-up is
  dropped too. A thread receives the tasks, so the parent never blocks on
  sending while this process blocks on sending a result.
  """
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
  inbox = queue.SimpleQueue()

  def receive():
    try:
      while True:
        task = tasks.recv()
        inbox.put(task)
        if task is None:
          return
    except (EOFError, OSError):   # the parent is gone
      inbox.put(None)

  threading.Thread(target=receive, daemon=True).start()
  try:
    while (sample := inbox.get()) is not None:
      try:
        result = panoptic_format.convert_sample_or_error(
            (sample, category_map))
      except Exception as e:  # pylint: disable=broad-except
        result = _Failure(f'{sample.image_path}: {type(e).__name__}: {e}')
      results.send(result)
  except (EOFError, OSError):   # the parent is gone
    pass


class _Workers:
  """Processes that convert samples, returned in order.

  Each worker has its own pipes (no lock is shared, so stopping a worker
  at any moment cannot block the others or the parent) and at most
  `depth` samples in flight, which bounds memory. `terminate()` stops them
  at once (SIGTERM, then SIGKILL).
  """

  def __init__(self, num_workers, category_map, depth=2):
    # spawn: workers start fresh, never from a forked TF runtime.
    context = multiprocessing.get_context('spawn')
    self._depth = depth
    self._processes, self._tasks, self._results = [], [], []
    try:
      resource_tracker.ensure_running()   # it unblocks signals when started
      for _ in range(num_workers):
        self._start(context, category_map)
    except BaseException:
      self.terminate()
      raise

  def _start(self, context, category_map):
    task_reader, task_writer = context.Pipe(duplex=False)
    result_reader, result_writer = context.Pipe(duplex=False)
    self._tasks.append(task_writer)
    self._results.append(result_reader)
    process = context.Process(
        target=_worker, args=(task_reader, result_writer, category_map),
        daemon=True)
    # The child inherits the blocked SIGINT; no Ctrl-C reaches it before
    # _worker ignores it. The parent's handlers run after start().
    with _signals_deferred():
      blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
      try:
        process.start()
        self._processes.append(process)
      finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        task_reader.close()
        result_writer.close()

  def _stopped(self, index):
    process = self._processes[index]
    process.join(1.0)
    code = process.exitcode
    how = ('still running' if code is None else
           f'killed by {signal.Signals(-code).name}' if code < 0 else
           f'exit status {code}')
    hint = ('; the machine may be out of memory: try fewer --num_workers'
            if code == -signal.SIGKILL else '')
    return WorkerError(f'conversion worker {index} (process {process.pid}) '
                       f'stopped unexpectedly ({how}){hint}.')

  def results(self, samples):
    """Yields convert_sample_or_error's (converted, error) per sample.

    Raises:
      WorkerError: a worker died or raised an unexpected exception.
    """
    count = len(self._processes)
    sent = 0
    for index in range(len(samples)):
      while sent < len(samples) and sent < index + count * self._depth:
        try:
          self._tasks[sent % count].send(samples[sent])
        except OSError:
          raise self._stopped(sent % count) from None
        sent += 1
      try:
        result = self._results[index % count].recv()
      except (EOFError, OSError):
        raise self._stopped(index % count) from None
      if isinstance(result, _Failure):
        raise WorkerError(f'conversion worker {index % count} failed on '
                          f'{result.message}')
      yield result

  def close(self):
    """Lets the workers finish and exit (terminates them after 10 s)."""
    for connection in self._tasks:
      with contextlib.suppress(OSError):
        connection.send(None)
    for process in self._processes:
      process.join(10.0)
    self.terminate()

  def terminate(self):
    """Stops every worker now and waits for it; closes the pipes."""
    for process in self._processes:
      if process.exitcode is None:
        process.terminate()
    for process in self._processes:
      process.join(2.0)
      if process.exitcode is None:
        process.kill()
        process.join()
    for connection in self._tasks + self._results:
      connection.close()
    self._processes, self._tasks, self._results = [], [], []


@contextlib.contextmanager
def _converted(samples, category_map, num_workers):
  """An iterator of (converted, error) per sample, in order.

  With num_workers > 1 the samples are read in worker processes, stopped
  when the block ends (at once when it ends with an exception).
  """
  if num_workers <= 1:
    yield (panoptic_format.convert_sample_or_error((sample, category_map))
           for sample in samples)
    return
  workers = _Workers(min(num_workers, len(samples)), category_map)
  try:
    yield workers.results(samples)
  except BaseException:
    with _signals_deferred():   # a second Ctrl-C waits for the cleanup
      workers.terminate()
    raise
  workers.close()


def convert_split(samples, category_map, output_dir, split, num_shards,
                  num_workers=1, skip_bad_samples=False, progress=None):
  """Writes one split's samples (in order) into `num_shards` TFRecords.

  Shards are written under temporary names and renamed only when the split
  is complete. convert_dataset calls this inside a StagedOutput; called on
  its own, it writes into `output_dir` directly.

  Args:
    samples: list of panoptic_format.Sample.
    category_map: panoptic_format.CategoryMap.
    output_dir: existing directory.
    split: e.g. 'train'.
    num_shards: number of shard files.
    num_workers: processes reading and checking samples; they are stopped
      at once when this raises (also on KeyboardInterrupt).
    skip_bad_samples: leave out (and report) samples with errors instead of
      failing.
    progress: optional callable(done, total) after each sample.

  Returns:
    SplitReport.

  Raises:
    SampleError: the first bad sample, unless skip_bad_samples; nothing of
      the split is left on disk then (nor after any other exception).
    OSError: writing failed (tfrecord.ShardedWriter).
    WorkerError: a worker process failed or died.
  """
  skipped = []
  written = 0
  with tfrecord.ShardedWriter(output_dir, split, num_shards) as writer, \
      _converted(samples, category_map, num_workers) as results:
    for done, (converted, error) in enumerate(results, start=1):
      if error is not None:
        if not skip_bad_samples:
          raise SampleError(error)
        skipped.append(error)
      else:
        label = None
        if converted.label_bytes is not None:
          label = np.frombuffer(converted.label_bytes, '<i4').reshape(
              converted.height, converted.width)
        writer.write(tfrecord.make_example(
            converted.image_bytes, converted.image_format, converted.height,
            converted.width, converted.name, label))
        written += 1
      if progress is not None:
        progress(done, len(samples))
    writer.commit()
  return SplitReport(split, written, skipped, writer.paths)


def write_descriptor(descriptor, output_dir, reports, kept_sizes=None):
  """Writes the descriptor with the split sizes next to the TFRecords.

  `kept_sizes` (split -> size) are the sizes of other splits' shards that
  stay in output_dir.
  """
  sizes = dict(kept_sizes or {})
  sizes.update({r.split: r.written for r in reports})
  descriptor = dataclasses.replace(descriptor, splits_to_sizes=sizes)
  path = os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME)
  descriptor.write_json(path)
  return path


def convert_dataset(find_split, splits, output_dir, num_shards=10,
                    num_workers=1, skip_bad_samples=False, overwrite=False,
                    progress_factory=None):
  """Converts `splits` and writes the descriptor once all are done.

  Everything is written into a StagedOutput, so the splits and the
  descriptor appear in output_dir together, replacing the old conversion,
  or not at all: any failure or interrupt leaves output_dir as it was.
  Shards of other splits stay (see check_other_splits).

  Args:
    find_split: callable(split) -> (samples, descriptor, category_map).
    splits: split names.
    output_dir: where the shards and dataset_descriptor.json go; missing,
      empty, or holding only a conversion (StagedOutput refuses any other
      files, even with overwrite).
    num_shards: shards per split.
    num_workers: processes reading the samples.
    skip_bad_samples: see convert_split.
    overwrite: replace an existing conversion in output_dir.
    progress_factory: optional callable(split) -> progress callback.

  Returns:
    (descriptor path, list of SplitReport).

  Raises:
    FileExistsError: output exists and not overwrite; output_dir holds
      other files than a conversion.
    FileNotFoundError: input files are missing.
    ValueError: num_shards < 1 (check_num_shards); a malformed input;
      splits with other categories or no samples; labels that differ from
      the built-in descriptor of the same name (check_builtin_name) or from
      other splits' shards that stay in output_dir (check_other_splits).
    SampleError: a bad sample, unless skip_bad_samples.
    OutputError: output_dir or its folder cannot be written (read-only, a
      full disk).
    WorkerError: a worker process failed or died.
  """
  check_num_shards(num_shards)
  found = {split: find_split(split) for split in splits}
  descriptors = {split: value[1] for split, value in found.items()}
  first = descriptors[splits[0]]
  for split, descriptor in descriptors.items():
    if descriptor != first:
      raise ValueError(f'Split "{split}" has other categories than '
                       f'"{splits[0]}"; convert them separately.')
    if not found[split][0]:
      raise ValueError(f'Split "{split}" has no samples.')
  check_builtin_name(first)
  reports = []
  with StagedOutput(output_dir, splits, overwrite) as staged:
    kept_sizes = check_other_splits(output_dir, splits, first)
    for split in splits:
      samples, _, category_map = found[split]
      reports.append(convert_split(
          samples, category_map, staged.path, split, num_shards, num_workers,
          skip_bad_samples,
          progress_factory(split) if progress_factory else None))
    write_descriptor(first, staged.path, reports, kept_sizes)
  reports = [dataclasses.replace(r, paths=tfrecord.shard_paths(
      output_dir, r.split, num_shards)) for r in reports]
  return (os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME),
          reports)
