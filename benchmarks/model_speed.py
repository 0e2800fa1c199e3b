"""Forward latency of each backbone's Panoptic-DeepLab at full resolution.

  python benchmarks/model_speed.py [--configs=resnet50_os32,...]
      [--dtypes=float32,mixed_bfloat16] [--runs=3] [--height=1025 --width=2049]
      [--json=PATH] [--op_profile]
      [--module_profile [--module_depth=3] [--module_rows=40]]

For each config (a file stem under configs/cityscapes/panoptic_deeplab/)
and dtype policy, a fresh subprocess builds the model (random weights),
compiles its forward pass (tf.function, batch 1), runs it once to warm up,
then `--runs` more times, and reports the median latency, the process's
peak resident memory, parameters, multiply-adds and the multiply-adds per
second achieved. The machine's peak is measured the same way: a large
matrix product in the same dtype. Prints the machine (CPU model, cores and
the workers' oneDNN state) and a Markdown table; --json also writes the
rows and the machine to a file. --module_profile profiles the calls with one
inter-op thread (so that op times do not overlap; the latency is then
measured that way too) and prints, per module of the network (its name
scopes to --module_depth), the time, the multiply-adds and their rate
against the peak. Takes minutes per row on a laptop CPU (the
SWideRNets take far longer).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_CONFIGS = ('mobilenet_v3_small_os32', 'mobilenet_v3_large_os32',
                    'resnet50_os32_merge_with_pure_tf_func',
                    'resnet50_beta_os32', 'xception71_os16',
                    'wide_resnet41_os16')


def _peak_rss_gib():
  # ru_maxrss is in KiB on Linux.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _worker(args):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if args.module_profile:
    tf.config.threading.set_inter_op_parallelism_threads(1)
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.modeling.layers import normalization  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import model_stats  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import op_profile  # pylint: disable=g-import-not-at-top
  if args.config == 'matmul':
    n = 4096
    dtype = tf.bfloat16 if args.dtype == 'mixed_bfloat16' else tf.float32
    a = tf.random.normal([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype)
    step = tf.function(lambda x: tf.matmul(x, x))
    latency = op_profile.median_seconds(lambda: step(a), args.runs)
    print(json.dumps({'macs_per_s': n**3 / latency,
                      'machine': machine.describe()}))
    return
  path = os.path.join(_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                      args.config + '.textproto')
  config, _ = config_lib.load_experiment_config(path)
  config.model_options.dtype_policy = args.dtype
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=(65, 65))
  shape = (1, args.height, args.width, 3)
  # Traced once: the total, and per op for --module_profile.
  madds_by_op = model_stats.multiply_adds_by_op(model, shape, training=False)
  madds = sum(madds_by_op.values())
  forward = tf.function(lambda x: model(x, training=False))
  image = tf.random.uniform(shape, 0, 255, seed=0)

  def call():
    return tf.nest.map_structure(lambda t: t.numpy(), forward(image))

  start = time.perf_counter()
  call()
  warmup = time.perf_counter() - start
  times = []
  for _ in range(args.runs):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  total, _ = model_stats.parameter_counts(model)
  op_types = []
  if args.op_profile:
    op_types = op_profile.op_type_shares(call, args.runs)
  modules = []
  if args.module_profile:
    modules = op_profile.module_rates(
        op_profile.op_self_times(call, args.runs), madds_by_op,
        args.module_depth)
  print(json.dumps({
      'latency_s': statistics.median(times), 'warmup_s': warmup,
      'params': total, 'madds': madds, 'peak_rss_gib': _peak_rss_gib(),
      'op_types': op_types, 'modules': modules,
      'machine': machine.describe()}))


def _run_worker(config, dtype, args):
  command = [sys.executable, os.path.abspath(__file__), '--worker',
             f'--config={config}', f'--dtype={dtype}', f'--runs={args.runs}',
             f'--height={args.height}', f'--width={args.width}',
             f'--module_depth={args.module_depth}'] + (
                 ['--op_profile'] if args.op_profile else []) + (
                     ['--module_profile'] if args.module_profile else [])
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  if result.returncode != 0:
    raise RuntimeError(f'{config} {dtype} failed:\n{result.stderr[-3000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', default=','.join(_DEFAULT_CONFIGS))
  parser.add_argument('--dtypes', default='float32,mixed_bfloat16')
  parser.add_argument('--runs', type=int, default=3)
  parser.add_argument('--height', type=int, default=1025)
  parser.add_argument('--width', type=int, default=2049)
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  parser.add_argument('--op_profile', action='store_true',
                      help='Also profile --runs calls (tf.profiler) and print '
                      'the op types that take most of the op time.')
  parser.add_argument('--module_profile', action='store_true',
                      help='Also profile --runs calls with one inter-op '
                      'thread and print each module\'s time, multiply-adds '
                      'and rate.')
  parser.add_argument('--module_rows', type=int, default=40,
                      help='Modules printed, costliest first (--json keeps '
                      'all).')
  parser.add_argument('--module_depth', type=int, default=3,
                      help='Name scopes that make a module (see '
                      'op_profile.module_of).')
  parser.add_argument('--worker', action='store_true')
  parser.add_argument('--config')
  parser.add_argument('--dtype')
  args = parser.parse_args(argv)
  if args.worker:
    return _worker(args)
  dtypes = args.dtypes.split(',')
  peak_runs = {d: _run_worker('matmul', d, args) for d in dtypes}
  peaks = {d: peak_runs[d]['macs_per_s'] for d in dtypes}
  # The workers' oneDNN state, not this process's: they do the timing.
  description = peak_runs[dtypes[0]]['machine']
  print(f'Machine: {description}. Input {args.height} x {args.width}, '
        f'batch 1, median of {args.runs} runs after one warm-up.')
  print('Peak (4096^3 matmul): ' + ', '.join(
      f'{d} {peaks[d] / 1e9:.0f} G multiply-adds/s' for d in dtypes))
  print('| config | dtype | latency (s) | params (M) | multiply-adds (B) | '
        'achieved (G/s) | of peak | peak memory (GiB) |')
  print('|---|---|---|---|---|---|---|---|')
  rows = []
  for config in args.configs.split(','):
    for dtype in dtypes:
      row = _run_worker(config, dtype, args)
      achieved = row['madds'] / row['latency_s']
      print(f'| {config} | {dtype} | {row["latency_s"]:.2f} | '
            f'{row["params"] / 1e6:.2f} | {row["madds"] / 1e9:.1f} | '
            f'{achieved / 1e9:.0f} | {achieved / peaks[dtype]:.0%} | '
            f'{row["peak_rss_gib"]:.1f} |', flush=True)
      for name, ms, share in row['op_types'][:15]:
        print(f'    {name:<48} {ms:>8.1f} ms/call {100 * share:>5.1f} %')
      if row['modules']:
        print('    | module | ms/call | multiply-adds (B) | G/s | of peak |')
        print('    |---|---|---|---|---|')
      for module, ms, count in row['modules'][:args.module_rows]:
        rate = count / ms / 1e6 if ms else 0.0
        print(f'    | {module} | {ms:.1f} | {count / 1e9:.2f} | {rate:.0f} | '
              f'{rate * 1e9 / peaks[dtype]:.0%} |')
      rows.append({
          'config': config, 'dtype': dtype, 'height': args.height,
          'width': args.width, 'runs': args.runs,
          'latency_s': row['latency_s'], 'warmup_s': row['warmup_s'],
          'params': row['params'], 'madds': row['madds'],
          'achieved_madds_per_s': achieved,
          'peak_madds_per_s': peaks[dtype],
          'of_peak': achieved / peaks[dtype],
          'peak_rss_gib': row['peak_rss_gib'], 'op_types': row['op_types'],
          'modules': row['modules']})
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
