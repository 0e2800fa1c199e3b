"""A text progress bar for the command-line scripts (the library does not
print; scripts pass `ProgressBar(sys.stderr)` as a progress callback)."""

import time


class ProgressBar:
  """callable(done, total): redraws `label [####....] done/total rate ETA`."""

  def __init__(self, stream, label='', width=30, min_interval_s=0.5):
    self.stream = stream
    self.label = label
    self.width = width
    self.min_interval_s = min_interval_s
    self._start = time.monotonic()
    self._last = 0.0

  def __call__(self, done, total):
    now = time.monotonic()
    if done < total and now - self._last < self.min_interval_s:
      return
    self._last = now
    elapsed = max(now - self._start, 1e-9)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else 0.0
    filled = int(self.width * done / max(total, 1))
    bar = '#' * filled + '.' * (self.width - filled)
    self.stream.write(f'\r{self.label} [{bar}] {done}/{total} '
                      f'{rate:.1f} img/s ETA {int(eta) // 60}m{int(eta) % 60:02d}s')
    if done >= total:
      self.stream.write('\n')
    self.stream.flush()
