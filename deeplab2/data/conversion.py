"""Converts samples in COCO panoptic format into sharded TFRecords plus a
dataset descriptor, in parallel, checking every segment.

Dataset layouts (COCO, Cityscapes, Mapillary Vistas) only find their files
and categories (coco.py, cityscapes.py, mapillary.py); this module does the
rest. The library reports progress through a callback and never prints.
"""

import dataclasses
import glob
import multiprocessing
import os

import numpy as np

from deeplab2.data import dataset_descriptor
from deeplab2.data import panoptic_format
from deeplab2.data import tfrecord

SampleError = panoptic_format.SampleError


@dataclasses.dataclass
class SplitReport:
  """What one split's conversion did.

  Attributes:
    split: the split name.
    written: records written.
    skipped: messages of the samples left out (only with skip_bad_samples).
    paths: the shard files.
  """
  split: str
  written: int
  skipped: list
  paths: list


def check_output_dir(output_dir, splits, overwrite):
  """Refuses to touch existing output unless `overwrite`; then removes it.

  Raises:
    FileExistsError: shards of these splits or a descriptor exist.
  """
  existing = [p for split in splits
              for p in glob.glob(os.path.join(output_dir,
                                              f'{split}-*.tfrecord'))]
  descriptor = os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME)
  if os.path.exists(descriptor):
    existing.append(descriptor)
  if existing and not overwrite:
    raise FileExistsError(
        f'{sorted(existing)[0]} exists ({len(existing)} output files in all); '
        'pass --overwrite to replace them.')
  for path in existing:
    os.remove(path)
  os.makedirs(output_dir, exist_ok=True)


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
    output_dir: str, splits: list,
    descriptor: dataset_descriptor.DatasetDescriptor) -> dict:
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


def _results(samples, category_map, num_workers):
  jobs = ((sample, category_map) for sample in samples)
  if num_workers <= 1:
    yield from map(panoptic_format.convert_sample_or_error, jobs)
    return
  # spawn: workers import numpy and PIL only, never a forked TF runtime.
  context = multiprocessing.get_context('spawn')
  with context.Pool(num_workers) as pool:
    yield from pool.imap(panoptic_format.convert_sample_or_error, jobs,
                         chunksize=4)


def convert_split(samples, category_map, output_dir, split, num_shards,
                  num_workers=1, skip_bad_samples=False, progress=None):
  """Writes one split's samples (in order) into `num_shards` TFRecords.

  Shards are written under temporary names and renamed only when the split
  is complete.

  Args:
    samples: list of panoptic_format.Sample.
    category_map: panoptic_format.CategoryMap.
    output_dir: existing directory.
    split: e.g. 'train'.
    num_shards: number of shard files.
    num_workers: processes reading and checking samples.
    skip_bad_samples: leave out (and report) samples with errors instead of
      failing.
    progress: optional callable(done, total) after each sample.

  Returns:
    SplitReport.

  Raises:
    SampleError: the first bad sample, unless skip_bad_samples; nothing of
      the split is left on disk then.
  """
  skipped = []
  written = 0
  with tfrecord.ShardedWriter(output_dir, split, num_shards) as writer:
    for done, (converted, error) in enumerate(
        _results(samples, category_map, num_workers), start=1):
      if error is not None:
        if not skip_bad_samples:
          raise SampleError(error)
        skipped.append(error)
      else:
        label = None
        if converted.label_bytes is not None:
          label = np.frombuffer(converted.label_bytes, '<i4').reshape(
              converted.height, converted.width)
        writer.write(tfrecord.make_example(
            converted.image_bytes, converted.image_format, converted.height,
            converted.width, converted.name, label))
        written += 1
      if progress is not None:
        progress(done, len(samples))
    writer.commit()
  return SplitReport(split, written, skipped, writer.paths)


def write_descriptor(descriptor, output_dir, reports, kept_sizes=None):
  """Writes the descriptor with the split sizes next to the TFRecords.

  `kept_sizes` (split -> size) are the sizes of other splits' shards that
  stay in output_dir.
  """
  sizes = dict(kept_sizes or {})
  sizes.update({r.split: r.written for r in reports})
  descriptor = dataclasses.replace(descriptor, splits_to_sizes=sizes)
  path = os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME)
  descriptor.write_json(path)
  return path


def convert_dataset(find_split, splits, output_dir, num_shards=10,
                    num_workers=1, skip_bad_samples=False, overwrite=False,
                    progress_factory=None):
  """Converts `splits` and writes the descriptor once all are done.

  Args:
    find_split: callable(split) -> (samples, descriptor, category_map).
    splits: split names.
    output_dir: where the shards and dataset_descriptor.json go.
    num_shards: shards per split.
    num_workers: processes reading the samples.
    skip_bad_samples: see convert_split.
    overwrite: replace an existing conversion in output_dir.
    progress_factory: optional callable(split) -> progress callback.

  Returns:
    (descriptor path, list of SplitReport).

  Raises:
    FileExistsError: output exists and not overwrite.
    FileNotFoundError: input files are missing.
    ValueError: a malformed input; splits with other categories; labels
      that differ from the built-in descriptor of the same name
      (check_builtin_name) or from other splits' shards that stay in
      output_dir (check_other_splits).
    SampleError: a bad sample, unless skip_bad_samples.
  """
  found = {split: find_split(split) for split in splits}
  descriptors = {split: value[1] for split, value in found.items()}
  first = descriptors[splits[0]]
  for split, descriptor in descriptors.items():
    if descriptor != first:
      raise ValueError(f'Split "{split}" has other categories than '
                       f'"{splits[0]}"; convert them separately.')
  check_builtin_name(first)
  kept_sizes = check_other_splits(output_dir, splits, first)
  check_output_dir(output_dir, splits, overwrite)
  reports = []
  for split in splits:
    samples, _, category_map = found[split]
    if not samples:
      raise ValueError(f'Split "{split}" has no samples.')
    reports.append(convert_split(
        samples, category_map, output_dir, split, num_shards, num_workers,
        skip_bad_samples,
        progress_factory(split) if progress_factory else None))
  return write_descriptor(first, output_dir, reports, kept_sizes), reports
