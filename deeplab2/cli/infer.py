"""Runs an exported Panoptic-DeepLab on images, folders or videos and writes
overlays, panoptic PNGs and a COCO panoptic JSON.

  python infer.py --saved_model=runs/synthetic/export \
      --input=path/to/images --output_dir=runs/synthetic/inference
  deeplab2-infer ...    # the installed command, the same

Or with --model=PATH, any exported model (a SavedModel folder, a .tflite,
.onnx or OpenVINO .xml file; a .tflite needs --descriptor), or
--config_file and --checkpoint_path instead of --saved_model. Unreadable
files are named and skipped (exit status 1 when any was); existing outputs
are refused without --overwrite.
"""

import argparse
from collections.abc import Sequence
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2.cli import config_flags  # pylint: disable=g-import-not-at-top
from deeplab2.serving import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
from deeplab2.serving import run_inference  # pylint: disable=g-import-not-at-top
from deeplab2.utils import progress  # pylint: disable=g-import-not-at-top


def _predictor(args: argparse.Namespace,
               parser: argparse.ArgumentParser) -> predictor_lib.Predictor:
  """The Predictor the flags name; a usage error (exit 2) when none."""
  threshold, most = args.score_threshold, args.max_instances
  if args.model:
    return predictor_lib.Predictor.from_file(
        args.model, args.descriptor, score_threshold=threshold,
        max_instances=most, openvino_precision=args.openvino_precision)
  if args.openvino_precision != 'f32':
    parser.error('--openvino_precision is for --model=MODEL.xml (an '
                 'OpenVINO model) only')
  if args.saved_model:
    return predictor_lib.Predictor.from_saved_model(
        args.saved_model, score_threshold=threshold, max_instances=most)
  if args.tflite:
    if not args.descriptor:
      parser.error('--tflite needs --descriptor (the dataset_descriptor.json '
                   'of its classes)')
    return predictor_lib.Predictor.from_tflite(
        args.tflite, args.descriptor, score_threshold=threshold,
        max_instances=most)
  if args.config_file and args.checkpoint_path:
    return predictor_lib.Predictor.from_experiment(
        config_flags.config_source(args), args.checkpoint_path,
        score_threshold=threshold, max_instances=most)
  parser.error('give --model, --saved_model, --tflite, or --config_file '
               'with --checkpoint_path')


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', help='any export_model.py model: a '
                      'SavedModel folder, a .tflite, .onnx or OpenVINO .xml '
                      'file (chosen by the file)')
  parser.add_argument('--saved_model', help='an export_model.py SavedModel')
  parser.add_argument('--tflite', help='an export_model.py --tflite model')
  parser.add_argument('--descriptor', help="the model's classes (a "
                      "dataset_descriptor.json): needed for a .tflite model")
  config_flags.add_config_flags(parser, required=False)
  parser.add_argument('--checkpoint_path')
  parser.add_argument('--input', required=True,
                      help='an image, a video, or a folder of them')
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--labels', action='store_true',
                      help='write class names (things with their scores) on '
                      'the overlays, and a legend strip below those of images')
  parser.add_argument('--score_threshold', type=float, default=0.0,
                      help='drop things scored under it (scores are in '
                      '[0, 1]); their pixels become void')
  parser.add_argument('--max_instances', type=int, default=None,
                      help='keep at most this many things per image, the '
                      'best scored')
  parser.add_argument('--openvino_precision', default='f32',
                      choices=predictor_lib.OPENVINO_PRECISIONS,
                      help="an OpenVINO model's compute precision: bf16 "
                      'is about 1.5x faster on CPUs with bfloat16 units, '
                      'its maps differing (docs/deployment.md)')
  parser.add_argument('--overwrite', action='store_true')
  parser.add_argument(
      '--ground_truth_json', default=None,
      help="a COCO panoptic ground truth of the inputs: panoptic.json takes "
      "its image ids, so evaluation/evaluate_panoptic.py scores it directly")
  args = parser.parse_args(argv)
  try:
    predictor_lib.check_instance_options(args.score_threshold,
                                         args.max_instances)
    predictor = _predictor(args, parser)
    summary = run_inference.run(
        predictor, args.input, args.output_dir, args.overwrite, args.labels,
        progress=progress.ProgressBar(sys.stderr, 'infer'),
        ground_truth_json=args.ground_truth_json)
  except (OSError, ValueError, ImportError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print('error: interrupted; the outputs written so far stay.',
          file=sys.stderr)
    return 1
  for path, why in summary.skipped:
    print(f'skipped {why}', file=sys.stderr)
  print(f'wrote {summary.written} image(s) to {args.output_dir}; skipped '
        f'{len(summary.skipped)} unreadable file(s)')
  return 1 if summary.skipped else 0


if __name__ == '__main__':
  sys.exit(main())
