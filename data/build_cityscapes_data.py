"""Converts Cityscapes (cityscapesScripts' panoptic train-id format) to
TFRecords.

  python data/build_cityscapes_data.py --cityscapes_root=DIR --output_dir=OUT \
      [--splits=train,val] [--num_shards=10] [--num_workers=2]

Reads gtFine/cityscapes_panoptic_<split>_trainId.json, the PNG folder beside
it and leftImg8bit/<split>/<city>/*_leftImg8bit.png. Without the panoptic
files, it says which cityscapesScripts command makes them.
"""

import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conversion_cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from deeplab2.data import cityscapes  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--cityscapes_root', required=True)
  conversion_cli.add_common_flags(parser, default_splits='train,val')
  args = parser.parse_args(argv)
  return conversion_cli.run(
      lambda split: cityscapes.find_split(args.cityscapes_root, split),
      args.splits.split(','), args)


if __name__ == '__main__':
  sys.exit(main())
