"""Where time goes: a call's median time, and tf.profiler's framework op
statistics by op type and by module."""

import glob
import json
import os
import re
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


def op_self_times(run: Callable[[], object], calls: int):
  """Profiles `calls` calls of `run` (tf.profiler).

  Returns:
    [(op name, op type, self-time in ms per call)] from the profiler's
    framework op statistics (its 500 costliest ops), idle time left out.
    Ops that TF's graph optimiser fused carry the name of the last op they
    absorbed (a convolution fused with its bias and ReLU is named `.../Relu`).
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
  name = columns.index('Operation Name')
  kind = columns.index('Operation Type')
  self_us = columns.index('Total self-time (us)')
  rows = []
  for row in table['rows']:
    values = [c.get('v') for c in row['c']]
    if values[kind] != 'IDLE':
      rows.append((values[name], values[kind], values[self_us] / 1e3 / calls))
  return rows


def op_type_shares(run: Callable[[], object], calls: int):
  """Profiles `calls` calls of `run` (tf.profiler).

  Returns:
    [(op type, self-time in ms per call, share of the op time)] (see
    op_self_times), costliest first. Ops of both threads count, so the
    shares add to more than the wall time where ops overlap.
  """
  per_type = {}
  for _, kind, ms in op_self_times(run, calls):
    per_type[kind] = per_type.get(kind, 0) + ms
  total = sum(per_type.values())
  return [(kind, ms, ms / total)
          for kind, ms in sorted(per_type.items(), key=lambda kv: -kv[1])]


def module_of(op_name: str, depth: int) -> str:
  """The module an op belongs to: its name's scopes (the last component,
  the op's own name, dropped), at most `depth` of them, each without the
  `_<n>` suffix that tracing adds (`panoptic_deeplab_1/resnet50_1/
  res2_block1_1/conv1_1/Relu` at depth 3 is `panoptic_deeplab/resnet50/
  res2_block1`)."""
  scopes = op_name.split('/')[:-1][:depth]
  return '/'.join(re.sub(r'_\d+$', '', scope) for scope in scopes)


def module_rates(op_times, multiply_adds_by_op, depth: int):
  """Self-time and multiply-adds per module.

  Args:
    op_times: [(op name, op type, ms per call)], as op_self_times returns.
    multiply_adds_by_op: {op name: multiply-adds} of the same call
      (model_stats.multiply_adds_by_op); fused ops take other names, so the
      two meet at the module.
    depth: see module_of.

  Returns:
    [(module, ms per call, multiply-adds)], costliest first (then most
    multiply-adds, then by name).

  Ops inside nested functions (loop and cond bodies) are named without the
  scopes around them, so they count towards the wrong module; the
  Panoptic-DeepLab forward pass has none.
  """
  times, counts = {}, {}
  for name, _, ms in op_times:
    module = module_of(name, depth)
    times[module] = times.get(module, 0.0) + ms
  for name, count in multiply_adds_by_op.items():
    module = module_of(name, depth)
    counts[module] = counts.get(module, 0) + count
  modules = set(times) | set(counts)
  return sorted(((m, times.get(m, 0.0), counts.get(m, 0)) for m in modules),
                key=lambda row: (-row[1], -row[2], row[0]))
