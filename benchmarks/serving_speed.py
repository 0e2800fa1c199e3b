"""End-to-end serving latency: SavedModel and TFLite (LiteRT), next to the
network alone.

  python benchmarks/serving_speed.py [--configs=resnet50_os32_merge_with_pure_tf_func,mobilenet_v3_large_os32]
      [--sizes=1025x2049,641x641] [--runs=3] [--formats=saved_model,float32,float16,int8]
      [--json=PATH]

For each config (a stem under configs/cityscapes/panoptic_deeplab/) and
input size, a fresh subprocess builds the model with random weights, sets
the eval crop to the input size (so the input is neither resized nor
padded beyond output_stride * k + 1), and times, batch 1, median of
`--runs` after one warm-up:
  network: the Keras model's forward pass alone (tf.function);
  saved_model: the exported SavedModel's serving_default on a uint8 image,
    preprocessing and post-processing included;
  float32 / float16 / int8: the .tflite model of export_model.py --tflite,
    run by LiteRT's interpreter with --threads threads, post-processing
    included.
Random weights give a random number of instance centers, so the
post-processing share is indicative only. Prints the machine (CPU model,
cores and the workers' oneDNN state) and a Markdown table; --json also
writes the rows and the machine to a file.
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
_FORMATS = ('saved_model', 'float32', 'float16', 'int8')


def _median_time(function, runs):
  function()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _worker(args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.serving import export  # pylint: disable=g-import-not-at-top
  from deeplab2.serving import tflite  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  height, width = (int(v) for v in args.size.split('x'))
  path = os.path.join(_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                      args.config + '.textproto')
  config, _ = config_lib.load_experiment_config(path)
  options = config.eval_dataset_options
  options.crop_size[:] = [height, width]
  del options.min_resize_value[:]
  del options.max_resize_value[:]
  parts = config_lib.from_message(config)
  model = parts.build_model(input_size=(65, 65))
  post_processor = parts.build_post_processor()
  inference_options = parts.inference_options()
  image = np.random.default_rng(0).integers(0, 256, (height, width, 3),
                                            np.uint8)
  result = {}
  forward = tf.function(lambda x: model(x, training=False))
  batch = tf.constant(image[None], tf.float32)
  result['network'] = _median_time(
      lambda: tf.nest.map_structure(lambda t: t.numpy(), forward(batch)),
      args.runs)
  with tempfile.TemporaryDirectory() as scratch:
    if 'saved_model' in args.formats:
      saved = os.path.join(scratch, 'saved_model')
      export.export_saved_model(model, post_processor, inference_options,
                                saved, parts.descriptor('eval'))
      serve = tf.saved_model.load(saved).signatures['serving_default']
      tensor = tf.constant(image)
      result['saved_model'] = _median_time(
          lambda: {k: v.numpy() for k, v in serve(image=tensor).items()},
          args.runs)
    module = export.PanopticDeepLabModule(model, post_processor,
                                          inference_options, (height, width))
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    for quantization in tflite.QUANTIZATIONS:
      if quantization not in args.formats:
        continue
      start = time.perf_counter()
      data = tflite.convert(module, quantization)
      result[f'{quantization}_convert_s'] = time.perf_counter() - start
      result[f'{quantization}_mb'] = len(data) / 2**20
      runner = litert.Interpreter(model_content=data,
                                  num_threads=args.threads)
      signature = runner.get_signature_runner()
      result[quantization] = _median_time(
          lambda: signature(images=image[None]), args.runs)
  result['machine'] = machine.describe()
  print(json.dumps(result))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', default='resnet50_os32_merge_with_pure_'
                      'tf_func,mobilenet_v3_large_os32')
  parser.add_argument('--sizes', default='1025x2049,641x641')
  parser.add_argument('--formats', default=','.join(_FORMATS))
  parser.add_argument('--runs', type=int, default=3)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  parser.add_argument('--worker', action='store_true')
  parser.add_argument('--config')
  parser.add_argument('--size')
  args = parser.parse_args()
  args.formats = tuple(args.formats.split(','))
  if args.worker:
    _worker(args)
    return
  formats = [f for f in _FORMATS if f in args.formats]
  header = ['config', 'input', 'network (ms)'] + [
      f'{f} (ms)' for f in formats]
  description = None
  rows = []
  for config in args.configs.split(','):
    for size in args.sizes.split(','):
      command = [sys.executable, os.path.abspath(__file__), '--worker',
                 f'--config={config}', f'--size={size}',
                 f'--runs={args.runs}', f'--threads={args.threads}',
                 f'--formats={",".join(args.formats)}']
      done = subprocess.run(command, capture_output=True, text=True,
                            check=False)
      result = (json.loads(done.stdout.strip().splitlines()[-1])
                if done.returncode == 0 else None)
      if description is None:
        # The header waits for the first worker: the oneDNN state reported
        # is the workers'. Where that one failed, this process's, whose
        # environment they inherit.
        if result is None:
          from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
          description = machine.describe()
        else:
          description = result['machine']
        print(f'Machine: {description}')
        print(f'batch 1, median of {args.runs} runs after a warm-up, '
              f'{os.cpu_count()} CPU threads; SavedModel and TFLite times '
              'include pre- and post-processing')
        print('| ' + ' | '.join(header) + ' |')
        print('|' + '---|' * len(header))
      if result is None:
        error = done.stderr.strip().splitlines()[-1]
        print(f'| {config} | {size} | failed: {error} |')
        rows.append({'config': config, 'input': size, 'error': error})
        continue
      cells = [config, size.replace('x', ' x '),
               f'{1000 * result["network"]:.0f}']
      for f in formats:
        cell = f'{1000 * result[f]:.0f}'
        if f != 'saved_model':
          cell += f' ({result[f + "_mb"]:.1f} MB)'
        cells.append(cell)
      print('| ' + ' | '.join(cells) + ' |', flush=True)
      row = {'config': config, 'input': size, 'network_s': result['network']}
      for f in formats:
        row[f + '_s'] = result[f]
        if f != 'saved_model':
          row[f + '_mb'] = result[f + '_mb']
          row[f + '_convert_s'] = result[f + '_convert_s']
      rows.append(row)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  main()
