"""Writes the built-in synthetic panoptic dataset as TFRecords.

  python data/build_synthetic_data.py --output_dir=runs/synthetic_data
  deeplab2-build-synthetic-data ...    # the installed command, the same

With --format=coco_panoptic it writes the same images as a labelling tool
exports them instead (JPEG images, COCO panoptic PNGs and JSON; see
deeplab2/data/synthetic_export.py), to practise docs/custom_data.md.
"""

import argparse
from collections.abc import Sequence
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2.cli import conversion_flags  # pylint: disable=g-import-not-at-top
from deeplab2.data import build_synthetic  # pylint: disable=g-import-not-at-top
from deeplab2.data import synthetic  # pylint: disable=g-import-not-at-top


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--num_train', type=int, default=600,
                      help='training images, 0 or more')
  parser.add_argument('--num_val', type=int, default=100,
                      help='validation images, 0 or more (1 image or more '
                      'in all)')
  parser.add_argument('--seed', type=int, default=0, help='0 or more')
  parser.add_argument('--num_shards', type=int, default=4,
                      help='shards per split, all open while it is written '
                      '(at most the open-file limit, ulimit -n, allows)')
  parser.add_argument(
      '--image_size', type=int, default=synthetic.DEFAULT_IMAGE_SIZE,
      help='side of the square images in pixels, '
      f'{synthetic.MIN_IMAGE_SIZE} to {synthetic.MAX_IMAGE_SIZE} (default: '
      '%(default)s)')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing dataset in output_dir (a '
                      'folder holding other files is refused)')
  parser.add_argument(
      '--format', choices=('tfrecord', 'coco_panoptic'), default='tfrecord',
      help='tfrecord: training-ready shards; coco_panoptic: images, PNGs '
      'and JSON as a labelling tool exports them (default: %(default)s)')
  args = parser.parse_args(argv)
  if args.format == 'coco_panoptic':
    return _export(args)
  written, status = conversion_flags.call(
      build_synthetic.write_synthetic_dataset, args.output_dir,
      args.output_dir, args.num_train, args.num_val, args.seed,
      args.num_shards, args.image_size, args.overwrite)
  if status:
    return status
  for split, paths in written.items():
    print(f'{split}: {len(paths)} shards in {args.output_dir}')
  return 0


def _export(args: argparse.Namespace) -> int:
  """--format=coco_panoptic."""
  from deeplab2.data import synthetic_export  # pylint: disable=g-import-not-at-top
  written, status = conversion_flags.call(
      synthetic_export.write_coco_panoptic_export, args.output_dir,
      args.output_dir, args.num_train, args.num_val, args.seed,
      args.image_size, args.overwrite)
  if status:
    return status
  for split, json_path in written.items():
    print(f'{split}: {json_path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
