"""Checks of a conversion's flags and labels, before anything is written.

Each raises a ValueError whose message names the flag or the file to
change: the number of shards, a built-in dataset name used with other
labels, and labels that differ from those of the shards of other splits
that stay in the output folder.
"""

import glob
import os
import resource
from typing import Sequence

from deeplab2.data import dataset_descriptor
from deeplab2.data import tfrecord


# Files a conversion keeps open besides its shards: TensorFlow's and the
# interpreter's (_SPARE_FILES), and each worker process's two pipes and
# sentinel in the parent (_FILES_PER_WORKER).
_SPARE_FILES = 32
_FILES_PER_WORKER = 3


def _open_file_count() -> int:
  """Files this process has open now (0 where the system does not say)."""
  for folder in ('/proc/self/fd', '/dev/fd'):
    if os.path.isdir(folder):
      return len(os.listdir(folder)) - 1   # less the listing's own
  return 0


def check_num_shards(num_shards: int, num_workers: int = 1) -> None:
  """Refuses fewer than one shard per split, or more than can be open.

  A split's shards are all open while it is written, so they must fit
  under the process's open-file limit (RLIMIT_NOFILE, `ulimit -n`) with
  the files already open and those the workers need.

  Args:
    num_shards: shards per split (the --num_shards flag).
    num_workers: worker processes the conversion starts (<= 1: none).

  Raises:
    ValueError: naming the --num_shards flag (and the limit).
  """
  if num_shards < 1:
    raise ValueError(f'--num_shards={num_shards}: a split needs 1 shard or '
                     'more.')
  limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
  if limit == resource.RLIM_INFINITY:
    return
  kept = (_open_file_count() + _SPARE_FILES +
          _FILES_PER_WORKER * (num_workers if num_workers > 1 else 0))
  if num_shards > limit - kept:
    fewer = (f'pass --num_shards={limit - kept} or fewer, or raise the limit'
             if limit > kept else 'raise the limit')
    raise ValueError(
        f'--num_shards={num_shards}: a split keeps all its shards open while '
        f'it is written, and this process may open {limit} files (ulimit -n) '
        f'of which {kept} are in use or kept for others: {fewer}.')


def check_builtin_divisor(name: str, label_divisor: int | None) -> None:
  """Refuses a label divisor other than that of the built-in `name`.

  Args:
    name: the dataset name to write.
    label_divisor: the requested divisor (the --label_divisor flag), or
      None for the default.

  Raises:
    ValueError: naming the flag, both values and the built-in descriptor.
  """
  if label_divisor is None or name not in dataset_descriptor.DATASETS:
    return
  builtin = dataset_descriptor.DATASETS.get(name)
  if label_divisor != builtin.label_divisor:
    raise ValueError(
        f'--label_divisor={label_divisor} differs from '
        f'label_divisor={builtin.label_divisor} of the built-in descriptor '
        f'"{name}": drop --label_divisor, or pass another --dataset_name '
        'for a dataset of your own.')


def check_builtin_name(
    descriptor: dataset_descriptor.DatasetDescriptor) -> None:
  """Refuses to write a built-in dataset name with other labels.

  A descriptor named like a registered dataset (`coco_panoptic`,
  `cityscapes_panoptic`, ...) must mean what the built-in one means: the
  same label divisor, classes and thing ids (colours may differ).

  Raises:
    ValueError: a divisor (check_builtin_divisor) or other labels that
      differ from the built-in descriptor's.
  """
  if descriptor.name not in dataset_descriptor.DATASETS:
    return
  check_builtin_divisor(descriptor.name, descriptor.label_divisor)
  builtin = dataset_descriptor.DATASETS.get(descriptor.name)
  differences = descriptor.label_differences(builtin)
  if differences:
    raise ValueError(
        f'The data has other labels than the built-in descriptor '
        f'"{builtin.name}" (these vs built-in: {"; ".join(differences)}): '
        'pass another --dataset_name.')


def check_other_splits(
    output_dir: str, splits: Sequence[str],
    descriptor: dataset_descriptor.DatasetDescriptor) -> dict[str, int]:
  """Refuses labels that differ from those of shards that stay.

  Shards of splits other than `splits` stay in `output_dir` (even with
  overwrite); the existing dataset_descriptor.json says what their labels
  mean, so the new descriptor must mean the same.

  Args:
    output_dir: the output folder (may not exist yet).
    splits: the splits about to be written.
    descriptor: DatasetDescriptor of the new conversion.

  Returns:
    dict split -> size, from the existing descriptor, of the other splits
    whose shards stay (to keep in the new descriptor).

  Raises:
    ValueError: the existing descriptor has other label facts (or cannot
      be read) while shards of other splits stay.
  """
  other_splits = sorted({
      tfrecord.shard_split(p)
      for p in glob.glob(os.path.join(output_dir, '*.tfrecord'))} -
                        set(splits) - {None})
  path = os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME)
  if not other_splits or not os.path.exists(path):
    return {}
  existing = dataset_descriptor.read_json(path)
  differences = descriptor.label_differences(existing)
  if differences:
    raise ValueError(
        f'{path} has other labels ({"; ".join(differences)}, new vs '
        f'existing) and the {", ".join(other_splits)} shards beside it stay '
        'and would not match: convert all splits together, or into another '
        '--output_dir.')
  return {split: existing.splits_to_sizes[split] for split in other_splits
          if split in existing.splits_to_sizes}
