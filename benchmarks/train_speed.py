"""Seconds per training step and peak memory of ResNet-50 Panoptic-DeepLab
(the Cityscapes zoo config) at crop 513 x 1025, global batch 2.

  python benchmarks/train_speed.py [--steps=5] [--warmup=2]
      [--variants=float32/cached,float32/pipeline,...]

Each variant runs in its own process (so its peak resident memory is its
own): dtype policy float32 or mixed_bfloat16; input from the real training
pipeline (synthetic 1024 x 2048 Cityscapes-like records, scale
augmentation and targets) or one cached batch; optionally the forward and
backward pass compiled with XLA (`+xla`). The step time is the median over
`--steps` steps after `--warmup` steps (compilation included there). Prints
one table row per variant.
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
_CONFIG = os.path.join(_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                       'resnet50_os32_merge_with_pure_tf_func.textproto')
_CROP = (513, 1025)
_BATCH = 2
VARIANTS = ('float32/cached', 'float32/pipeline', 'float32/cached+xla',
            'mixed_bfloat16/cached', 'mixed_bfloat16/pipeline')


def _parts(records_dir, dtype_policy):
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  config, _ = config_lib.load_experiment_config(_CONFIG)
  config.model_options.dtype_policy = dtype_policy
  options = config.train_dataset_options
  options.crop_size[:] = list(_CROP)
  options.batch_size = _BATCH
  del options.file_pattern[:]
  options.file_pattern.append(os.path.join(records_dir, 'train-*.tfrecord'))
  config.ClearField('eval_dataset_options')
  return config_lib.from_message(config)


def run_variant(records_dir, variant, steps, warmup, breakdown=False):
  """Times one variant in this process; returns a dict of results."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from deeplab2.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  dtype_policy, source = variant.split('/')
  jit_compile = source.endswith('+xla')
  source = source.replace('+xla', '')
  parts = _parts(records_dir, dtype_policy)
  strategy = tf.distribute.get_strategy()
  model = parts.build_model()
  optimizer = parts.build_optimizer()
  optimizer.build(model.trainable_variables)
  dataset = input_pipeline.make_dataset(parts.pipeline_options('train'))
  if source == 'cached':
    dataset = dataset.take(1).cache().repeat()
  iterator = iter(dataset)
  trainer = trainer_lib.Trainer(strategy, model, parts.build_loss(),
                                optimizer, _BATCH, jit_compile=jit_compile)
  times = []
  for step in range(warmup + steps):
    start = time.perf_counter()
    trainer.train(iterator, 1)
    if step >= warmup:
      times.append(time.perf_counter() - start)
  peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  result = {'variant': variant, 'seconds_per_step': statistics.median(times),
            'peak_gib': peak_kib / 2 ** 20}
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
  return result


def _write_records(directory, num_images=8):
  # benchmarks/ is no package: its input_pipeline.py by path.
  spec = importlib.util.spec_from_file_location(
      'input_pipeline_benchmark', os.path.join(_ROOT, 'benchmarks',
                                               'input_pipeline.py'))
  pipeline_benchmark = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(pipeline_benchmark)
  pipeline_benchmark.write_records(directory, num_images)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--breakdown', action='store_true',
                      help='Also time the forward pass alone and forward + '
                      'backward without the update.')
  parser.add_argument('--records_dir', default='',
                      help='Reuse records written by an earlier run.')
  parser.add_argument('--_child', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:  # pylint: disable=protected-access
    print(json.dumps(run_variant(args.records_dir, args._child,  # pylint: disable=protected-access
                                 args.steps, args.warmup, args.breakdown)))
    return
  records_dir = args.records_dir or tempfile.mkdtemp(prefix='train_speed_')
  if not args.records_dir:
    _write_records(records_dir)
  print(f'ResNet-50 Panoptic-DeepLab ({os.path.basename(_CONFIG)}), crop '
        f'{_CROP[0]} x {_CROP[1]}, global batch {_BATCH}, median of '
        f'{args.steps} steps after {args.warmup} warm-up steps')
  header = f'{"variant":<28} {"s/step":>8} {"peak GiB":>9}'
  if args.breakdown:
    header += f' {"forward s":>10} {"fwd+bwd s":>10}'
  print(header)
  for variant in args.variants.split(','):
    process = subprocess.run(
        [sys.executable, __file__, f'--records_dir={records_dir}',
         f'--steps={args.steps}', f'--warmup={args.warmup}',
         f'--_child={variant}'] + (['--breakdown'] if args.breakdown else []),
        capture_output=True, text=True)
    if process.returncode != 0:
      print(f'{variant:<28} failed: {process.stderr.strip().splitlines()[-1]}')
      continue
    row = json.loads(process.stdout.strip().splitlines()[-1])
    line = (f'{variant:<28} {row["seconds_per_step"]:>8.2f} '
            f'{row["peak_gib"]:>9.2f}')
    if args.breakdown:
      line += (f' {row["forward_seconds"]:>10.2f} '
               f'{row["forward_backward_seconds"]:>10.2f}')
    print(line, flush=True)


if __name__ == '__main__':
  main()
