"""Scores COCO-panoptic-format predictions against ground truth (PQ/SQ/RQ).

  python evaluation/evaluate_panoptic.py --gt_json=GT.json --gt_folder=GT \
      --pred_json=PRED.json --pred_folder=PRED [--output=metrics.json] \
      [--overwrite]
  deeplab2-evaluate-panoptic ...    # the installed command, the same

Both sides are a JSON file (annotations with segments_info; the ground
truth's also lists the categories) and a folder of RGB PNGs of segment ids,
as panopticapi and cityscapesScripts read them, with the same scores. Prints
a per-class table and writes the metrics as JSON (default:
panoptic_metrics.json in the current folder; an existing file is kept unless
--overwrite). Bad input: exit status 1 and one "error:" line.
"""

import argparse
from collections.abc import Sequence
import os
import sys

from deeplab2.evaluation import coco_panoptic_files
from deeplab2.evaluation import report

DEFAULT_OUTPUT = 'panoptic_metrics.json'


def _error(message: str) -> int:
  """Prints the one `error:` line to stderr; returns the status, 1."""
  print(f'error: {message}', file=sys.stderr)
  return 1


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--gt_json', required=True,
                      help='ground-truth JSON (annotations and categories)')
  parser.add_argument('--gt_folder', required=True,
                      help='folder of the ground-truth PNGs')
  parser.add_argument('--pred_json', required=True,
                      help='prediction JSON (annotations)')
  parser.add_argument('--pred_folder', required=True,
                      help='folder of the predicted PNGs')
  parser.add_argument('--output', default=DEFAULT_OUTPUT,
                      help=f'metrics JSON to write (default: {DEFAULT_OUTPUT})')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing --output file')
  args = parser.parse_args(argv)
  output = os.path.abspath(args.output)
  if os.path.exists(output) and not args.overwrite:   # before the long part
    return _error(f'{output} exists; pass --overwrite to replace it.')
  try:
    metrics, categories = coco_panoptic_files.evaluate_folders(
        args.gt_json, args.gt_folder, args.pred_json, args.pred_folder)
  except coco_panoptic_files.FormatError as e:   # names file and segment
    return _error(str(e))
  print(report.format_table(
      metrics, {c.id: c.name for c in categories.values()}))
  try:
    written = report.write_metrics_json(metrics, output, args.overwrite)
  except OSError as e:
    return _error(f'cannot write {output}: {e}')
  print(f'metrics written to {written}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
