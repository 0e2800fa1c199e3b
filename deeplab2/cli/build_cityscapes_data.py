"""Converts Cityscapes (cityscapesScripts' panoptic train-id format) to
TFRecords.

  python data/build_cityscapes_data.py --cityscapes_root=DIR --output_dir=OUT \
      [--splits=train,val] [--num_shards=10] [--num_workers=2]
  deeplab2-build-cityscapes-data ...    # the installed command, the same

Reads gtFine/cityscapes_panoptic_<split>_trainId.json, the PNG folder beside
it and leftImg8bit/<split>/<city>/*_leftImg8bit.png. Without the panoptic
files, it says which cityscapesScripts command makes them. Writes
<split>_fine-NNNNN-of-NNNNN.tfrecord, deeplab2's names, which the zoo
configs' file_pattern reads.
"""

import argparse
from collections.abc import Sequence
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2.cli import conversion_flags  # pylint: disable=g-import-not-at-top
from deeplab2.data import cityscapes  # pylint: disable=g-import-not-at-top


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--cityscapes_root', required=True)
  conversion_flags.add_common_flags(parser, default_splits='train,val')
  args = parser.parse_args(argv)
  return conversion_flags.run(
      lambda name: cityscapes.find_split(
          args.cityscapes_root, name.removesuffix(cityscapes.SHARD_SUFFIX)),
      [split + cityscapes.SHARD_SUFFIX for split in args.splits.split(',')],
      args)


if __name__ == '__main__':
  sys.exit(main())
