"""Converts COCO panoptic (or any dataset in its format) to TFRecords.

  python data/build_coco_data.py --coco_root=DIR --output_dir=OUT \
      [--splits=train,val] [--num_shards=10] [--num_workers=2]
  # custom data in COCO panoptic format, one split at a time:
  python data/build_coco_data.py --splits=train --panoptic_json=J \
      --panoptic_dir=PNGS --image_dir=IMAGES --output_dir=OUT \
      [--dataset_name=NAME] [--label_divisor=N]
  deeplab2-build-coco-data ...    # the installed command, the same

Writes <split>-NNNNN-of-NNNNN.tfrecord and dataset_descriptor.json (classes,
thing ids, colours from the JSON's categories); name the descriptor file in
DatasetOptions.dataset to train on it. The descriptor is named coco_panoptic
for the COCO layout (--coco_root alone), else after the output folder;
--dataset_name overrides both.
"""

import argparse
from collections.abc import Sequence
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2.cli import conversion_flags  # pylint: disable=g-import-not-at-top
from deeplab2.data import coco  # pylint: disable=g-import-not-at-top


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--coco_root', default='')
  parser.add_argument('--panoptic_json', help='overrides the annotation JSON')
  parser.add_argument('--panoptic_dir', help='overrides the PNG folder')
  parser.add_argument('--image_dir', help='overrides the image folder')
  parser.add_argument(
      '--dataset_name',
      help=f'the descriptor\'s name (default: {coco.COCO_NAME} with '
      '--coco_root and no path overrides, else the output folder\'s name)')
  parser.add_argument(
      '--label_divisor', type=int,
      help='panoptic id = class * label_divisor + instance (default: the '
      'built-in descriptor\'s when the dataset name is built in, as '
      f'{coco.COCO_NAME}, else {coco.DEFAULT_LABEL_DIVISOR}); a built-in name '
      'refuses any other')
  conversion_flags.add_common_flags(parser, default_splits='train,val')
  args = parser.parse_args(argv)
  splits = args.splits.split(',')
  overrides = (args.panoptic_json, args.panoptic_dir, args.image_dir)
  if any(overrides) and len(splits) != 1:
    parser.error('--panoptic_json / --panoptic_dir / --image_dir apply to one '
                 'split: pass a single --splits value.')
  if not args.coco_root and not all(overrides):
    parser.error('pass --coco_root, or all of --panoptic_json, '
                 '--panoptic_dir and --image_dir.')
  dataset_name = args.dataset_name
  if dataset_name is None:
    dataset_name = (conversion_flags.output_folder_name(args.output_dir)
                    if any(overrides) else coco.COCO_NAME)
  # Imported here, not with the module: see conversion_flags.
  from deeplab2.data import conversion_checks  # pylint: disable=g-import-not-at-top
  try:
    # Before reading the (large) JSONs; convert_dataset checks all labels.
    conversion_checks.check_builtin_divisor(dataset_name, args.label_divisor)
  except ValueError as e:
    return conversion_flags.print_error(e)

  def find_split(split):
    return coco.find_split(args.coco_root, split, *overrides,
                           name=dataset_name,
                           label_divisor=args.label_divisor)

  return conversion_flags.run(find_split, splits, args)


if __name__ == '__main__':
  sys.exit(main())
