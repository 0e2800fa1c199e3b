"""Shim: runs deeplab2.cli.evaluate_panoptic.main.

Keeps `python evaluation/evaluate_panoptic.py ...` working; installed, the
command is `deeplab2-evaluate-panoptic`.
"""

import sys

from deeplab2.cli.evaluate_panoptic import main

if __name__ == '__main__':
  sys.exit(main())
