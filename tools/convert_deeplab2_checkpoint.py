"""Shim: runs deeplab2.cli.convert_deeplab2_checkpoint.main.

Keeps `python tools/convert_deeplab2_checkpoint.py ...` working; installed, the
command is `deeplab2-convert-checkpoint`.
"""

import sys

from deeplab2.cli.convert_deeplab2_checkpoint import main

if __name__ == '__main__':
  sys.exit(main())
