"""Rewrites a deeplab2 checkpoint as one of ours (no name mapping later).

  python tools/convert_deeplab2_checkpoint.py --config_file=... \
      --checkpoint=/path/to/deeplab2/ckpt-60000 --output=runs/converted/ckpt
"""

import argparse
import logging
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.serving import from_config


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config_file', required=True)
  parser.add_argument('--checkpoint', required=True,
                      help='a checkpoint prefix (deeplab2 or ours)')
  parser.add_argument('--output', required=True, help='output prefix')
  parser.add_argument('--overwrite', action='store_true')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                      format='%(message)s')
  logging.getLogger('deeplab2').setLevel(logging.INFO)
  try:
    path = from_config.convert_checkpoint(args.config_file, args.checkpoint,
                                          args.output, args.overwrite)
  except (config_lib.ConfigError, FileNotFoundError, FileExistsError,
          ValueError) as e:
    sys.exit(f'error: {e}')
  print(f'wrote {path}')


if __name__ == '__main__':
  main()
