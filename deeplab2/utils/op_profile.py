"""Where time goes: a call's median time, and tf.profiler's framework op
statistics by op type."""

import glob
import json
import os
import statistics
import tempfile
import time
from typing import Callable


def median_seconds(call: Callable[[], object], runs: int) -> float:
  """Median wall time of `runs` calls of `call` after one warm-up call,
  each waiting for its tensors (tf.nest of them) to be computed."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.nest.map_structure(lambda t: t.numpy(), call())
  samples = []
  for _ in range(runs):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), call())
    samples.append(time.perf_counter() - start)
  return statistics.median(samples)


def op_type_shares(run: Callable[[], object], calls: int):
  """Profiles `calls` calls of `run` (tf.profiler).

  Returns:
    [(op type, self-time in ms per call, share of the op time)] from the
    profiler's framework op statistics (its 500 costliest ops), idle time
    left out, costliest first. Ops of both threads count, so the shares
    add to more than the wall time where ops overlap.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler.internal import _pywrap_profiler_plugin  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(prefix='op_profile_') as logdir:
    tf.profiler.experimental.start(logdir)
    for _ in range(calls):
      run()
    tf.profiler.experimental.stop()
    xplane = glob.glob(os.path.join(logdir, '**', '*.xplane.pb'),
                       recursive=True)[0]
    data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(
        [xplane], 'framework_op_stats', {})
  table = next(t for t in json.loads(data) if 'cols' in t)
  columns = [c['label'] for c in table['cols']]
  kind = columns.index('Operation Type')
  self_us = columns.index('Total self-time (us)')
  per_type = {}
  for row in table['rows']:
    values = [c.get('v') for c in row['c']]
    if values[kind] != 'IDLE':
      per_type[values[kind]] = per_type.get(values[kind], 0) + values[self_us]
  total = sum(per_type.values())
  return [(name, us / 1e3 / calls, us / total)
          for name, us in sorted(per_type.items(), key=lambda kv: -kv[1])]
