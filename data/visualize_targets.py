"""Shim: runs deeplab2.cli.visualize_targets.main.

Keeps `python data/visualize_targets.py ...` working; installed, the command is
`deeplab2-visualize-targets`.
"""

import sys

from deeplab2.cli.visualize_targets import main

if __name__ == '__main__':
  sys.exit(main())
