"""Post-processing latency and peak memory at Cityscapes resolution.

Compares our post-processor (batched, chunked grouping, segment-sum merge)
with the straightforward design of the reference implementations: a dense
pixels x centers distance tensor and a Python loop over instances and
classes. Each configuration runs in a fresh process; memory is the peak
resident set size above what the process held once its inputs were made
(the warm-up run, with its tracing, included). At --tflite_batches (1) the
whole post-processor (every output) is also converted to TFLite, as
export_model.py --tflite converts it (builtins only, argmax), and checked
against TF's outputs, both before that baseline; it is run by LiteRT on 2
threads, its inputs set once. Prints the machine (CPU
model, cores and the processes' oneDNN state) and a Markdown table; --json
also writes the rows and the machine to a file.

  python benchmarks/postprocess_speed.py [--height 1025 --width 2049 --runs 5]
      [--batches 1,4] [--loop_batches 1,4] [--tflite_batches 1] [--json PATH]
  python benchmarks/postprocess_speed.py --stages [--centers 0,20,200]

--stages times each stage without and with XLA, and the grouping also
converted to TFLite (builtins only, as export_model.py --tflite; needs
ai-edge-litert, the `tflite` extra) and run by LiteRT on 2 threads.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

NUM_CLASSES = 19
THINGS = tuple(range(11, 19))
DIVISOR = 1000
IGNORE = 255


def _rss_kb(field):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1])
  raise RuntimeError(f'{field} not in /proc/self/status')


def _inputs(tf, batch, height, width, num_centers, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(batch, height, width, NUM_CLASSES)).astype(
      np.float32)
  blocks = rng.integers(0, NUM_CLASSES, size=(batch, height // 64 + 1,
                                              width // 64 + 1))
  logits += 4.0 * np.eye(NUM_CLASSES, dtype=np.float32)[
      np.repeat(np.repeat(blocks, 64, 1), 64, 2)[:, :height, :width]]
  heatmap = rng.uniform(0, 0.05, size=(batch, height, width)).astype(
      np.float32)
  ys = rng.integers(0, height, size=(batch, num_centers))
  xs = rng.integers(0, width, size=(batch, num_centers))
  for b in range(batch):
    heatmap[b, ys[b], xs[b]] = rng.uniform(0.2, 1.0, size=num_centers)
  offsets = rng.normal(0, 20, size=(batch, height, width, 2)).astype(
      np.float32)
  return (tf.constant(logits), tf.constant(heatmap), tf.constant(offsets))


def _processor(options):
  from deeplab2 import label_spec  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import post_processor  # pylint: disable=g-import-not-at-top
  spec = label_spec.LabelSpec(num_classes=NUM_CLASSES, ignore_label=IGNORE,
                              label_divisor=DIVISOR, thing_class_ids=THINGS)
  return post_processor.PanopticDeepLabPostProcessor(
      post_processor.PostProcessorOptions(label_spec=spec, **options))


def _ours(tf, options, jit_compile=False):
  from deeplab2 import common  # pylint: disable=g-import-not-at-top
  fn = tf.function(_processor(options).__call__, jit_compile=jit_compile)

  def run(logits, heatmap, offsets):
    result = fn({common.PRED_SEMANTIC_LOGITS: logits,
                 common.PRED_CENTER_HEATMAP: heatmap,
                 common.PRED_OFFSET_MAP: offsets})
    return result[common.PRED_PANOPTIC].numpy()
  return run


def _tflite_model(tf, options, inputs, semantic_argmax):
  """(TFLite bytes, TF's outputs) of the whole post-processor, every output
  as serving/tflite.py converts it (builtins only; semantic_argmax: its
  choice, 'argmax'), for these inputs; the outputs in the order of their
  sorted names."""
  from deeplab2 import common  # pylint: disable=g-import-not-at-top
  processor = _processor(dict(options, semantic_argmax=semantic_argmax))

  def outputs(logits, heatmap, offsets):
    result = processor({common.PRED_SEMANTIC_LOGITS: logits,
                        common.PRED_CENTER_HEATMAP: heatmap,
                        common.PRED_OFFSET_MAP: offsets})
    return tuple(result[name] for name in sorted(result))

  fn = tf.function(outputs, input_signature=[
      tf.TensorSpec(t.shape, t.dtype) for t in inputs])
  return _converted(tf, fn), [t.numpy() for t in fn(*inputs)]


def _converted(tf, function):
  """TFLite bytes of a tf.function with an input signature, builtins only
  (as export_model.py --tflite)."""
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], function)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()


def _litert_call(model, inputs, expected):
  """A call that runs the TFLite `model` with LiteRT on 2 threads on
  `inputs` (NumPy, set once, told apart by shape and dtype), after checking
  its outputs against `expected` (NumPy, in the model's output order)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  runner = litert.Interpreter(model_content=model, num_threads=2)
  runner.allocate_tensors()
  for detail in runner.get_input_details():
    runner.set_tensor(detail['index'], next(
        v for v in inputs
        if tuple(detail['shape']) == v.shape and detail['dtype'] == v.dtype))
  outputs = [d['index'] for d in runner.get_output_details()]
  runner.invoke()

  def equal(got, want):
    # Integer maps exactly; float outputs (instance scores) within float32
    # rounding of TF's, as the export tests check them.
    if np.issubdtype(want.dtype, np.floating):
      return got.shape == want.shape and np.allclose(got, want, rtol=1e-5,
                                                     atol=1e-6)
    return np.array_equal(got, want)
  if len(outputs) != len(expected) or not all(
      equal(runner.get_tensor(index), want)
      for index, want in zip(outputs, expected)):
    raise RuntimeError('The TFLite model differs from TF.')

  def run(*unused_inputs):
    runner.invoke()
    return [runner.get_tensor(index) for index in outputs]
  return run


def _loop_reference(tf, options):
  """The reference design: dense distances, Python loop over instances."""
  from deeplab2.postprocessing import centers as centers_lib  # pylint: disable=g-import-not-at-top

  def run(logits, heatmap, offsets):
    outputs = []
    for b in range(logits.shape[0]):
      semantic = tf.argmax(logits[b], -1, output_type=tf.int32)
      points, scores = centers_lib.find_centers(
          heatmap[b:b + 1], options['center_score_threshold'],
          options['nms_kernel'], options['keep_k_centers'])
      points = tf.boolean_mask(points[0], scores[0] > 0)
      height, width = semantic.shape
      grid = tf.cast(tf.stack(tf.meshgrid(tf.range(height), tf.range(width),
                                          indexing='ij'), -1), tf.float32)
      voted = tf.reshape(grid + offsets[b], [-1, 1, 2])
      is_thing = tf.reduce_any(
          tf.equal(semantic[..., None], tf.constant(THINGS)), -1)
      panoptic = tf.fill([height, width], IGNORE * DIVISOR)
      if points.shape[0]:
        distance = tf.norm(voted - tf.cast(points, tf.float32)[None], axis=-1)
        instance = tf.reshape(tf.argmin(distance, -1, output_type=tf.int32) + 1,
                              [height, width])
        instance = tf.where(is_thing, instance, 0)
        next_id = {}
        for k in range(1, points.shape[0] + 1):
          mask = tf.equal(instance, k)
          if not tf.reduce_any(mask):
            continue
          votes = tf.math.bincount(tf.boolean_mask(semantic, mask),
                                   minlength=NUM_CLASSES)
          cls = int(tf.argmax(votes))
          next_id[cls] = next_id.get(cls, 0) + 1
          panoptic = tf.where(mask, cls * DIVISOR + next_id[cls], panoptic)
      for cls in range(NUM_CLASSES):
        if cls in THINGS:
          continue
        mask = tf.equal(semantic, cls)
        if int(tf.reduce_sum(tf.cast(mask, tf.int32))) >= options[
            'stuff_area_limit']:
          panoptic = tf.where(mask, cls * DIVISOR, panoptic)
      outputs.append(panoptic.numpy())
    return outputs
  return run


def measure(implementation, batch, height, width, num_centers, runs,
            tflite_semantic_argmax='argmax'):
  """Runs in this process; returns (median seconds, extra peak MB)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  options = dict(center_score_threshold=0.1, nms_kernel=13,
                 keep_k_centers=200, stuff_area_limit=2048)
  inputs = _inputs(tf, batch, height, width, num_centers)
  if implementation == 'loop':
    run = _loop_reference(tf, options)
  elif implementation == 'ours_tflite':
    # Converted, and TF's outputs to check it computed, before the baseline
    # (export time, not serving time); the interpreter and its tensors count.
    model, expected = _tflite_model(tf, options, inputs,
                                    tflite_semantic_argmax)
    run = None
  else:
    run = _ours(tf, options, jit_compile=implementation == 'ours_xla')
  # The baseline is taken before the first run: allocators keep what a run
  # freed, so a baseline after a warm-up would hide the peak.
  with open('/proc/self/clear_refs', 'w') as f:  # reset the peak
    f.write('5')
  baseline = _rss_kb('VmRSS')
  if run is None:
    run = _litert_call(model, [t.numpy() for t in inputs], expected)
  run(*inputs)                                   # warm-up (tracing)
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    run(*inputs)
    times.append(time.perf_counter() - start)
  extra_mb = (_rss_kb('VmHWM') - baseline) / 1024
  return float(np.median(times)), extra_mb


def _stage_rows(height, width, num_centers, runs):
  """Times each stage of the post-processor at batch 1, with and without
  XLA, against the bytes it must read and write at least (its inputs once,
  its outputs once). Returns a list of row dicts."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2 import label_spec  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import centers as centers_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import grouping  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import merge  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import post_processor  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import op_profile  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import xla  # pylint: disable=g-import-not-at-top
  spec = label_spec.LabelSpec(num_classes=NUM_CLASSES, ignore_label=IGNORE,
                              label_divisor=DIVISOR, thing_class_ids=THINGS)
  logits, heatmap, offsets = _inputs(tf, 1, height, width, num_centers)
  semantic = tf.argmax(logits, -1, output_type=tf.int32)
  max_logit = tf.reduce_max(logits, -1)
  points, scores = centers_lib.find_centers(heatmap, 0.1, 13, 200)
  thing_mask = spec.is_thing(semantic)
  instance_index = grouping.group_pixels(points, scores, offsets, thing_mask)
  pixels = height * width
  map_bytes = 4 * pixels
  logit_bytes = map_bytes * NUM_CLASSES
  stages = [
      ('one read of the logits (reduce_max to a scalar)',
       lambda l: tf.reduce_max(l), (logits,), logit_bytes),
      ('semantic argmax (TF: top_k)',
       lambda l: post_processor.semantic_prediction(l)[0], (logits,),
       logit_bytes + 2 * map_bytes),
      ('log-normaliser (TF: given the max)',
       lambda l, m: post_processor.log_normaliser(
           l, None if xla.compiling_with_xla() else m), (logits, max_logit),
       logit_bytes + 2 * map_bytes),
      ('center NMS', lambda h: centers_lib.find_centers(h, 0.1, 13, 200),
       (heatmap,), map_bytes),
      ('grouping', grouping.group_pixels,
       (points, scores, offsets, thing_mask), 3 * map_bytes + pixels),
      ('merge', lambda s, i: merge.merge_semantic_and_instance(
          s, i, 200, spec, 2048, segment_minimum=True),
       (semantic, instance_index), 4 * map_bytes),
  ]
  rows = []
  for name, fn, args, min_bytes in stages:
    row = {'stage': name, 'centers': num_centers, 'bytes': min_bytes}
    for key, jit in (('s', False), ('xla_s', True)):
      compiled = tf.function(fn, jit_compile=jit)
      row[key] = op_profile.median_seconds(lambda: compiled(*args), runs)  # pylint: disable=cell-var-from-loop
    if name == 'grouping':
      row['tflite_s'] = _tflite_seconds(tf, fn, args, runs)
    rows.append(row)
  return rows


def _tflite_seconds(tf, fn, args, runs):
  """Median seconds of fn(*args) converted to TFLite and run by LiteRT
  (_litert_call), after one warm-up."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  function = tf.function(fn, input_signature=[
      tf.TensorSpec(a.shape, a.dtype) for a in args])
  run = _litert_call(_converted(tf, function), [a.numpy() for a in args],
                     [function(*args).numpy()])
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _ms(seconds):
  return '-' if seconds is None else f'{seconds * 1000:.0f}'


def _print_stages(args):
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  print(f'Machine: {machine.describe()}')
  print(f'post-processing stages at {args.height} x {args.width}, '
        f'{NUM_CLASSES} classes, batch 1; median of {args.runs} runs. "Least '
        'MB": its inputs read once and its outputs written once.')
  print('| stage | centers | least MB | ms | GB/s | ms, XLA | GB/s, XLA | '
        'ms, TFLite |')
  print('|---|---|---|---|---|---|---|---|')
  rows = []
  for centers in [int(c) for c in args.centers.split(',')]:
    for row in _stage_rows(args.height, args.width, centers, args.runs):
      print(f'| {row["stage"]} | {centers} | {row["bytes"] / 1e6:.0f} | '
            f'{row["s"] * 1000:.0f} | {row["bytes"] / row["s"] / 1e9:.1f} | '
            f'{row["xla_s"] * 1000:.0f} | '
            f'{row["bytes"] / row["xla_s"] / 1e9:.1f} | '
            f'{_ms(row.get("tflite_s"))} |', flush=True)
      rows.append(row)
  return machine.describe(), rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--height', type=int, default=1025)
  parser.add_argument('--width', type=int, default=2049)
  parser.add_argument('--runs', type=int, default=5)
  parser.add_argument('--centers', default='0,20,200')
  parser.add_argument('--batches', default='1,4')
  parser.add_argument('--loop_batches', default='1,4',
                      help='batch sizes also timed with the loop design')
  parser.add_argument('--tflite_semantic_argmax', default='argmax',
                      choices=('argmax', 'top_k'),
                      help='the TFLite model\'s PostProcessorOptions.'
                      'semantic_argmax (export_model.py --tflite: argmax)')
  parser.add_argument('--tflite_batches', default='1',
                      help='batch sizes also timed as a TFLite model '
                      '(LiteRT, 2 threads; needs ai-edge-litert, the '
                      '`tflite` extra)')
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  parser.add_argument('--stages', action='store_true',
                      help='time each stage of ours (batch 1) against the '
                      'bytes it must read and write, instead of the table')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.stages:
    description, rows = _print_stages(args)
    if args.json:
      with open(args.json, 'w') as f:
        json.dump({'machine': description, 'stages': rows}, f, indent=1)
    return
  if args.child:
    from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
    implementation, batch, centers = args.child.split(',')
    runs = args.runs if implementation != 'loop' else max(1, args.runs // 2)
    seconds, extra_mb = measure(implementation, int(batch), args.height,
                                args.width, int(centers), runs,
                                args.tflite_semantic_argmax)
    print(json.dumps({'seconds': seconds, 'extra_mb': extra_mb,
                      'machine': machine.describe()}))
    return
  description = None
  rows = []
  loop_batches = [int(b) for b in args.loop_batches.split(',') if b]
  tflite_batches = [int(b) for b in args.tflite_batches.split(',') if b]
  for batch in [int(b) for b in args.batches.split(',')]:
    for centers in [int(c) for c in args.centers.split(',')]:
      row = {}
      for implementation in ('ours', 'ours_xla', 'ours_tflite', 'loop'):
        if implementation == 'loop' and batch not in loop_batches:
          continue
        if implementation == 'ours_tflite' and batch not in tflite_batches:
          continue
        output = subprocess.run(
            [sys.executable, __file__, f'--child={implementation},{batch},'
             f'{centers}', f'--height={args.height}', f'--width={args.width}',
             f'--runs={args.runs}',
             f'--tflite_semantic_argmax={args.tflite_semantic_argmax}'],
            check=True, capture_output=True,
            text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        if description is None:
          # The header waits for the first child: the oneDNN state reported
          # is the children's, which do the timing.
          description = result['machine']
          print(f'Machine: {description}')
          print(f'post-processing at {args.height} x {args.width}, '
                f'{NUM_CLASSES} classes, keep_k 200, nms_kernel 13; median '
                f'of {args.runs} runs ({max(1, args.runs // 2)} for the '
                'loop design)')
          print('| batch | centers | ours (ms) | extra MB | ours, XLA (ms) | '
                'extra MB | ours, TFLite (ms) | extra MB | loop design (ms) | '
                'extra MB | speed-up | speed-up, XLA |')
          print('|---|---|---|---|---|---|---|---|---|---|---|---|')
        row[implementation] = (result['seconds'], result['extra_mb'])
      ours_s, ours_mb = row['ours']
      xla_s, xla_mb = row['ours_xla']
      if 'loop' in row:
        loop_s, loop_mb = row['loop']
        loop_cells = (f'{loop_s * 1000:.0f} | {loop_mb:.0f} | '
                      f'{loop_s / ours_s:.1f}x | {loop_s / xla_s:.1f}x')
      else:
        loop_s = loop_mb = None
        loop_cells = '- | - | - | -'
      tflite_s, tflite_mb = row.get('ours_tflite', (None, None))
      tflite_cells = ('- | -' if tflite_s is None else
                      f'{tflite_s * 1000:.0f} | {tflite_mb:.0f}')
      print(f'| {batch} | {centers} | {ours_s * 1000:.0f} | {ours_mb:.0f} | '
            f'{xla_s * 1000:.0f} | {xla_mb:.0f} | {tflite_cells} | '
            f'{loop_cells} |', flush=True)
      rows.append({
          'batch': batch, 'centers': centers, 'height': args.height,
          'width': args.width, 'ours_s': ours_s, 'ours_extra_mb': ours_mb,
          'ours_xla_s': xla_s, 'ours_xla_extra_mb': xla_mb,
          'ours_tflite_s': tflite_s, 'ours_tflite_extra_mb': tflite_mb,
          'loop_s': loop_s, 'loop_extra_mb': loop_mb,
          'speedup': loop_s / ours_s if loop_s is not None else None,
          'speedup_xla': loop_s / xla_s if loop_s is not None else None})
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  main()
