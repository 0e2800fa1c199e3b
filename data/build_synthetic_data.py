"""Writes the built-in synthetic panoptic dataset as TFRecords.

  python data/build_synthetic_data.py --output_dir=runs/synthetic_data
"""

import argparse
import sys

from deeplab2.data import build_synthetic


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--num_train', type=int, default=600)
  parser.add_argument('--num_val', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_shards', type=int, default=4)
  parser.add_argument('--image_size', type=int, default=129)
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing dataset in output_dir')
  args = parser.parse_args(argv)
  try:
    written = build_synthetic.write_synthetic_dataset(
        args.output_dir, args.num_train, args.num_val, args.seed,
        args.num_shards, args.image_size, args.overwrite)
  except FileExistsError as e:
    sys.exit(f'error: {e}')
  for split, paths in written.items():
    print(f'{split}: {len(paths)} shards in {args.output_dir}')


if __name__ == '__main__':
  main()
