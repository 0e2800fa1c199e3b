"""Times Winograd's minimal filtering against the direct 3 x 3 convolution.

    python benchmarks/winograd_conv.py [--runs=7] [--json=PATH]

An attempt that the model does not use (docs/training.md says why). Rows:
the ResNet-50 backbone's stride-1 3 x 3 convolutions at the forward pass's
sizes (1025 x 2049, batch 1: res2 to res5), float32, bias and ReLU after:
- direct: tf.nn.conv2d, which TF fuses with the bias and ReLU and runs with
  oneDNN where oneDNN is on;
- Winograd F(2x2, 3x3) and F(4x4, 3x3) (Lavin and Gray, 2016): the input
  tiles' transform, 16 or 36 batched matrix products, the output transform,
  in TF ops, as a tf.function and compiled by XLA;
- the batched matrix products alone: the least Winograd could take here.
Each with its largest difference from the direct output, relative to the
largest output. Milliseconds, median of --runs calls after one warm-up.
TF_ENABLE_ONEDNN_OPTS chooses oneDNN as for any TF program.
"""

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# [height, width, channels in = out] of res2 .. res5 at 1025 x 2049.
_SHAPES = [(257, 513, 64), (129, 257, 128), (65, 129, 256), (33, 65, 512)]

# Input transform B^T, kernel transform G and output transform A^T of
# F(m x m, 3 x 3), tile side m + 2 (Lavin and Gray's: interpolation points
# 0, +-1 and infinity for m = 2; 0, +-1, +-2 and infinity for m = 4).
_TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]])),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0],
                  [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                  [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6],
                  [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
                  [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])),
}


def _combine(parts, weights):
  """sum(weight * part) over the non-zero weights, as few ops as can be."""
  total = None
  for part, weight in zip(parts, weights):
    if weight == 0:
      continue
    term = part if weight == 1 else -part if weight == -1 else part * weight
    total = term if total is None else total + term
  return total


def _tiles(tf, x, m):
  """Transformed input tiles: float [t * t, N * TH * TW, C] of x [N, H, W,
  C] padded for 'SAME' (t = m + 2, TH = ceil(H / m), TW = ceil(W / m))."""
  input_t, _, _ = _TRANSFORMS[m]
  t = m + 2
  batch, height, width, channels = x.shape
  th, tw = -(-height // m), -(-width // m)
  x = tf.pad(x, [[0, 0], [1, th * m + 1 - height], [1, tw * m + 1 - width],
                 [0, 0]])
  rows = [x[:, i:i + m * th:m][:, :th] for i in range(t)]
  by_rows = [_combine(rows, input_t[a]) for a in range(t)]
  tiles = []
  for part in by_rows:
    columns = [part[:, :, j:j + m * tw:m][:, :, :tw] for j in range(t)]
    tiles += [_combine(columns, input_t[b]) for b in range(t)]
  return tf.reshape(tf.stack(tiles), [t * t, batch * th * tw, channels])


def _untile(tf, products, m, shape, bias):
  """ReLU(output + bias) [N, H, W, K] from the products [t * t, P, K]."""
  _, _, output_t = _TRANSFORMS[m]
  t = m + 2
  batch, height, width = shape
  th, tw = -(-height // m), -(-width // m)
  products = tf.reshape(products, [t, t, batch, th, tw, -1])
  by_rows = [[_combine([products[a, b] for a in range(t)], output_t[p])
              for b in range(t)] for p in range(m)]
  out = tf.stack([tf.stack([_combine(by_rows[p], output_t[q])
                            for q in range(m)], axis=3) for p in range(m)],
                 axis=3)  # [N, TH, TW, m (row), m (column), K]
  out = tf.reshape(tf.transpose(out, [0, 1, 3, 2, 4, 5]),
                   [batch, th * m, tw * m, -1])[:, :height, :width]
  return tf.nn.relu(out + bias)


def _winograd(tf, x, kernel, bias, m):
  _, kernel_t, _ = _TRANSFORMS[m]
  t = m + 2
  g = tf.constant(kernel_t, tf.float32)
  transformed = tf.reshape(tf.einsum('ai,ijck,bj->abck', g, kernel, g),
                           [t * t, kernel.shape[2], kernel.shape[3]])
  return _untile(tf, tf.matmul(_tiles(tf, x, m), transformed), m,
                 x.shape[:3], bias)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--runs', type=int, default=7)
  parser.add_argument('--json', default='', help='Also write the results '
                      'here (refused if the file exists).')
  args = parser.parse_args()
  if args.json and os.path.exists(args.json):
    parser.error(f'--json: {args.json} exists; choose another path.')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import op_profile  # pylint: disable=g-import-not-at-top

  def milliseconds(fn):
    return round(op_profile.median_seconds(fn, args.runs) * 1e3, 1)

  description = machine.describe()
  print(description)
  print('| res (H x W x C) | direct | F(2,3) | F(2,3), XLA | F(2,3) products '
        '| F(4,3) | F(4,3), XLA | F(4,3) products | error F(2,3) / F(4,3) |')
  print('|---|---|---|---|---|---|---|---|---|')
  rows = []
  for height, width, channels in _SHAPES:
    x = tf.random.normal([1, height, width, channels], seed=1)
    kernel = tf.random.normal([3, 3, channels, channels], seed=2) * 0.05
    bias = tf.random.normal([channels], seed=3)
    direct = tf.function(lambda: tf.nn.relu(tf.nn.bias_add(  # pylint: disable=cell-var-from-loop
        tf.nn.conv2d(x, kernel, 1, 'SAME'), bias)))  # pylint: disable=cell-var-from-loop
    expected = direct().numpy()
    row = {'shape': [height, width, channels], 'direct_ms': milliseconds(
        direct)}
    for m in (2, 4):
      way = lambda m=m: _winograd(tf, x, kernel, bias, m)  # pylint: disable=cell-var-from-loop
      t = m + 2
      tiles = (-(-height // m)) * (-(-width // m))
      a = tf.random.normal([t * t, tiles, channels])
      b = tf.random.normal([t * t, channels, channels])
      row[f'f{m}_ms'] = milliseconds(tf.function(way))
      row[f'f{m}_xla_ms'] = milliseconds(tf.function(way, jit_compile=True))
      row[f'f{m}_products_ms'] = milliseconds(
          tf.function(lambda a=a, b=b: tf.matmul(a, b)))
      got = tf.function(way)().numpy()
      row[f'f{m}_error'] = float(np.abs(got - expected).max() /
                                 np.abs(expected).max())
    rows.append(row)
    print(f"| {height} x {width} x {channels} | {row['direct_ms']} | "
          f"{row['f2_ms']} | {row['f2_xla_ms']} | {row['f2_products_ms']} | "
          f"{row['f4_ms']} | {row['f4_xla_ms']} | {row['f4_products_ms']} | "
          f"{row['f2_error']:.1e} / {row['f4_error']:.1e} |", flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
