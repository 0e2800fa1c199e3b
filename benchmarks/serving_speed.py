"""End-to-end serving latency, memory and agreement of every runtime:
SavedModel, TFLite (LiteRT), ONNX (ONNX Runtime) and OpenVINO, next to the
network alone.

  python benchmarks/serving_speed.py [--configs=resnet50_os32_merge_with_pure_tf_func,mobilenet_v3_large_os32]
      [--sizes=641x641,1025x2049] [--runs=3] [--agreement_images=8]
      [--formats=saved_model,float32,float16,int8,onnx,openvino,openvino_bf16]
      [--json=PATH]

For each config (a stem under configs/cityscapes/panoptic_deeplab/) and
input size, a worker process builds the model with random weights and
random batch-norm statistics (so that activations and logits are of a
trained network's scale, not all but equal), sets the eval crop to the
input size (so the input is neither resized nor padded beyond
output_stride * k + 1), times the Keras network's forward pass alone
(`network`), and writes every format to a scratch folder:
  saved_model: export_model.py's SavedModel (serving_default, uint8 image);
  float32 / float16 / int8: its .tflite models (export_model.py --tflite);
  onnx: its .onnx model (--format=onnx);
  openvino: its OpenVINO IR (--format=openvino), compiled in float32;
  openvino_bf16: the same IR compiled with INFERENCE_PRECISION_HINT bf16
    (Predictor.from_openvino(precision='bf16')): bfloat16 on CPUs with
    bfloat16 units, float32 elsewhere.
Each format is then served by a process of its own that imports only its
runtime (never this package): batch 1, median of `--runs` after one
warm-up, with --threads threads, on the first of --agreement_images
random images; its peak resident memory (the whole process: runtime,
model, the images and their inferences) and the share of panoptic pixels
equal to the SavedModel's over all the images are reported. All
times include pre- and post-processing except `network`. Random weights
give a random number of instance centers, so the post-processing share is
indicative only. Prints the machine (CPU model, cores and the workers'
oneDNN state) and a Markdown table; --json also writes the rows and the
machine to a file.
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
_FORMATS = ('saved_model', 'float32', 'float16', 'int8', 'onnx', 'openvino',
            'openvino_bf16')
_TFLITE = ('float32', 'float16', 'int8')

# python -c _SERVE FORMAT MODEL IMAGES.npy RUNS THREADS PANOPTIC_OUT.npy
# PRECISION: times the first image, writes every image's panoptic map; prints
# {"median_s", "peak_rss_mb"}; imports its runtime only.
_SERVE = """
import json, statistics, sys, time
import numpy as np
kind, path, images_path, runs, threads, out, precision = sys.argv[1:8]
runs, threads = int(runs), int(threads)
images = np.load(images_path)
if kind == 'saved_model':
  import tensorflow as tf
  serve = tf.saved_model.load(path).signatures['serving_default']
  run = lambda image: {k: v.numpy() for k, v in serve(
      image=tf.constant(image)).items()}
elif kind == 'tflite':
  from ai_edge_litert import interpreter
  signature = interpreter.Interpreter(
      model_path=path, num_threads=threads).get_signature_runner()
  run = lambda image: {k: v[0] for k, v in signature(
      images=image[None]).items()}
elif kind == 'onnx':
  import onnxruntime
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = threads
  session = onnxruntime.InferenceSession(path, options)
  names = [o.name for o in session.get_outputs()]
  run = lambda image: {n: v[0] for n, v in zip(
      names, session.run(None, {'images': image[None]}))}
else:
  import openvino
  core = openvino.Core()
  model = core.read_model(path)
  compiled = core.compile_model(model, 'CPU', {
      'INFERENCE_PRECISION_HINT': precision, 'INFERENCE_NUM_THREADS': threads})
  names = [o.get_any_name() for o in model.outputs]
  def run(image):
    got = compiled({0: image[None]})
    return {n: got[o][0] for n, o in zip(names, compiled.outputs)}
# The first image is the warm-up, and the one timed.
np.save(out, np.stack([run(image)['panoptic_pred'] for image in images]))
times = []
for _ in range(runs):
  start = time.perf_counter()
  run(images[0])
  times.append(time.perf_counter() - start)
assert not any(m.startswith('deeplab2') for m in sys.modules)
# VmHWM, not getrusage's ru_maxrss, which keeps the parent's across exec.
with open('/proc/self/status') as f:
  peak_kb = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))
print(json.dumps({'median_s': statistics.median(times),
                  'peak_rss_mb': peak_kb / 1024}))
"""


def _median_time(function, runs):
  function()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _trained_scale(model, seed=0):
  """Random weights and batch-norm statistics of a trained network's scale
  (He-scaled kernels, gammas near 1, variances near 1)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    shape = tuple(variable.shape)
    if 'moving_variance' in variable.path:
      values = 1.0 + 0.1 * np.abs(rng.normal(size=shape))
    elif 'gamma' in variable.path:
      values = 1.0 + 0.1 * rng.normal(size=shape)
    elif len(shape) >= 2:
      fan_in = np.prod(shape[:-1])
      values = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    else:
      values = 0.1 * rng.normal(size=shape)
    variable.assign(values.astype(np.float32))


def _worker(args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.serving import export  # pylint: disable=g-import-not-at-top
  from deeplab2.serving import onnx_export  # pylint: disable=g-import-not-at-top
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
  _trained_scale(model)
  post_processor = parts.build_post_processor()
  inference_options = parts.inference_options()
  images = np.random.default_rng(0).integers(
      0, 256, (args.agreement_images, height, width, 3), np.uint8)
  image = images[0]
  result = {}
  forward = tf.function(lambda x: model(x, training=False))
  batch = tf.constant(image[None], tf.float32)
  result['network'] = _median_time(
      lambda: tf.nest.map_structure(lambda t: t.numpy(), forward(batch)),
      args.runs)
  module = export.PanopticDeepLabModule(model, post_processor,
                                        inference_options, (height, width))
  # The ONNX and OpenVINO models group without a loop, each as
  # export_model.py writes it.
  loop_free = {
      runtime: export.PanopticDeepLabModule(
          model, parts.build_post_processor(grouping), inference_options,
          (height, width))
      for runtime, grouping in (('onnx', onnx_export.ONNX_GROUPING),
                                ('openvino', onnx_export.OPENVINO_GROUPING))}
  metadata = {onnx_export.DESCRIPTOR_KEY: json.dumps(
      parts.descriptor('eval').to_json_dict())}
  with tempfile.TemporaryDirectory() as scratch:
    images_path = os.path.join(scratch, 'images.npy')
    np.save(images_path, images)
    files = {'saved_model': os.path.join(scratch, 'saved_model')}
    export.export_saved_model(model, post_processor, inference_options,
                              files['saved_model'], parts.descriptor('eval'))
    for kind in [f for f in _FORMATS if f in args.formats]:
      start = time.perf_counter()
      if kind in _TFLITE:
        data = tflite.convert(module, kind)
        files[kind] = os.path.join(scratch, f'{kind}.tflite')
      elif kind in ('onnx', 'openvino'):
        data = onnx_export.convert(loop_free[kind], metadata)
        files[kind] = os.path.join(scratch, f'{kind}.onnx')
      elif kind == 'openvino_bf16':    # the openvino IR, compiled in bf16
        files[kind] = files['openvino']
        continue
      else:
        continue
      with open(files[kind], 'wb') as f:
        f.write(data)
      if kind == 'openvino':
        import openvino  # pylint: disable=g-import-not-at-top
        files[kind] = os.path.join(scratch, 'model.xml')
        openvino.save_model(openvino.convert_model(
            os.path.join(scratch, 'openvino.onnx')), files[kind],
                            compress_to_fp16=False)
      result[f'{kind}_convert_s'] = time.perf_counter() - start
      size = os.path.getsize(files[kind])
      if kind == 'openvino':
        size += os.path.getsize(files[kind][:-4] + '.bin')
      result[f'{kind}_mb'] = size / 2**20
    if 'openvino_bf16' in files:
      result['openvino_bf16_mb'] = result['openvino_mb']
    del model, module, loop_free, forward
    maps = {}
    for kind in ('saved_model',) + tuple(
        k for k in args.formats if k != 'saved_model'):
      runtime = ('tflite' if kind in _TFLITE else
                 'openvino' if kind == 'openvino_bf16' else kind)
      precision = 'bf16' if kind == 'openvino_bf16' else 'f32'
      out = os.path.join(scratch, f'{kind}-panoptic.npy')
      done = subprocess.run(
          [sys.executable, '-c', _SERVE, runtime, files[kind], images_path,
           str(args.runs), str(args.threads), out, precision],
          capture_output=True, text=True, check=False,
          env={**os.environ, 'PYTHONPATH': ''}, cwd=scratch)
      if done.returncode:
        result[f'{kind}_error'] = done.stderr.strip().splitlines()[-1]
        continue
      served = json.loads(done.stdout.strip().splitlines()[-1])
      result[kind] = served['median_s']
      result[f'{kind}_peak_mb'] = served['peak_rss_mb']
      maps[kind] = np.load(out)
      result[f'{kind}_agreement'] = float(
          (maps[kind] == maps['saved_model']).mean()) if (
              'saved_model' in maps) else None
  result['machine'] = machine.describe()
  print(json.dumps(result))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', default='resnet50_os32_merge_with_pure_'
                      'tf_func,mobilenet_v3_large_os32')
  parser.add_argument('--sizes', default='641x641,1025x2049')
  parser.add_argument('--formats', default=','.join(_FORMATS))
  parser.add_argument('--runs', type=int, default=3)
  parser.add_argument('--agreement_images', type=int, default=8,
                      help='random images each runtime serves for the '
                      'agreement (the first is also the one timed)')
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  parser.add_argument('--worker', action='store_true')
  parser.add_argument('--config')
  parser.add_argument('--size')
  args = parser.parse_args()
  args.formats = tuple(args.formats.split(','))
  unknown = [f for f in args.formats if f not in _FORMATS]
  if unknown:
    parser.error(f'unknown --formats {unknown}; valid: {", ".join(_FORMATS)}')
  if args.agreement_images < 1:
    parser.error(f'--agreement_images={args.agreement_images}: give 1 or '
                 'more')
  if 'openvino_bf16' in args.formats and 'openvino' not in args.formats:
    parser.error('--formats: openvino_bf16 serves the openvino model: give '
                 'openvino too')
  if args.worker:
    _worker(args)
    return
  formats = [f for f in _FORMATS if f in args.formats]
  description = None
  rows = []
  for config in args.configs.split(','):
    for size in args.sizes.split(','):
      command = [sys.executable, os.path.abspath(__file__), '--worker',
                 f'--config={config}', f'--size={size}',
                 f'--runs={args.runs}', f'--threads={args.threads}',
                 f'--agreement_images={args.agreement_images}',
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
              f'{args.threads} threads; every runtime in a process of its '
              'own; times include pre- and post-processing, except the '
              "network's; memory: the serving process's peak RSS; agreement: "
              "panoptic pixels equal to the SavedModel's over "
              f"{args.agreement_images} random images")
        print('| config | input | runtime | median (ms) | peak memory (MB) '
              '| agreement | model (MB) |')
        print('|---|---|---|---|---|---|---|')
      if result is None:
        error = done.stderr.strip().splitlines()[-1]
        print(f'| {config} | {size} | failed: {error} | | | | |')
        rows.append({'config': config, 'input': size, 'error': error})
        continue
      shown = size.replace('x', ' x ')
      print(f'| {config} | {shown} | network (Keras) | '
            f'{1000 * result["network"]:.0f} | | | |', flush=True)
      rows.append({'config': config, 'input': size, 'runtime': 'network',
                   'median_s': result['network']})
      for kind in formats:
        name = {'saved_model': 'SavedModel', 'float32': 'TFLite float32',
                'float16': 'TFLite float16', 'int8': 'TFLite int8',
                'onnx': 'ONNX Runtime', 'openvino': 'OpenVINO',
                'openvino_bf16': 'OpenVINO bf16'}[kind]
        row = {'config': config, 'input': size, 'runtime': kind}
        if kind not in result:
          row['error'] = result.get(f'{kind}_error', 'not run')
          print(f'| {config} | {shown} | {name} | failed: {row["error"]} '
                '| | | |', flush=True)
          rows.append(row)
          continue
        row.update(median_s=result[kind],
                   peak_mb=result[f'{kind}_peak_mb'],
                   agreement=result[f'{kind}_agreement'],
                   model_mb=result.get(f'{kind}_mb'),
                   convert_s=result.get(f'{kind}_convert_s'))
        rows.append(row)
        model_mb = (f'{row["model_mb"]:.0f}' if row['model_mb'] is not None
                    else '')
        print(f'| {config} | {shown} | {name} | {1000 * row["median_s"]:.0f} '
              f'| {row["peak_mb"]:.0f} | {100 * row["agreement"]:.2f} % '
              f'| {model_mb} |', flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  main()
