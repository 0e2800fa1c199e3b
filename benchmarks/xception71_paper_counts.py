"""Xception-71 Panoptic-DeepLab against the counts printed in the CVPR paper.

  python benchmarks/xception71_paper_counts.py [--json=PATH]

Starts from configs/cityscapes/panoptic_deeplab/xception71_os16.textproto
(Table 1's best row), edits the fields each paper row changes, and prints
our trainable parameters and multiply-adds beside the paper's. The paper
does not state the instance heads' width, so each row is printed under two
readings, the shipped one first:

  32:     the center and offset heads' 5x5 conv has 32 channels, as in
          every reference implementation (deeplab2's configs, the PyTorch
          reference's HEAD_CHANNELS); the semantic head keeps the config's
          256. This is the shipped config.
  branch: NOT SHIPPED, an alternative reading kept for comparison: each
          head's 5x5 conv has its branch's channels (C_Sem for the
          semantic head, C_Ins for the center and offset heads).

The first row printed is the shipped config unchanged; "32 (shipped)" on
the other rows means the shipped heads' width with that row's edits.

Rows: Table 1's best (C_Sem 256, C_Ins 128), Table 1's "C_Ins = 256" row,
Table 1's "Sem. Only" row, and Table 5's Xception-71 on Mapillary Vistas
(65 classes, 2177 x 2177). Measured on 2026-11-26 (2-core Intel Xeon, TF
2.21 CPU), Table 1's best row as shipped: 46,745,486 trainable parameters
(+0.05 % against 46.72 M) and 546.16 B multiply-adds (-2.32 % against
559.15 B). Only graph tracing runs: 36 s on that machine. --json also
writes the rows and the machine to a file.
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
_CONFIG = os.path.join(_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                       'xception71_os16.textproto')
_CITYSCAPES = (1025, 2049)

# (row, paper params in M, paper multiply-adds in B, input size, classes,
#  semantic channels, instance channels or None for semantic only).
_ROWS = (
    ('Table 1 best: C_Sem 256, C_Ins 128', 46.72, 559.15, _CITYSCAPES, 19,
     256, 128),
    ('Table 1: C_Sem 128, C_Ins 256', 46.88, 573.86, _CITYSCAPES, 19, 128,
     256),
    ('Table 1: Sem. Only, C_Sem 256', 43.60, 518.84, _CITYSCAPES, 19, 256,
     None),
    ('Table 5: Mapillary Vistas, 2177 x 2177', 46.73, 1264.32, (2177, 2177),
     65, 256, 128),
)


# The readings of the heads' width, the shipped one first, with the label
# printed in the table.
_READINGS = (
    ('32', '32 (shipped)'),
    ('branch', 'branch (not shipped)'),
)


def variant(semantic_channels, instance_channels, num_classes, heads):
  """The shipped config with the branch widths and head reading applied.

  heads is '32' (the shipped reading) or 'branch' (the alternative).
  """
  if heads not in ('32', 'branch'):
    raise ValueError(f'heads must be "32" or "branch", not {heads!r}')
  config, _ = config_lib.load_experiment_config(_CONFIG)
  options = config.model_options
  pdl = options.panoptic_deeplab
  options.decoder.decoder_channels = semantic_channels
  pdl.semantic_head.output_channels = num_classes
  if heads == 'branch':
    pdl.semantic_head.head_channels = semantic_channels
  if instance_channels is None:
    pdl.instance.enable = False
    return options
  pdl.instance.instance_decoder_override.decoder_channels = instance_channels
  head_channels = instance_channels if heads == 'branch' else 32
  pdl.instance.center_head.head_channels = head_channels
  pdl.instance.regression_head.head_channels = head_channels
  return options


def counts(options, size):
  model = config_lib.build_model(options, normalization.BatchNormOptions(),
                                 input_size=(65, 65))
  _, trainable = model_stats.parameter_counts(model)
  madds = model_stats.multiply_adds(model, (1,) + size + (3,),
                                    training=False)
  return trainable, madds


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  args = parser.parse_args(argv)
  description = machine.describe()
  print(f'Machine: {description}')
  print('| paper row | heads | params (M) | paper | diff | '
        'multiply-adds (B) | paper | diff |')
  print('|---|---|---|---|---|---|---|---|')
  rows = []
  for name, paper_params, paper_madds, size, classes, sem, ins in _ROWS:
    for heads, label in _READINGS:
      if ins is None and heads != '32':
        continue  # No instance heads; the semantic head is 256 either way.
      trainable, madds = counts(variant(sem, ins, classes, heads), size)
      print(f'| {name} | {label if ins else "-"} | {trainable / 1e6:.2f} | '
            f'{paper_params:.2f} | {trainable / 1e6 / paper_params - 1:+.2%} '
            f'| {madds / 1e9:.2f} | {paper_madds:.2f} | '
            f'{madds / 1e9 / paper_madds - 1:+.2%} |', flush=True)
      rows.append({
          'paper_row': name, 'heads': label if ins else None,
          'height': size[0], 'width': size[1], 'num_classes': classes,
          'trainable_params': trainable, 'paper_params_m': paper_params,
          'params_diff': trainable / 1e6 / paper_params - 1,
          'madds': madds, 'paper_madds_b': paper_madds,
          'madds_diff': madds / 1e9 / paper_madds - 1})
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
