"""Shim: runs deeplab2.cli.build_synthetic_data.main.

Keeps `python data/build_synthetic_data.py ...` working; installed, the command
is `deeplab2-build-synthetic-data`.
"""

import sys

from deeplab2.cli.build_synthetic_data import main

if __name__ == '__main__':
  sys.exit(main())
