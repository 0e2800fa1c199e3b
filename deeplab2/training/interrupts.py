"""SIGTERM and Ctrl-C as a request to stop training at the next step.

Cloud machines and schedulers announce preemption with SIGTERM. While a
`StopSignals` is entered, SIGTERM and SIGINT set `flag` (a tf.Variable the
training loop reads before each step) instead of killing the process, so
training stops after the step in flight and the caller can save a
checkpoint at that step. The flag is set from a watcher thread woken by
Python's signal wakeup file descriptor: the Python-level handler would only
run once the main thread returns from TensorFlow, i.e. after the whole
loop. A second stop signal (the watcher counts them) ends the process at
once, without saving: training may be stuck where no step ends.
"""

import os
import signal
import threading

import tensorflow as tf

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
  """Context manager that turns SIGINT / SIGTERM into a stop request.

  Handlers are installed only in the main thread (elsewhere the manager
  does nothing and `requested` stays False). On exit the previous handlers
  and wakeup descriptor come back.

  Attributes:
    flag: bool tf.Variable, True once a stop signal arrived.
    signal_name: 'SIGTERM' / 'SIGINT' of the first stop signal, or None.
  """

  def __init__(self):
    # On the host: the train loop reads it before each step.
    with tf.device('/CPU:0'):
      self.flag = tf.Variable(False, trainable=False, name='stop_requested')
    self.signal_name = None
    self._previous = {}
    self._previous_fd = None
    self._pipe = None
    self._thread = None

  @property
  def requested(self):
    return self.signal_name is not None or bool(self.flag.numpy())

  def settle(self) -> None:
    """Sets `flag` now for a signal the handler saw (it runs no TF op, and
    the watcher may not have run yet): call it before TF reads the flag."""
    if self.signal_name is not None:
      self.flag.assign(True)

  def _handle(self, signum, frame):
    # No TF op here: Python runs this between any two bytecodes of the main
    # thread, also inside TF's own Python code while it builds an op (an
    # assign there once broke the while loop being run: "Input 'y' of
    # 'Equal' Op has type resource"). The watcher thread sets the flag.
    del frame
    if self.signal_name is None:
      self.signal_name = signal.Signals(signum).name

  def _watch(self, read_fd):
    stop_numbers = {int(s) for s in _SIGNALS}
    received = 0
    while True:
      try:
        data = os.read(read_fd, 64)
      except OSError:
        return
      if not data:
        return
      for number in data:
        if number not in stop_numbers:
          continue
        received += 1
        self.flag.assign(True)
        if received >= 2:
          # A second stop signal: the process may be stuck inside TF, where
          # no Python handler runs. Leave now, without saving.
          os.write(2, b'error: a second stop signal; exiting at once '
                      b'without saving (resuming starts from the last '
                      b'checkpoint).\n')
          os._exit(128 + number)  # pylint: disable=protected-access

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    self._pipe = (read_fd, write_fd)
    self._previous_fd = signal.set_wakeup_fd(write_fd,
                                             warn_on_full_buffer=False)
    self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
    self._thread = threading.Thread(target=self._watch, args=(read_fd,),
                                    daemon=True, name='stop-signals')
    self._thread.start()
    return self

  def __exit__(self, exc_type, exc, traceback):
    if self._pipe is None:
      return False
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    signal.set_wakeup_fd(self._previous_fd)
    read_fd, write_fd = self._pipe
    os.close(write_fd)           # the watcher's read returns b''
    self._thread.join(timeout=5)
    os.close(read_fd)
    self._pipe = None
    return False


class Stopped(Exception):
  """Work ended early on a stop signal, leaving nothing half-written.

  Attributes:
    step: the training step saved, or the step of the weights whose
      evaluation stopped (None: no step was involved).
    signal_name: 'SIGTERM' or 'SIGINT'.
    checkpoint: the checkpoint saved (None: none, or not by this host).
  """

  def __init__(self, message, step, signal_name, checkpoint=None):
    super().__init__(message)
    self.step = step
    self.signal_name = signal_name
    self.checkpoint = checkpoint


class TrainingStopped(Stopped):
  """Training stopped on a signal after saving a checkpoint at `step`
  (`checkpoint` is None on hosts that do not write)."""

  def __init__(self, step, signal_name, checkpoint):
    where = f'; saved {checkpoint}' if checkpoint else ''
    super().__init__(f'stopped by {signal_name} at step {step}{where}; run '
                     'the same command again to resume', step, signal_name,
                     checkpoint)


class EvaluationStopped(Stopped):
  """An evaluation (of the weights at `step`; None: while waiting for a
  checkpoint) stopped on a signal; none of its metrics or predictions
  were written."""

  def __init__(self, step, signal_name):
    what = (f'during the evaluation of step {step}; nothing of it was '
            'written' if step is not None
            else 'while waiting for a new checkpoint')
    super().__init__(f'stopped by {signal_name} {what}; run the same command '
                     'again to evaluate', step, signal_name)
