"""Exports a trained Panoptic-DeepLab as a SavedModel, or as a TFLite, ONNX
or OpenVINO model.

  python export_model.py --config_file=configs/synthetic/resnet_mini_os16.textproto \
      --checkpoint_path=runs/synthetic --output_path=runs/synthetic/export
  python export_model.py ... --output_path=model.tflite --tflite=int8
  python export_model.py ... --output_path=model.onnx --format=onnx
  python export_model.py ... --output_path=model.xml --format=openvino
  deeplab2-export ...    # the installed command, the same

The model runs evaluation's preprocessing, test-time augmentation and
post-processing (the config's, unless --eval_scales / --add_flipped_images
say otherwise); see docs/deployment.md.
"""

import argparse
from collections.abc import Sequence
import logging
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab2.cli import config_flags  # pylint: disable=g-import-not-at-top
from deeplab2.cli import messages
from deeplab2.serving import export
from deeplab2.serving import onnx_export
from deeplab2.serving import tflite

FORMATS = ('saved_model', 'tflite', 'onnx', 'openvino')


def _size(text: str) -> tuple[int, int]:
  """--input_size's HEIGHT,WIDTH as (height, width)."""
  try:
    height, width = (int(v) for v in text.split(','))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'--input_size is HEIGHT,WIDTH (e.g. 513,1025), got {text!r}')
  if height < 1 or width < 1:
    raise argparse.ArgumentTypeError(
        f'--input_size sides must be positive, got {text!r}')
  return height, width


def _scales(text: str) -> tuple[float, ...]:
  """--eval_scales as floats, under the config's eval_scales rule."""
  try:
    scales = tuple(float(v) for v in text.split(','))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'--eval_scales is a comma-separated list (e.g. 0.5,1,1.5), got '
        f'{text!r}')
  problem = config_lib.eval_scales_problem(scales)
  if problem:
    raise argparse.ArgumentTypeError(f'--eval_scales {problem}')
  return scales


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  config_flags.add_config_flags(parser)
  parser.add_argument('--checkpoint_path', required=True,
                      help='a checkpoint prefix, or a model_dir (latest)')
  parser.add_argument('--output_path', required=True,
                      help='the SavedModel folder, or the .tflite, .onnx '
                      'or .xml file')
  parser.add_argument('--overwrite', action='store_true')
  parser.add_argument('--eval_scales', type=_scales, default=None,
                      help='test-time scales baked in (default: the '
                      "config's evaluator_options.eval_scales)")
  parser.add_argument('--add_flipped_images', default=None,
                      action=argparse.BooleanOptionalAction,
                      help='also run mirrored inputs (default: the config)')
  parser.add_argument('--input_size', type=_size, default=None,
                      help='HEIGHT,WIDTH: accept only this size (static '
                      'shapes); with --tflite the default is the eval crop')
  parser.add_argument('--format', choices=FORMATS, default=None,
                      help='saved_model (default), tflite (float32; --tflite '
                      'chooses the quantization), onnx (an .onnx file), '
                      'openvino (an .xml file and its .bin); all but '
                      'saved_model take one input size (--input_size, '
                      'default: the eval crop)')
  parser.add_argument('--tflite', choices=tflite.QUANTIZATIONS, default=None,
                      help='write a .tflite model for LiteRT instead, with '
                      'this quantization')
  args = parser.parse_args(argv)
  if args.tflite and args.format not in (None, 'tflite'):
    parser.error(f'--tflite writes a TFLite model; it does not go with '
                 f'--format={args.format}')
  kind = args.format or ('tflite' if args.tflite else 'saved_model')
  # The checkpoint and step used, and the library's warnings.
  logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                      format='%(message)s')
  logging.getLogger('deeplab2').setLevel(logging.INFO)
  options = dict(eval_scales=args.eval_scales,
                 add_flipped_images=args.add_flipped_images,
                 input_size=args.input_size)
  try:
    if kind == 'tflite':
      path = tflite.tflite_from_config(
          config_flags.config_source(args), args.checkpoint_path,
          args.output_path,
          args.tflite or 'float32', args.overwrite, **options)
    elif kind == 'onnx':
      path = onnx_export.onnx_from_config(
          config_flags.config_source(args), args.checkpoint_path,
          args.output_path, args.overwrite, **options)
    elif kind == 'openvino':
      path = onnx_export.openvino_from_config(
          config_flags.config_source(args), args.checkpoint_path,
          args.output_path, args.overwrite, **options)
    else:
      path = export.export_from_config(
          config_flags.config_source(args), args.checkpoint_path,
          args.output_path,
          args.overwrite, **options)
  except (config_lib.ConfigError, OSError, ValueError, ImportError) as e:
    return messages.fail_after_restore(f'error: {e}')
  except tf.errors.OpError as e:      # e.g. a full disk while saving
    return messages.fail_after_restore(
        f'error: {messages.op_error_line(e)}')
  except KeyboardInterrupt:
    print('error: interrupted; the output was left as it was.',
          file=sys.stderr)
    return 130
  names = {'saved_model': 'SavedModel',
           'tflite': f'TFLite ({args.tflite or "float32"}) model',
           'onnx': 'ONNX model', 'openvino': 'OpenVINO model'}
  print(f'exported {names[kind]} to {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
