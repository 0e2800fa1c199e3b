"""The output folder of a conversion: written beside it, swapped in whole.

StagedOutput is an atomic.StagedFolder (naming, swap, discard, held-back
signals, the recovery after killed writers) with the checks of a dataset
folder: it refuses a folder holding anything but a converted dataset, keeps
the shards of other splits, and raises OSErrors as OutputError naming the
output folder. `recover_stale` cleans up after killed conversions, beside
the output folder and inside it.
"""

import contextlib
import logging
import os
import re
import shutil
from typing import Iterable

from deeplab2.data import dataset_descriptor
from deeplab2.data import tfrecord
from deeplab2.utils import atomic

_log = logging.getLogger('deeplab2')

# How the recovery warnings name a killed writer.
_WRITER = 'a conversion'

# Older converters wrote `<shard>.tmp` and `dataset_descriptor.json.tmp`.
_LEGACY_SUFFIX = '.tmp'

_STAGED_NAME = re.compile(rf'\.(?P<name>.+?)\.{atomic.STAGING}-.+')


class OutputError(OSError):
  """The output cannot be written (a read-only folder, a full disk, ...).

  The message names the output folder; the old output is left as it was.
  """


def _temporary_of(entry: str) -> str | None:
  """The name that a temporary file name stands for, else None.

  `.<name>.tmp-<host>-<pid>-<tag>` (atomic's) and `<name>.tmp` (older
  converters') both stand for `<name>`.
  """
  if atomic.is_temporary(entry):
    match = _STAGED_NAME.fullmatch(entry)
    return match['name'] if match else None
  if entry.endswith(_LEGACY_SUFFIX):
    return entry[:-len(_LEGACY_SUFFIX)]
  return None


def _is_output_name(name: str) -> bool:
  return (name == dataset_descriptor.DESCRIPTOR_FILENAME or
          tfrecord.shard_split(name) is not None)


def _classify(folder: str) -> tuple[list[str], list[str], list[str]]:
  """Sorted entries of a folder: (shards and descriptor, temporary files of
  a conversion (of shards or of the descriptor), anything else)."""
  ours, temps, foreign = [], [], []
  for entry in sorted(os.listdir(folder)):
    if entry == dataset_descriptor.DESCRIPTOR_FILENAME or (
        tfrecord.shard_split(entry) is not None and
        os.path.isfile(os.path.join(folder, entry))):
      ours.append(entry)
    elif _is_output_name(_temporary_of(entry) or ''):
      temps.append(entry)
    else:
      foreign.append(entry)
  return ours, temps, foreign


def _short_list(names: list[str]) -> str:
  return ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')


def recover_stale(output_dir: str) -> None:
  """Cleans up after conversions into `output_dir` that were killed.

  Beside output_dir: atomic.recover_stale (temporary folders of processes
  of this machine that no longer run are removed; one killed while swapping
  the folders gets its old content moved back). Inside output_dir, when it
  holds a dataset: temporary shards and descriptors of such processes
  (`.<name>.tmp-<host>-<pid>-<tag>`), and those of older converters
  (`<name>.tmp`), are removed. Each is logged as a warning. Files of
  running conversions, or of other machines, stay.

  Args:
    output_dir: the output folder (need not exist).
  """
  atomic.recover_stale(output_dir, _WRITER)
  output_dir = os.path.realpath(output_dir)
  if not os.path.isdir(output_dir) or os.path.ismount(output_dir):
    return
  _, temps, foreign = _classify(output_dir)
  if foreign:   # not a dataset folder: StagedOutput refuses it untouched
    return
  for name in sorted({_temporary_of(e) for e in temps
                      if atomic.is_temporary(e)}):
    atomic.recover_stale(os.path.join(output_dir, name), _WRITER)
  legacy = [e for e in temps if not atomic.is_temporary(e)]
  for entry in legacy:
    with contextlib.suppress(FileNotFoundError):
      os.remove(os.path.join(output_dir, entry))
  if legacy:
    _log.warning('removed %d temporary files from %s (%s), left by a '
                 'conversion that was killed.', len(legacy), output_dir,
                 _short_list(legacy))


class StagedOutput(atomic.StagedFolder):
  """A temporary folder beside `output_dir` that replaces it when complete.

  Use as a context manager and write everything into `path`. Leaving the
  block normally swaps `path` in as output_dir (atomic.StagedFolder.swap);
  leaving it with an exception deletes `path` and leaves output_dir as it
  was. OSErrors (a read-only folder, a full disk) come out as OutputError
  naming output_dir.

  Entering it first cleans up after killed conversions (recover_stale),
  then checks output_dir, which may be missing, empty, or hold a dataset
  this package wrote: shards (`<split>-NNNNN-of-NNNNN.tfrecord`) and
  `dataset_descriptor.json`. A folder holding anything else (a model_dir
  with checkpoints, the raw dataset, a README) is refused, with or without
  overwrite: the swap replaces the folder as a whole, and the converter
  never deletes files it did not write. Shards of other splits than
  `splits` are kept, and a new split joins them without overwrite (the
  descriptor is then rewritten with every split's size): hard-linked (or
  copied) into `path` before any
  writing, so the old folder stays untouched until the swap. The disk needs
  room for the old and the new conversion at once, and the folder of
  output_dir must be writable.

  The temporary folders are atomic's (`.<name>.tmp-<host>-<pid>-<tag>`
  while writing, `.<name>.old-<host>-<pid>-<tag>` for the old output during
  the swap), so a later conversion recognises those of a killed process.

  Attributes:
    path: the folder to write into (None until entered).
    output_dir: the output folder, as given.
  """

  def __init__(self, output_dir: str, splits: Iterable[str],
               overwrite: bool = False, overwrite_hint: str = '--overwrite'):
    """Records the arguments; nothing happens on disk before entering.

    Args:
      output_dir: the folder to replace (created when missing).
      splits: the splits about to be written; their old shards go.
      overwrite: replace an existing conversion of these splits.
      overwrite_hint: how the refusal message names `overwrite`.
    """
    super().__init__(output_dir, writer=_WRITER)
    self.output_dir = output_dir
    self._splits = list(splits)
    self._overwrite = overwrite
    self._overwrite_hint = overwrite_hint
    self._folder = os.path.realpath(output_dir)

  def __enter__(self) -> 'StagedOutput':
    """Checks output_dir and creates `path`.

    Raises:
      FileExistsError: output_dir is a file, holds other files than a
        dataset, or holds shards of `splits` (or a descriptor alone)
        without overwrite; the message says what would be replaced and
        what kept.
      OutputError: output_dir is a mount point or read-only, or `path`
        cannot be created.
    """
    recover_stale(self.output_dir)
    kept = self._check()
    try:
      self._create(kept)
    except BaseException as e:
      self.discard()
      if isinstance(e, OSError) and not isinstance(e, OutputError):
        raise self._error(e) from e
      raise
    return self

  def __exit__(self, exc_type, exc, tb) -> bool:
    if exc_type is None:
      self._replace()
      return False
    removed = self.discard()
    if issubclass(exc_type, OSError) and not issubclass(exc_type,
                                                        OutputError):
      raise self._error(exc, removed) from exc
    return False

  def _replace(self) -> None:
    try:
      self.swap()
    except atomic.SwapError as e:
      # Both renames failed: the message says where the old output and the
      # conversion are; neither is deleted.
      raise OutputError(e.strerror or str(e)) from e
    except OSError as e:
      self.discard()
      raise OutputError(
          f'cannot replace {self.output_dir} with the finished '
          f'conversion: {e.strerror or e}; it was left as it was and the '
          'conversion removed.') from e
    except BaseException:
      self.discard()
      raise

  def _check(self) -> list[str]:
    """Refuses output_dir as the class docstring says; returns kept shards."""
    if not os.path.lexists(self._folder):
      return []
    if not os.path.isdir(self._folder):
      raise FileExistsError(f'{self.output_dir} exists and is not a folder.')
    if os.path.ismount(self._folder):
      raise OutputError(
          f'{self.output_dir} is a mount point: the converter replaces its '
          'output folder as a whole; pick a folder inside it.')
    ours, _, foreign = _classify(self._folder)
    descriptor = dataset_descriptor.DESCRIPTOR_FILENAME
    shards = [e for e in ours if e != descriptor]
    if foreign:
      raise FileExistsError(
          f'{self.output_dir} holds files that are not a converted dataset '
          f'({_short_list(foreign)}): '
          'the converter replaces its output folder as a whole and never '
          'deletes files it did not write; pick a new or empty folder.')
    replaced = [e for e in shards if tfrecord.shard_split(e) in self._splits]
    kept = [e for e in shards if tfrecord.shard_split(e) not in self._splits]
    if not self._overwrite and (replaced or (descriptor in ours and not kept)):
      raise FileExistsError(self._refusal(replaced, kept))
    if not os.access(self._folder, os.W_OK):
      raise OutputError(f'{self.output_dir} is read-only; it cannot be '
                        'replaced.')
    return kept

  def _refusal(self, replaced: list[str], kept: list[str]) -> str:
    """Why output_dir is refused without overwrite: what it would replace
    and what it would keep."""
    descriptor = os.path.join(self.output_dir,
                              dataset_descriptor.DESCRIPTOR_FILENAME)
    if not replaced:
      return (f'{descriptor} exists without any shard beside it; pass '
              f'{self._overwrite_hint} to replace it.')
    splits = sorted({tfrecord.shard_split(e) for e in replaced})
    message = (f'{self.output_dir} already holds split '
               f'{", ".join(splits)} ({len(replaced)} shard(s)); pass '
               f'{self._overwrite_hint} to replace '
               f'{"it" if len(splits) == 1 else "them"}')
    if kept:
      others = sorted({tfrecord.shard_split(e) for e in kept})
      return (f'{message}: the shards of {", ".join(others)} are kept and '
              'dataset_descriptor.json is updated with the new sizes.')
    return f'{message} and dataset_descriptor.json.'

  def _create(self, kept: list[str]) -> None:
    os.makedirs(os.path.dirname(self._folder), exist_ok=True)
    path = atomic.sibling_path(self._folder)
    os.mkdir(path)
    self.path = path
    if os.path.isdir(self._folder):
      shutil.copymode(self._folder, self.path)
    for entry in kept:
      source = os.path.join(self._folder, entry)
      target = os.path.join(self.path, entry)
      try:
        os.link(source, target)
      except OSError:
        shutil.copy2(source, target)

  def _error(self, error: OSError, removed: bool = True) -> OutputError:
    """OutputError naming output_dir for an OSError while writing."""
    reason = error.strerror or str(error)
    if self.path is None:
      return OutputError(
          f'cannot write in {os.path.dirname(self._folder)}: {reason}; the '
          'conversion goes into a temporary folder there first, then '
          f'replaces {self.output_dir}.')
    cleanup = ('the temporary files were removed' if removed else
               f'some temporary files stay in {self.path}')
    return OutputError(f'cannot write the conversion of {self.output_dir}: '
                       f'{reason}; it was left as it was and {cleanup}.')
