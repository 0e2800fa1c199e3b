"""Training input pipeline throughput at full Cityscapes resolution, beside
the training step rate of the ResNet-50 model at the same crop.

  python benchmarks/input_pipeline.py [--num_images=16] [--batches=64]
      [--skip_model] [--json=PATH]

Writes `--num_images` synthetic 1024 x 2048 records (a 2049 x 2049 synthetic
scene cut to 1024 x 2048, PNG, as Cityscapes), then runs the training
pipeline of configs/cityscapes/panoptic_deeplab/
resnet50_os32_merge_with_pure_tf_func.textproto (crop 1025 x 2049, scales
0.5..2.0, targets with sigma 8) at batch 1 and reports images per second
after a warm-up. With the model, it then times training steps of that
config (batch 1, same crop). The pipeline is not the bottleneck when its
images/s exceed the model's steps/s times the batch size. Prints the
machine (CPU model, cores and oneDNN state) first; --json also writes the
rows and the machine to a file.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = os.path.join(_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                       'resnet50_os32_merge_with_pure_tf_func.textproto')


def write_records(directory, num_images):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab2.data import synthetic  # pylint: disable=g-import-not-at-top
  from deeplab2.data import tfrecord  # pylint: disable=g-import-not-at-top
  with tfrecord.ShardedWriter(directory, 'train', 4) as writer:
    for index in range(num_images):
      rng = np.random.default_rng(index)
      image, panoptic, _ = synthetic.generate_sample(rng, 2049)
      image, panoptic = image[:1024, :2048], panoptic[:1024, :2048]
      # Cityscapes' divisor: synthetic ids are class * 1000 + instance too.
      writer.write(tfrecord.make_example(
          tfrecord.encode_png(image), 'png', 1024, 2048,
          f'bench_{index:04d}.png', panoptic))
    writer.commit()


def pipeline_rate(directory, batches):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from deeplab2 import common  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.data import input_pipeline  # pylint: disable=g-import-not-at-top
  config, _ = config_lib.load_experiment_config(_CONFIG)
  options = config.train_dataset_options
  del options.file_pattern[:]
  options.file_pattern.append(os.path.join(directory, 'train-*.tfrecord'))
  pipeline = config_lib.from_message(config).pipeline_options('train')
  pipeline = dataclasses.replace(pipeline, batch_size=1)
  iterator = iter(input_pipeline.make_dataset(pipeline))
  for _ in range(4):                          # warm-up
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(iterator)
  batch[common.IMAGE].numpy()
  return batches / (time.perf_counter() - start)


def model_rate(directory, steps):
  from deeplab2.training import experiment  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  config, _ = config_lib.load_experiment_config(_CONFIG)
  for options in (config.train_dataset_options,):
    del options.file_pattern[:]
    options.file_pattern.append(os.path.join(directory, 'train-*.tfrecord'))
    options.batch_size = 1
    options.dataset = os.path.join(directory, 'descriptor.json')
  config.ClearField('eval_dataset_options')
  config.model_options.panoptic_deeplab.semantic_head.output_channels = 5
  trainer = config.trainer_options
  trainer.steps_per_loop = 1
  trainer.save_checkpoints_steps = 10**6
  trainer.save_summaries_steps = 10**6
  trainer.solver_options.training_number_of_steps = 10**6
  from deeplab2.data import dataset_descriptor  # pylint: disable=g-import-not-at-top
  dataset_descriptor.get_descriptor('synthetic_panoptic').write_json(
      os.path.join(directory, 'descriptor.json'))
  path = os.path.join(directory, 'model.textproto')
  with open(path, 'w') as f:
    f.write(text_format.MessageToString(config))
  run = experiment.Experiment(path, os.path.join(directory, 'model'))
  times = []
  for step in range(steps + 1):
    start = time.perf_counter()
    run.train(until_step=step + 1)
    if step:                                  # the first step compiles
      times.append(time.perf_counter() - start)
  return 1.0 / statistics.median(times)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num_images', type=int, default=16)
  parser.add_argument('--batches', type=int, default=64)
  parser.add_argument('--model_steps', type=int, default=3)
  parser.add_argument('--skip_model', action='store_true')
  parser.add_argument('--part', choices=('pipeline', 'model'))
  parser.add_argument('--directory')
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  args = parser.parse_args(argv)
  if args.part == 'pipeline':
    print(pipeline_rate(args.directory, args.batches))
    return 0
  if args.part == 'model':
    print(model_rate(args.directory, args.model_steps))
    return 0
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  # The parts' processes print bare rates; they inherit this process's
  # environment, hence its oneDNN state.
  description = machine.describe()
  print(f'Machine: {description}')
  with tempfile.TemporaryDirectory() as directory:
    start = time.perf_counter()
    write_records(directory, args.num_images)
    print(f'wrote {args.num_images} records of 1024 x 2048 in '
          f'{time.perf_counter() - start:.0f} s; {os.cpu_count()} CPUs')
    rows = []
    for part in ('pipeline',) + (() if args.skip_model else ('model',)):
      # A process each, so the two do not share threads or memory.
      result = subprocess.run(
          [sys.executable, os.path.abspath(__file__), f'--part={part}',
           f'--directory={directory}', f'--batches={args.batches}',
           f'--model_steps={args.model_steps}'],
          capture_output=True, text=True, check=False)
      if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
      rows.append((part, float(result.stdout.strip().splitlines()[-1])))
  print('| what (crop 1025 x 2049, batch 1) | rate |')
  print('|---|---|')
  json_rows = []
  for part, rate in rows:
    label = ('input pipeline (decode + augment + targets)'
             if part == 'pipeline' else 'ResNet-50 OS32 training step')
    unit = 'images/s' if part == 'pipeline' else 'steps/s'
    print(f'| {label} | {rate:.2f} {unit} |')
    json_rows.append({'part': part, 'what': label, 'rate': rate,
                      'unit': unit})
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': json_rows}, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
