"""Exports a trained Panoptic-DeepLab as a SavedModel (serving_default).

  python export_model.py --config_file=configs/synthetic/resnet_mini_os16.textproto \
      --checkpoint_path=runs/synthetic --output_path=runs/synthetic/export
"""

import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.serving import from_config


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config_file', required=True)
  parser.add_argument('--checkpoint_path', required=True,
                      help='a checkpoint prefix, or a model_dir (latest)')
  parser.add_argument('--output_path', required=True)
  parser.add_argument('--overwrite', action='store_true')
  args = parser.parse_args(argv)
  try:
    path = from_config.export_from_config(args.config_file,
                                          args.checkpoint_path,
                                          args.output_path, args.overwrite)
  except (config_lib.ConfigError, FileNotFoundError, FileExistsError,
          ValueError) as e:
    sys.exit(f'error: {e}')
  print(f'exported SavedModel to {path}')


if __name__ == '__main__':
  main()
