"""The worker processes of a conversion: samples read and checked in parallel.

Each worker has its own pipes and converts the samples it receives with
panoptic_format.convert_sample_or_error. This module imports no
TensorFlow: the workers are spawned and import only it and what it imports.
"""

import contextlib
import multiprocessing
from multiprocessing import resource_tracker
import queue
import signal
import threading
from typing import Iterator, Sequence

from deeplab2.data import panoptic_format
from deeplab2.utils import atomic


class WorkerError(RuntimeError):
  """A worker process failed or died (e.g. killed for memory)."""


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
    with atomic.signals_deferred():
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
def converted(
    samples: Sequence[panoptic_format.Sample],
    category_map: panoptic_format.CategoryMap, num_workers: int
) -> Iterator[Iterator[tuple[panoptic_format.ConvertedSample | None,
                             str | None]]]:
  """An iterator of convert_sample_or_error's (converted, error) per sample.

  With num_workers > 1 the samples are read in worker processes (spawned:
  they start fresh, never from a forked TensorFlow runtime), stopped when
  the block ends (at once when it ends with an exception).

  Args:
    samples: the samples, in order.
    category_map: panoptic_format.CategoryMap of the split.
    num_workers: processes to read them; 1 or less reads them here.

  Yields:
    An iterator of (panoptic_format.ConvertedSample or None, error message
    or None), in the order of `samples`. It raises WorkerError when a
    worker died or raised an unexpected exception.
  """
  if num_workers <= 1:
    yield (panoptic_format.convert_sample_or_error((sample, category_map))
           for sample in samples)
    return
  workers = _Workers(min(num_workers, len(samples)), category_map)
  try:
    yield workers.results(samples)
  except BaseException:
    with atomic.signals_deferred():   # a second Ctrl-C waits for the cleanup
      workers.terminate()
    raise
  workers.close()
