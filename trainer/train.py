"""Shim: runs deeplab2.cli.train.main.

Keeps `python trainer/train.py ...` working; installed, the command is
`deeplab2-train`.
"""

import sys

from deeplab2.cli.train import main

if __name__ == '__main__':
  sys.exit(main())
