"""Converts samples in COCO panoptic format into sharded TFRecords plus a
dataset descriptor, in parallel, checking every segment.

Dataset layouts (COCO, Cityscapes, Mapillary Vistas) only find their files
and categories (coco.py, cityscapes.py, mapillary.py); this module does the
rest, with conversion_checks (flags and labels), workers (the worker
processes) and staging (the output folder). The library reports progress
through a callback and never prints; what it cleaned up after an earlier,
killed conversion it logs as warnings on the `deeplab2` logger.

Nothing is written into the output folder itself: a conversion goes into a
temporary folder beside it (staging.StagedOutput), which replaces the
output folder only once every split and the descriptor are complete. A
failure or an interrupt (KeyboardInterrupt, or any exception a SIGTERM
handler raises) leaves the old output as it was and removes the temporary
folder.
"""

import dataclasses
import os
from typing import Callable, Sequence

import numpy as np

from deeplab2.data import conversion_checks
from deeplab2.data import dataset_descriptor
from deeplab2.data import panoptic_format
from deeplab2.data import staging
from deeplab2.data import tfrecord
from deeplab2.data import workers

# The errors convert_dataset raises besides ValueError and FileExistsError.
SampleError = panoptic_format.SampleError
OutputError = staging.OutputError
WorkerError = workers.WorkerError

Progress = Callable[[int, int], None]
FindSplit = Callable[[str], tuple[list[panoptic_format.Sample],
                                  dataset_descriptor.DatasetDescriptor,
                                  panoptic_format.CategoryMap]]


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
  skipped: list[str]
  paths: list[str]


def convert_split(samples: Sequence[panoptic_format.Sample],
                  category_map: panoptic_format.CategoryMap, output_dir: str,
                  split: str, num_shards: int, num_workers: int = 1,
                  skip_bad_samples: bool = False,
                  progress: Progress | None = None) -> SplitReport:
  """Writes one split's samples (in order) into `num_shards` TFRecords.

  Shards are written under temporary names and renamed only when the split
  is complete. convert_dataset calls this inside a StagedOutput; called on
  its own, it writes into `output_dir` directly.

  Args:
    samples: list of panoptic_format.Sample.
    category_map: panoptic_format.CategoryMap.
    output_dir: existing directory.
    split: e.g. 'train'.
    num_shards: number of shard files.
    num_workers: processes reading and checking samples; they are stopped
      at once when this raises (also on KeyboardInterrupt).
    skip_bad_samples: leave out (and report) samples with errors instead of
      failing.
    progress: optional callable(done, total) after each sample.

  Returns:
    SplitReport.

  Raises:
    SampleError: the first bad sample, unless skip_bad_samples; nothing of
      the split is left on disk then (nor after any other exception).
    OSError: writing failed (tfrecord.ShardedWriter).
    WorkerError: a worker process failed or died.
  """
  skipped = []
  written = 0
  with tfrecord.ShardedWriter(output_dir, split, num_shards) as writer, \
      workers.converted(samples, category_map, num_workers) as results:
    for done, (converted, error) in enumerate(results, start=1):
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


def write_descriptor(descriptor: dataset_descriptor.DatasetDescriptor,
                     output_dir: str, reports: Sequence[SplitReport],
                     kept_sizes: dict[str, int] | None = None) -> str:
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


def convert_dataset(
    find_split: FindSplit, splits: Sequence[str], output_dir: str,
    num_shards: int = 10, num_workers: int = 1,
    skip_bad_samples: bool = False, overwrite: bool = False,
    progress_factory: Callable[[str], Progress] | None = None
) -> tuple[str, list[SplitReport]]:
  """Converts `splits` and writes the descriptor once all are done.

  Everything is written into a StagedOutput, so the splits and the
  descriptor appear in output_dir together, replacing the old conversion,
  or not at all: any failure or interrupt leaves output_dir as it was.
  Shards of other splits stay (see conversion_checks.check_other_splits).

  Args:
    find_split: callable(split) -> (samples, descriptor, category_map).
    splits: split names.
    output_dir: where the shards and dataset_descriptor.json go; missing,
      empty, or holding only a conversion (staging.StagedOutput refuses any
      other files, even with overwrite).
    num_shards: shards per split.
    num_workers: processes reading the samples.
    skip_bad_samples: see convert_split.
    overwrite: replace an existing conversion in output_dir.
    progress_factory: optional callable(split) -> progress callback.

  Returns:
    (descriptor path, list of SplitReport).

  Raises:
    FileExistsError: output exists and not overwrite; output_dir holds
      other files than a conversion.
    FileNotFoundError: input files are missing.
    ValueError: num_shards < 1 or more than the open-file limit allows
      (conversion_checks.check_num_shards); a malformed input; splits with
      other categories or no samples; labels that differ from the built-in
      descriptor of the same name (check_builtin_name) or from other
      splits' shards that stay in output_dir (check_other_splits).
    SampleError: a bad sample, unless skip_bad_samples.
    OutputError: output_dir or its folder cannot be written (read-only, a
      full disk).
    WorkerError: a worker process failed or died.
  """
  conversion_checks.check_num_shards(num_shards, num_workers)
  found = {split: find_split(split) for split in splits}
  descriptors = {split: value[1] for split, value in found.items()}
  first = descriptors[splits[0]]
  for split, descriptor in descriptors.items():
    if descriptor != first:
      raise ValueError(f'Split "{split}" has other categories than '
                       f'"{splits[0]}"; convert them separately.')
    if not found[split][0]:
      raise ValueError(f'Split "{split}" has no samples.')
  conversion_checks.check_builtin_name(first)
  reports = []
  with staging.StagedOutput(output_dir, splits, overwrite) as staged:
    kept_sizes = conversion_checks.check_other_splits(output_dir, splits,
                                                      first)
    for split in splits:
      samples, _, category_map = found[split]
      reports.append(convert_split(
          samples, category_map, staged.path, split, num_shards, num_workers,
          skip_bad_samples,
          progress_factory(split) if progress_factory else None))
    write_descriptor(first, staged.path, reports, kept_sizes)
  reports = [dataclasses.replace(r, paths=tfrecord.shard_paths(
      output_dir, r.split, num_shards)) for r in reports]
  return (os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME),
          reports)
