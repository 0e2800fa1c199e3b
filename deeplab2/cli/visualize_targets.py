"""Writes one PNG panel per sample of what the model is trained on.

  python data/visualize_targets.py --config_file=configs/....textproto \
      --split=train --num_samples=8 --output_dir=OUT [--seed=0] [--overwrite]
  deeplab2-visualize-targets ...    # the installed command, the same

Panels: the (augmented) image, semantic label colours, center heatmap,
offsets on a flow colour wheel, and the semantic, center and offset weights.
"""

import argparse
from collections.abc import Mapping, Sequence
import dataclasses
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image  # pylint: disable=g-import-not-at-top

from deeplab2 import common  # pylint: disable=g-import-not-at-top
from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.cli import config_flags  # pylint: disable=g-import-not-at-top
from deeplab2.data import dataset_descriptor  # pylint: disable=g-import-not-at-top
from deeplab2.data import input_pipeline  # pylint: disable=g-import-not-at-top
from deeplab2.utils import visualization  # pylint: disable=g-import-not-at-top


def sample_panel(sample: Mapping[str, np.ndarray],
                 descriptor: dataset_descriptor.DatasetDescriptor
                 ) -> np.ndarray:
  """The tiles of one unbatched sample (NumPy arrays) as one image.

  Args:
    sample: common.IMAGE [H, W, 3], the ground truths and weights of one
      sample, as the input pipeline yields them.
    descriptor: the dataset's descriptor (colormap, ignore label).

  Returns:
    [2 * (H + 14), 4 * W, 3] uint8: the seven captioned tiles, four per
    row.
  """
  image = np.clip(sample[common.IMAGE], 0, 255).astype(np.uint8)
  max_weight = max(float(sample[common.SEMANTIC_WEIGHT].max()), 1.0)
  tiles = [
      ('image', image),
      ('semantic', visualization.colorize_semantic(
          sample[common.GT_SEMANTIC], descriptor.colormap,
          descriptor.ignore_label)),
      ('center heatmap', visualization.colorize_scalar(
          sample[common.GT_CENTER_HEATMAP])),
      ('offsets', visualization.colorize_offsets(sample[common.GT_OFFSET])),
      (f'semantic weight (max {max_weight:g})', visualization.colorize_scalar(
          sample[common.SEMANTIC_WEIGHT], 0.0, max_weight)),
      ('center weight', visualization.colorize_scalar(
          sample[common.CENTER_WEIGHT])),
      ('offset weight', visualization.colorize_scalar(
          sample[common.OFFSET_WEIGHT])),
  ]
  return visualization.panel(tiles)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  config_flags.add_config_flags(parser)
  parser.add_argument('--split', default='train', choices=('train', 'eval'))
  parser.add_argument('--num_samples', type=int, default=8)
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--overwrite', action='store_true')
  args = parser.parse_args(argv)
  try:
    parts = config_lib.load_experiment(config_flags.config_source(args),
                                      num_replicas=1)
    descriptor = parts.descriptor(args.split)
    options = dataclasses.replace(parts.pipeline_options(args.split),
                                  seed=args.seed)
    paths = [os.path.join(args.output_dir, f'{args.split}_{i:04d}.png')
             for i in range(args.num_samples)]
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not args.overwrite:
      raise FileExistsError(f'{existing[0]} exists; pass --overwrite.')
    os.makedirs(args.output_dir, exist_ok=True)
    written = 0
    for batch in input_pipeline.make_dataset(options):
      batch = {k: v.numpy() for k, v in batch.items()}
      for i in range(len(batch[common.IMAGE])):
        if written == args.num_samples:
          break
        sample = {k: v[i] for k, v in batch.items()}
        Image.fromarray(sample_panel(sample, descriptor)).save(paths[written])
        written += 1
      if written == args.num_samples:
        break
  except (config_lib.ConfigError, FileExistsError, FileNotFoundError,
          ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {written} panels to {args.output_dir}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
