"""Exports a trained Panoptic-DeepLab as a SavedModel (serving_default).

  python export_model.py --config_file=configs/synthetic/resnet_mini_os16.textproto \
      --checkpoint_path=runs/synthetic --output_path=runs/synthetic/export
"""

import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.serving import from_config


def _fail(message):
  """Exits with `message` as the one line: TF's warnings about objects
  of a failed restore, logged as they are deleted at exit, are dropped."""
  tf.get_logger().setLevel('ERROR')
  sys.exit(message)


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
  except (config_lib.ConfigError, OSError, ValueError) as e:
    _fail(f'error: {e}')
  except tf.errors.OpError as e:      # e.g. a full disk while saving
    _fail(f'error: {type(e).__name__}: {e.message.splitlines()[0]}')
  except KeyboardInterrupt:
    print('error: interrupted; the output was left as it was.',
          file=sys.stderr)
    sys.exit(130)
  print(f'exported SavedModel to {path}')


if __name__ == '__main__':
  main()
