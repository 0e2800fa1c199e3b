"""Shim: runs deeplab2.cli.export_model.main.

Keeps `python export_model.py ...` working; installed, the command is
`deeplab2-export`.
"""

import sys

from deeplab2.cli.export_model import main

if __name__ == '__main__':
  sys.exit(main())
