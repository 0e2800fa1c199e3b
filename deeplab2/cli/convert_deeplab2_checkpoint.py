"""Rewrites a deeplab2 checkpoint as one of ours (no name mapping later).

  python tools/convert_deeplab2_checkpoint.py --config_file=... \
      --checkpoint=/path/to/deeplab2/ckpt-60000 --output=runs/converted/ckpt
  deeplab2-convert-checkpoint ...    # the installed command, the same
"""

import argparse
from collections.abc import Sequence
import logging
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.cli import config_flags  # pylint: disable=g-import-not-at-top
from deeplab2.serving import convert


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  config_flags.add_config_flags(parser)
  parser.add_argument('--checkpoint', required=True,
                      help='a checkpoint prefix (deeplab2 or ours)')
  parser.add_argument('--output', required=True, help='output prefix')
  parser.add_argument('--overwrite', action='store_true')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                      format='%(message)s')
  logging.getLogger('deeplab2').setLevel(logging.INFO)
  try:
    path = convert.convert_checkpoint(config_flags.config_source(args),
                                      args.checkpoint, args.output,
                                      args.overwrite)
  except (config_lib.ConfigError, FileNotFoundError, FileExistsError,
          ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
