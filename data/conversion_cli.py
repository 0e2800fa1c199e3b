"""Flags and the run loop shared by the build_*_data.py scripts."""

import os
import sys

from deeplab2.data import conversion
from deeplab2.utils import progress


def add_common_flags(parser, default_splits, default_shards=10):
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--splits', default=default_splits)
  parser.add_argument('--num_shards', type=int, default=default_shards)
  parser.add_argument('--num_workers', type=int, default=1,
                      help='processes reading and checking images')
  parser.add_argument('--skip_bad_samples', action='store_true',
                      help='leave out bad samples with a warning instead of '
                      'failing')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing conversion in output_dir')


def output_folder_name(output_dir):
  """The last component of `output_dir` ('out/' -> 'out')."""
  return os.path.basename(os.path.normpath(os.path.abspath(output_dir)))


def print_error(error):
  """Prints `error: <message>` to stderr; returns the exit status, 1."""
  print(f'error: {error}', file=sys.stderr)
  return 1


def run(find_split, splits, args):
  """Converts; prints progress, a summary and every skipped sample."""
  try:
    descriptor_path, reports = conversion.convert_dataset(
        find_split, splits, args.output_dir, args.num_shards,
        args.num_workers, args.skip_bad_samples, args.overwrite,
        progress_factory=lambda split: progress.ProgressBar(sys.stderr,
                                                            split))
  except (FileExistsError, FileNotFoundError, ValueError) as e:
    return print_error(e)
  for report in reports:
    for message in report.skipped:
      print(f'warning: skipped {message}', file=sys.stderr)
    print(f'{report.split}: {report.written} records in '
          f'{len(report.paths)} shards'
          + (f', {len(report.skipped)} samples skipped' if report.skipped
             else ''))
  print(f'wrote {descriptor_path}')
  return 0
