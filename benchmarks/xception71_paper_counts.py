"""Xception-71 Panoptic-DeepLab against the counts printed in the CVPR paper.

  python benchmarks/xception71_paper_counts.py

Starts from configs/cityscapes/panoptic_deeplab/xception71_os16.textproto
(Table 1's best row), edits the fields each paper row changes, and prints
our trainable parameters and multiply-adds beside the paper's, each row
under two readings of the instance heads' width, which the paper does not
state:

  branch: the head's 5x5 conv has the branch's channels, as the semantic
          head has C_Sem (the shipped config);
  32:     32 channels, deeplab2's and Detectron2's choice for their
          ResNet and MobileNet configs.

Rows: Table 1's best (C_Sem 256, C_Ins 128), Table 1's "C_Ins = 256" row,
Table 1's "Sem. Only" row, and Table 5's Xception-71 on Mapillary Vistas
(65 classes, 2177 x 2177). Only graph tracing runs: 31 s on this project's
2-core development machine.
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.modeling import factory
from deeplab2.modeling.layers import normalization
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


def variant(semantic_channels, instance_channels, num_classes, heads):
  """The shipped config with the branch widths and head reading applied."""
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
  model = factory.build_model(options, normalization.BatchNormOptions(),
                              crop_size=(65, 65))
  _, trainable = model_stats.parameter_counts(model)
  madds = model_stats.multiply_adds(model, (1,) + size + (3,),
                                    training=False)
  return trainable, madds


def main():
  print('| paper row | heads | params (M) | paper | diff | '
        'multiply-adds (B) | paper | diff |')
  print('|---|---|---|---|---|---|---|---|')
  for name, paper_params, paper_madds, size, classes, sem, ins in _ROWS:
    for heads in ('branch', '32'):
      if ins is None and heads == '32':
        continue  # No instance heads; the semantic head is 256 either way.
      trainable, madds = counts(variant(sem, ins, classes, heads), size)
      print(f'| {name} | {heads if ins else "-"} | {trainable / 1e6:.2f} | '
            f'{paper_params:.2f} | {trainable / 1e6 / paper_params - 1:+.2%} '
            f'| {madds / 1e9:.2f} | {paper_madds:.2f} | '
            f'{madds / 1e9 / paper_madds - 1:+.2%} |', flush=True)


if __name__ == '__main__':
  sys.exit(main())
