"""Shim: runs deeplab2.cli.build_cityscapes_data.main.

Keeps `python data/build_cityscapes_data.py ...` working; installed, the command
is `deeplab2-build-cityscapes-data`.
"""

import sys

from deeplab2.cli.build_cityscapes_data import main

if __name__ == '__main__':
  sys.exit(main())
