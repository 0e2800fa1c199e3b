"""Shim: runs deeplab2.cli.build_mapillary_data.main.

Keeps `python data/build_mapillary_data.py ...` working; installed, the command
is `deeplab2-build-mapillary-data`.
"""

import sys

from deeplab2.cli.build_mapillary_data import main

if __name__ == '__main__':
  sys.exit(main())
