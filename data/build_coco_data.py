"""Shim: runs deeplab2.cli.build_coco_data.main.

Keeps `python data/build_coco_data.py ...` working; installed, the command is
`deeplab2-build-coco-data`.
"""

import sys

from deeplab2.cli.build_coco_data import main

if __name__ == '__main__':
  sys.exit(main())
