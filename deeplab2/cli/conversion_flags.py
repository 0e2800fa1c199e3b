"""Flags and the run loop shared by the build_*_data commands.

For the command lines only (deeplab2.cli.build_*_data); the library never
imports it.

`call` runs a conversion the way every script should: SIGTERM stops it
like Ctrl-C, the library's warnings (e.g. what it cleaned up after a killed
conversion) go to stderr, and every expected failure is one `error: ...`
line on stderr with a non-zero exit status, never a traceback.

deeplab2.data.conversion (and with it TensorFlow) is imported when a
conversion runs, not with this module: the converters' worker processes
start by re-importing the command's main module, and need none of it.
"""

import argparse
from collections.abc import Callable, Iterator, Sequence
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from deeplab2.utils import progress


class Terminated(KeyboardInterrupt):
  """Raised in the main thread on SIGTERM while `call` runs."""


def add_common_flags(parser: argparse.ArgumentParser, default_splits: str,
                     default_shards: int = 10) -> None:
  """Adds --output_dir, --splits, --num_shards, --num_workers,
  --skip_bad_samples and --overwrite to `parser`."""
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--splits', default=default_splits)
  parser.add_argument('--num_shards', type=int, default=default_shards)
  parser.add_argument('--num_workers', type=int, default=1,
                      help='processes reading and checking images')
  parser.add_argument('--skip_bad_samples', action='store_true',
                      help='leave out bad samples with a warning instead of '
                      'failing')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing conversion in output_dir '
                      '(a folder holding other files is refused)')


def output_folder_name(output_dir: str) -> str:
  """The last component of `output_dir` ('out/' -> 'out')."""
  return os.path.basename(os.path.normpath(os.path.abspath(output_dir)))


def print_error(error: object) -> int:
  """Prints `error: <message>` to stderr; returns the exit status, 1."""
  print(f'error: {error}', file=sys.stderr)
  return 1


class _Stderr:
  """sys.stderr (looked up at each write) that knows if a line is open.

  The progress bar redraws its line with '\\r' and ends it only when a
  split is done; a message printed meanwhile first ends that line.
  """

  def __init__(self) -> None:
    self.line_open = False

  def write(self, text: str) -> None:
    if text:
      sys.stderr.write(text)
      self.line_open = not text.endswith('\n')

  def flush(self) -> None:
    sys.stderr.flush()

  def end_line(self) -> None:
    if self.line_open:
      self.write('\n')


class _LogToStderr(logging.Handler):
  """Prints the library's log records as `warning: ...` lines."""

  def __init__(self, stream: _Stderr) -> None:
    super().__init__(logging.INFO)
    self._stream = stream

  def emit(self, record: logging.LogRecord) -> None:
    self._stream.end_line()
    self._stream.write(f'{record.levelname.lower()}: {record.getMessage()}\n')


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
  """Makes SIGTERM raise Terminated (a KeyboardInterrupt) meanwhile."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handle(signum, frame):
    del signum, frame
    raise Terminated()

  previous = signal.signal(signal.SIGTERM, handle)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def call(convert: Callable[..., Any], output_dir: str, *args: Any,
         **kwargs: Any) -> tuple[Any, int]:
  """Runs convert(*args, **kwargs, progress_factory=...) as a command should.

  While it runs, SIGTERM raises Terminated and the `deeplab2` logger prints
  to stderr. An interrupt (Ctrl-C, SIGTERM), a refused or bad input and an
  output that cannot be written each end as one `error:` line.

  Args:
    convert: conversion.convert_dataset or a function like it, taking a
      `progress_factory` keyword argument.
    output_dir: the output folder, for the messages.
    *args: for `convert`.
    **kwargs: for `convert`.

  Returns:
    (result of convert, 0), or (None, exit status): 1 after an error,
    128 + the signal number after an interrupt.
  """
  from deeplab2.data import conversion  # pylint: disable=g-import-not-at-top
  stream = _Stderr()
  handler = _LogToStderr(stream)
  logger = logging.getLogger('deeplab2')
  logger.addHandler(handler)
  try:
    with _sigterm_raises():
      return convert(*args, **kwargs, progress_factory=lambda split: (
          progress.ProgressBar(stream, split))), 0
  except KeyboardInterrupt as e:
    stream.end_line()
    number = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
    print_error(f'interrupted by {number.name} before the conversion was '
                f'complete: {output_dir} was not replaced and the temporary '
                'files were removed.')
    return None, 128 + number
  except (OSError, ValueError, conversion.WorkerError) as e:
    stream.end_line()
    return None, print_error(e)
  finally:
    logger.removeHandler(handler)


def run(find_split: Callable[[str], Any], splits: Sequence[str],
        args: argparse.Namespace) -> int:
  """Converts; prints progress, a summary and every skipped sample.

  Args:
    find_split: split name -> what conversion.convert_dataset reads.
    splits: the split names.
    args: the parsed flags of add_common_flags.

  Returns:
    The exit status.
  """
  from deeplab2.data import conversion  # pylint: disable=g-import-not-at-top
  result, status = call(
      conversion.convert_dataset, args.output_dir, find_split, splits,
      args.output_dir, args.num_shards, args.num_workers,
      args.skip_bad_samples, args.overwrite)
  if status:
    return status
  descriptor_path, reports = result
  for report in reports:
    for message in report.skipped:
      print(f'warning: skipped {message}', file=sys.stderr)
    print(f'{report.split}: {report.written} records in '
          f'{len(report.paths)} shards'
          + (f', {len(report.skipped)} samples skipped' if report.skipped
             else ''))
  print(f'wrote {descriptor_path}')
  return 0
