"""Parameters and multiply-adds of every backbone and model-zoo network.

  python benchmarks/model_stats.py [--height=1025 --width=2049] [--skip_large]
      [--json=PATH]

Prints one row per config: backbone parameters, the whole Panoptic-DeepLab's
parameters (total and trainable) and multiply-adds of one forward pass at the
given input size (convolutions and matrix products only; see
deeplab2/utils/model_stats.py). Nothing runs but graph tracing, so it takes
about a minute on a laptop CPU (the SWideRNets need ~6 GB of memory to
build; --skip_large leaves them out). --json also writes the rows and the
machine to a file.
"""

import argparse
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.modeling.layers import normalization
from deeplab2.utils import machine
from deeplab2.utils import model_stats

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIGS = (
    'cityscapes/panoptic_deeplab/mobilenet_v3_small_os32',
    'cityscapes/panoptic_deeplab/mobilenet_v3_large_os32',
    'cityscapes/panoptic_deeplab/resnet50_os32_merge_with_pure_tf_func',
    'cityscapes/panoptic_deeplab/resnet50_beta_os32',
    'cityscapes/panoptic_deeplab/wide_resnet41_os16',
    'cityscapes/panoptic_deeplab/xception71_os16',
    'cityscapes/panoptic_deeplab/swidernet_sac_1_1_1_os16',
    'cityscapes/panoptic_deeplab/swidernet_sac_1_1_3_os16',
    'cityscapes/panoptic_deeplab/swidernet_sac_1_1_4.5_os16',
)
_LARGE = ('swidernet_sac_1_1_3', 'swidernet_sac_1_1_4.5')


def stats_row(config_path, height, width):
  """(backbone name, OS, backbone params, total, trainable, multiply-adds)."""
  config, _ = config_lib.load_experiment_config(config_path)
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=(65, 65))
  backbone_params, _ = model_stats.parameter_counts(model.backbone)
  total, trainable = model_stats.parameter_counts(model)
  madds = model_stats.multiply_adds(model, (1, height, width, 3),
                                    training=False)
  backbone = config.model_options.backbone
  return (backbone.name, backbone.output_stride, backbone_params, total,
          trainable, madds)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--height', type=int, default=1025)
  parser.add_argument('--width', type=int, default=2049)
  parser.add_argument('--skip_large', action='store_true')
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  args = parser.parse_args(argv)
  description = machine.describe()
  print(f'Machine: {description}')
  print(f'Input {args.height} x {args.width}, batch 1. M = 1e6, B = 1e9.')
  print('| config | backbone | OS | backbone params (M) | params (M) | '
        'trainable (M) | multiply-adds (B) |')
  print('|---|---|---|---|---|---|---|')
  rows = []
  for name in _CONFIGS:
    if args.skip_large and any(large in name for large in _LARGE):
      continue
    path = os.path.join(_ROOT, 'configs', name + '.textproto')
    backbone, stride, backbone_params, total, trainable, madds = stats_row(
        path, args.height, args.width)
    print(f'| {name.split("/")[-1]} | {backbone} | {stride} | '
          f'{backbone_params / 1e6:.2f} | {total / 1e6:.2f} | '
          f'{trainable / 1e6:.2f} | {madds / 1e9:.2f} |', flush=True)
    rows.append({
        'config': name.split('/')[-1], 'backbone': backbone,
        'output_stride': stride, 'height': args.height, 'width': args.width,
        'backbone_params': backbone_params, 'params': total,
        'trainable_params': trainable, 'madds': madds})
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
