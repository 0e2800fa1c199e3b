"""Converts COCO panoptic (or any dataset in its format) to TFRecords.

  python data/build_coco_data.py --coco_root=DIR --output_dir=OUT \
      [--splits=train,val] [--num_shards=10] [--num_workers=2]
  # custom data in COCO panoptic format, one split at a time:
  python data/build_coco_data.py --splits=train --panoptic_json=J \
      --panoptic_dir=PNGS --image_dir=IMAGES --output_dir=OUT

Writes <split>-NNNNN-of-NNNNN.tfrecord and dataset_descriptor.json (classes,
thing ids, colours from the JSON's categories); name the descriptor file in
DatasetOptions.dataset to train on it.
"""

import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conversion_cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from deeplab2.data import coco  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--coco_root', default='')
  parser.add_argument('--panoptic_json', help='overrides the annotation JSON')
  parser.add_argument('--panoptic_dir', help='overrides the PNG folder')
  parser.add_argument('--image_dir', help='overrides the image folder')
  parser.add_argument('--label_divisor', type=int, default=256)
  parser.add_argument('--dataset_name', default='coco_panoptic')
  conversion_cli.add_common_flags(parser, default_splits='train,val')
  args = parser.parse_args(argv)
  splits = args.splits.split(',')
  overrides = (args.panoptic_json, args.panoptic_dir, args.image_dir)
  if any(overrides) and len(splits) != 1:
    parser.error('--panoptic_json / --panoptic_dir / --image_dir apply to one '
                 'split: pass a single --splits value.')
  if not args.coco_root and not all(overrides):
    parser.error('pass --coco_root, or all of --panoptic_json, '
                 '--panoptic_dir and --image_dir.')

  def find_split(split):
    return coco.find_split(args.coco_root, split, *overrides,
                           name=args.dataset_name,
                           label_divisor=args.label_divisor)

  return conversion_cli.run(find_split, splits, args)


if __name__ == '__main__':
  sys.exit(main())
