"""Shim: runs deeplab2.cli.infer.main.

Keeps `python infer.py ...` working; installed, the command is `deeplab2-infer`.
"""

import sys

from deeplab2.cli.infer import main

if __name__ == '__main__':
  sys.exit(main())
