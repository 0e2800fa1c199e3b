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


def _results(samples, spec, num_workers):
  jobs = ((sample, spec) for sample in samples)
  if num_workers <= 1:
    yield from map(panoptic_format.convert_sample_or_error, jobs)
    return
  # spawn: workers import numpy and PIL only, never a forked TF runtime.
  context = multiprocessing.get_context('spawn')
  with context.Pool(num_workers) as pool:
    yield from pool.imap(panoptic_format.convert_sample_or_error, jobs,
                         chunksize=4)


def convert_split(samples, spec, output_dir, split, num_shards,
                  num_workers=1, skip_bad_samples=False, progress=None):
  """Writes one split's samples (in order) into `num_shards` TFRecords.

  Shards are written under temporary names and renamed only when the split
  is complete.

  Args:
    samples: list of panoptic_format.Sample.
    spec: panoptic_format.LabelSpec.
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
        _results(samples, spec, num_workers), start=1):
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


def write_descriptor(descriptor, output_dir, reports):
  """Writes the descriptor with the split sizes next to the TFRecords."""
  descriptor = dataclasses.replace(
      descriptor, splits_to_sizes={r.split: r.written for r in reports})
  path = os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME)
  descriptor.write_json(path)
  return path


def convert_dataset(find_split, splits, output_dir, num_shards=10,
                    num_workers=1, skip_bad_samples=False, overwrite=False,
                    progress_factory=None):
  """Converts `splits` and writes the descriptor once all are done.

  Args:
    find_split: callable(split) -> (samples, descriptor, spec).
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
    FileExistsError, FileNotFoundError, ValueError, SampleError.
  """
  found = {split: find_split(split) for split in splits}
  descriptors = {split: value[1] for split, value in found.items()}
  first = descriptors[splits[0]]
  for split, descriptor in descriptors.items():
    if descriptor != first:
      raise ValueError(f'Split "{split}" has other categories than '
                       f'"{splits[0]}"; convert them separately.')
  check_output_dir(output_dir, splits, overwrite)
  reports = []
  for split in splits:
    samples, _, spec = found[split]
    if not samples:
      raise ValueError(f'Split "{split}" has no samples.')
    reports.append(convert_split(
        samples, spec, output_dir, split, num_shards, num_workers,
        skip_bad_samples,
        progress_factory(split) if progress_factory else None))
  return write_descriptor(first, output_dir, reports), reports
