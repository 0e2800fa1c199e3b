"""Seconds per training step and peak memory of Panoptic-DeepLab: the
ResNet-50 of the Cityscapes zoo config at crop 513 x 1025, global batch 2,
or the README's synthetic config (its 129 x 129 crop, batch 8).

  python benchmarks/train_speed.py [--config=resnet50|synthetic]
      [--steps=5] [--warmup=2] [--onednn=1,0] [--json=PATH]
      [--variants=float32/cached,float32/pipeline,...] [--op_profile]

Each variant runs in its own process (so its peak resident memory is its
own), once per --onednn value (TF_ENABLE_ONEDNN_OPTS of that process; the
commands' default is 1): dtype policy float32 or mixed_bfloat16; input from
the real training pipeline (ResNet-50: synthetic 1024 x 2048
Cityscapes-like records, scale augmentation and targets; synthetic: the
built-in synthetic dataset) or one cached batch; optionally the forward
and backward pass compiled with XLA (`+xla`). The step time is the median
over `--steps` timed calls of the training loop after `--warmup` calls
(compilation included there), 1 step per call (ResNet-50) or 10 (synthetic,
whose steps are short enough for the per-call cost to show).
Prints one table row per variant with the CPU model and oneDNN state of
the process that ran it; --json also writes the rows to a file.
--op_profile then profiles --steps more calls (tf.profiler) and lists the
op types that take most of the op time, per step and as a share.
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: (config, crop, global batch, steps per timed call)
_CONFIGS = {
    'resnet50': (os.path.join(_ROOT, 'configs', 'cityscapes',
                              'panoptic_deeplab',
                              'resnet50_os32_merge_with_pure_tf_func.textproto'),
                 (513, 1025), 2, 1),
    'synthetic': (os.path.join(_ROOT, 'configs', 'synthetic',
                               'resnet_mini_os16.textproto'), (129, 129), 8,
                  10),
}
VARIANTS = ('float32/cached', 'float32/pipeline', 'float32/cached+xla',
            'mixed_bfloat16/cached', 'mixed_bfloat16/pipeline')


def _parts(config_name, records_dir, dtype_policy):
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  path, crop, batch, _ = _CONFIGS[config_name]
  config, _ = config_lib.load_experiment_config(path)
  config.model_options.dtype_policy = dtype_policy
  options = config.train_dataset_options
  options.crop_size[:] = list(crop)
  options.batch_size = batch
  del options.file_pattern[:]
  options.file_pattern.append(os.path.join(records_dir, 'train-*.tfrecord'))
  config.ClearField('eval_dataset_options')
  return config_lib.from_message(config)


def run_variant(config_name, records_dir, variant, steps, warmup,
                breakdown=False, op_profile=False):
  """Times one variant in this process; returns a dict of results."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from deeplab2.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  dtype_policy, source = variant.split('/')
  jit_compile = source.endswith('+xla')
  source = source.replace('+xla', '')
  parts = _parts(config_name, records_dir, dtype_policy)
  strategy = tf.distribute.get_strategy()
  model = parts.build_model()
  optimizer = parts.build_optimizer()
  optimizer.build(model.trainable_variables)
  dataset = input_pipeline.make_dataset(parts.pipeline_options('train'))
  if source == 'cached':
    dataset = dataset.take(1).cache().repeat()
  iterator = iter(dataset)
  trainer = trainer_lib.Trainer(strategy, model, parts.build_loss(),
                                optimizer, parts.train_batch_size,
                                jit_compile=jit_compile)
  # As TrainLoop runs them: several steps per call of the loop function.
  per_call = _CONFIGS[config_name][3]
  times = []
  for step in range(warmup + steps):
    start = time.perf_counter()
    trainer.train(iterator, per_call)
    if step >= warmup:
      times.append((time.perf_counter() - start) / per_call)
  peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  result = {'config': config_name, 'variant': variant,
            'seconds_per_step': statistics.median(times),
            'peak_gib': peak_kib / 2 ** 20, 'cpu': machine.cpu_model(),
            'onednn': machine.onednn_enabled()}
  if breakdown:
    # Where the step goes: the forward pass alone, and forward + loss +
    # gradients (no optimizer update), on the same batch.
    batch = next(iterator)
    forward = tf.function(lambda images: model(images, training=True))
    gradients = tf.function(
        trainer._losses_and_gradients,  # pylint: disable=protected-access
        jit_compile=jit_compile)
    for name, fn, arg in (('forward', forward, batch['image']),
                          ('forward_backward', gradients, batch)):
      samples = []
      for step in range(warmup + steps):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(arg))
        if step >= warmup:
          samples.append(time.perf_counter() - start)
      result[f'{name}_seconds'] = statistics.median(samples)
  if op_profile:
    from deeplab2.utils import op_profile  # pylint: disable=g-import-not-at-top
    shares = op_profile.op_type_shares(
        lambda: trainer.train(iterator, per_call), steps)
    # Per step, not per call of per_call steps.
    result['op_types'] = [(name, ms / per_call, share)
                          for name, ms, share in shares]
  return result


def _write_records(config_name, directory, num_images=8):
  if config_name == 'synthetic':
    from deeplab2.data import build_synthetic  # pylint: disable=g-import-not-at-top
    build_synthetic.write_synthetic_dataset(
        directory, num_train=64, num_val=1, seed=0, num_shards=2,
        image_size=_CONFIGS['synthetic'][1][0], overwrite=True)
    return
  # benchmarks/ is no package: its input_pipeline.py by path.
  spec = importlib.util.spec_from_file_location(
      'input_pipeline_benchmark', os.path.join(_ROOT, 'benchmarks',
                                               'input_pipeline.py'))
  pipeline_benchmark = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(pipeline_benchmark)
  pipeline_benchmark.write_records(directory, num_images)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='resnet50', choices=sorted(_CONFIGS))
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--onednn', default='1',
                      help='Comma-separated TF_ENABLE_ONEDNN_OPTS values; '
                      'each variant runs once per value.')
  parser.add_argument('--breakdown', action='store_true',
                      help='Also time the forward pass alone and forward + '
                      'backward without the update.')
  parser.add_argument('--op_profile', action='store_true',
                      help='Also profile --steps calls (tf.profiler) and '
                      'print the op types that take most of the op time.')
  parser.add_argument('--records_dir', default='',
                      help='Reuse records written by an earlier run.')
  parser.add_argument('--json', default='',
                      help='Also write the rows to this JSON file.')
  parser.add_argument('--_child', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:  # pylint: disable=protected-access
    print(json.dumps(run_variant(args.config, args.records_dir, args._child,  # pylint: disable=protected-access
                                 args.steps, args.warmup, args.breakdown,
                                 args.op_profile)))
    return
  records_dir = args.records_dir or tempfile.mkdtemp(prefix='train_speed_')
  if not args.records_dir:
    _write_records(args.config, records_dir)
  _, crop, batch, per_call = _CONFIGS[args.config]
  print(f'Panoptic-DeepLab, {args.config} config, crop {crop[0]} x '
        f'{crop[1]}, global batch {batch}, median of {args.steps} timed calls '
        f'of {per_call} step(s) after {args.warmup} warm-up calls')
  header = f'{"variant":<28} {"oneDNN":>6} {"s/step":>8} {"peak GiB":>9}'
  if args.breakdown:
    header += f' {"forward s":>10} {"fwd+bwd s":>10}'
  print(header + '  CPU')
  rows = []
  for variant in args.variants.split(','):
    for onednn in args.onednn.split(','):
      process = subprocess.run(
          [sys.executable, __file__, f'--config={args.config}',
           f'--records_dir={records_dir}', f'--steps={args.steps}',
           f'--warmup={args.warmup}', f'--_child={variant}'] +
          (['--breakdown'] if args.breakdown else []) +
          (['--op_profile'] if args.op_profile else []),
          capture_output=True, text=True,
          env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn))
      if process.returncode != 0:
        print(f'{variant:<28} {onednn:>6} failed: '
              f'{process.stderr.strip().splitlines()[-1]}')
        continue
      row = json.loads(process.stdout.strip().splitlines()[-1])
      rows.append(row)
      line = (f'{variant:<28} {"on" if row["onednn"] else "off":>6} '
              f'{row["seconds_per_step"]:>8.3f} {row["peak_gib"]:>9.2f}')
      if args.breakdown:
        line += (f' {row["forward_seconds"]:>10.3f} '
                 f'{row["forward_backward_seconds"]:>10.3f}')
      print(f'{line}  {row["cpu"]}, {os.cpu_count()} cores', flush=True)
      for name, ms, share in row.get('op_types', [])[:20]:
        print(f'    {name:<48} {ms:>8.2f} ms/step {100 * share:>5.1f} %')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  main()
