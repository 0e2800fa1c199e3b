"""Times the convolution formulations the model chooses between.

    python benchmarks/conv_kernels.py [--onednn=1,0] [--runs=7] [--json=PATH]

Rows, at the ResNet-50 Cityscapes config's sizes (training crop 513 x 1025
at batch 2, evaluation at 1025 x 2049 at batch 1):
- ASPP's 3 x 3 atrous convs, 2048 into 256 channels on res5 (OS 32),
  forward and, at the training crop, forward + backward: TF's
  space-to-batch (`tf.nn.convolution`), a dilated Conv2D (oneDNN only
  differentiates it) and the per-tap products of modeling/layers/atrous.py;
- the decoder's 5 x 5 depthwise kernel gradient at stride 4: TF's
  DepthwiseConv2dNativeBackpropFilter and the depthwise correlation of
  modeling/layers/depthwise.py (taken with oneDNN on an AVX-512 CPU).
Each oneDNN value runs in its own process (TF reads the setting once).
Milliseconds, median of --runs calls after one warm-up.
"""

import argparse
import json
import os
import subprocess
import sys

_ATROUS = [(1, 33, 65, 3), (1, 33, 65, 6), (1, 33, 65, 9),
           (2, 17, 33, 3), (2, 17, 33, 6), (2, 17, 33, 9)]
_DEPTHWISE = [(2, 129, 257, 256), (2, 129, 257, 128), (8, 33, 33, 256)]


def _milliseconds(fn, args, runs):
  from deeplab2.utils import op_profile  # pylint: disable=g-import-not-at-top
  return round(op_profile.median_seconds(lambda: fn(*args), runs) * 1e3, 1)


def _worker(runs):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2.modeling.layers import atrous  # pylint: disable=g-import-not-at-top
  from deeplab2.modeling.layers import depthwise  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top

  def with_gradients(fn):
    @tf.function
    def gradients(x, kernel, output_gradient):
      with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
      return tape.gradient(y, [x, kernel], output_gradients=output_gradient)
    return gradients

  rows = []
  for batch, height, width, rate in _ATROUS:
    x = tf.random.normal([batch, height, width, 2048])
    kernel = tf.random.normal([3, 3, 2048, 256])
    output_gradient = tf.random.normal([batch, height, width, 256])
    ways = {
        'space_to_batch': lambda x, k, r=rate: tf.nn.convolution(
            x, k, padding='SAME', dilations=r),
        'dilated_conv2d': lambda x, k, r=rate: tf.nn.conv2d(
            x, k, 1, 'SAME', dilations=r),
        'taps': lambda x, k, r=rate: atrous._by_taps(x, k, r),  # pylint: disable=protected-access
    }
    for way, fn in ways.items():
      row = {'kernel': 'atrous 3x3, 2048 -> 256', 'rate': rate,
             'shape': [batch, height, width], 'way': way,
             'forward_ms': _milliseconds(tf.function(fn), (x, kernel), runs)}
      if batch > 1:
        try:
          row['forward_backward_ms'] = _milliseconds(
              with_gradients(fn), (x, kernel, output_gradient), runs)
        except tf.errors.OpError as error:
          row['forward_backward_ms'] = None
          row['error'] = str(error).splitlines()[0][:120]
      rows.append(row)
  for batch, height, width, channels in _DEPTHWISE:
    x = tf.random.normal([batch, height, width, channels])
    output_gradient = tf.random.normal([batch, height, width, channels])
    ways = {
        'tf_backprop_filter': lambda x, g, c=channels: (
            tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                input=x, filter_sizes=[5, 5, c, 1], out_backprop=g,
                strides=[1, 1, 1, 1], padding='SAME')),
        'depthwise_correlation': lambda x, g: depthwise.kernel_gradient(
            x, g, (5, 5), 'SAME'),
    }
    for way, fn in ways.items():
      rows.append({'kernel': f'depthwise 5x5 kernel gradient, {channels}',
                   'shape': [batch, height, width], 'way': way,
                   'ms': _milliseconds(tf.function(fn), (x, output_gradient),
                                       runs)})
  print(json.dumps({'machine': machine.describe(), 'rows': rows}))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--onednn', default='1,0',
                      help='Comma-separated TF_ENABLE_ONEDNN_OPTS values.')
  parser.add_argument('--runs', type=int, default=7)
  parser.add_argument('--json', default='', help='Also write the results '
                      'here (refused if the file exists).')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    _worker(args.runs)
    return
  if args.json and os.path.exists(args.json):
    parser.error(f'--json: {args.json} exists; choose another path.')
  results = []
  for value in args.onednn.split(','):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=value)
    done = subprocess.run([sys.executable, os.path.abspath(__file__),
                           '--worker', f'--runs={args.runs}'], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
      sys.exit(f'error: the worker with TF_ENABLE_ONEDNN_OPTS={value} '
               f'failed:\n{done.stderr[-3000:]}')
    result = json.loads(done.stdout.strip().splitlines()[-1])
    results.append(result)
    print(result['machine'])
    print('| kernel | shape | rate | way | ms (forward, or the gradient) | '
          'forward + backward ms |')
    print('|---|---|---|---|---|---|')
    for row in result['rows']:
      both = row.get('forward_backward_ms', '')
      if both is None:
        both = 'refused'
      print(f"| {row['kernel']} | {' x '.join(map(str, row['shape']))} | "
            f"{row.get('rate', '')} | {row['way']} | "
            f"{row.get('forward_ms', row.get('ms'))} | {both} |")
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
