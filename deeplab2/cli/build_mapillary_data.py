"""Converts Mapillary Vistas panoptic (v1.2 or v2.0) to TFRecords.

  python data/build_mapillary_data.py --mapillary_root=DIR --output_dir=OUT \
      [--version=auto] [--splits=train,val] [--num_shards=10] [--num_workers=2]
  deeplab2-build-mapillary-data ...    # the installed command, the same

The paper resizes the longest side to 2177 px before augmentation: set
min_resize_value / max_resize_value in the config's dataset options.
"""

import argparse
from collections.abc import Sequence
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2.cli import conversion_flags  # pylint: disable=g-import-not-at-top
from deeplab2.data import mapillary  # pylint: disable=g-import-not-at-top


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--mapillary_root', required=True)
  parser.add_argument('--version', default='auto',
                      choices=('auto', 'v1.2', 'v2.0'))
  parser.add_argument(
      '--label_divisor', type=int, default=mapillary.DEFAULT_LABEL_DIVISOR,
      help='panoptic id = class * label_divisor + instance (default: '
      '%(default)s)')
  conversion_flags.add_common_flags(parser, default_splits='train,val')
  args = parser.parse_args(argv)
  return conversion_flags.run(
      lambda split: mapillary.find_split(args.mapillary_root, split,
                                         args.version, args.label_divisor),
      args.splits.split(','), args)


if __name__ == '__main__':
  sys.exit(main())
