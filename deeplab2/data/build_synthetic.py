"""Writes the synthetic dataset as sharded TFRecords plus its descriptor."""

import dataclasses
import os
from typing import Callable

from deeplab2.data import conversion_checks
from deeplab2.data import dataset_descriptor
from deeplab2.data import synthetic
from deeplab2.data import staging
from deeplab2.data import tfrecord


def check_arguments(num_train: int, num_val: int, seed: int,
                    image_size: int) -> None:
  """Refuses counts, a seed or an image size that cannot make the dataset.

  Raises:
    ValueError: naming the flag (--num_train, --num_val, --seed,
      --image_size) and the valid values.
  """
  for flag, value in (('--num_train', num_train), ('--num_val', num_val),
                      ('--seed', seed)):
    if value < 0:
      raise ValueError(f'{flag}={value}: must be 0 or more.')
  if num_train + num_val == 0:
    raise ValueError('--num_train=0 and --num_val=0: nothing to write; ask '
                     'for 1 image or more.')
  if not synthetic.MIN_IMAGE_SIZE <= image_size <= synthetic.MAX_IMAGE_SIZE:
    raise ValueError(
        f'--image_size={image_size}: must be {synthetic.MIN_IMAGE_SIZE} to '
        f'{synthetic.MAX_IMAGE_SIZE} (the side of the square images, in '
        'pixels).')


def write_synthetic_dataset(
    output_dir: str, num_train: int = 600, num_val: int = 100, seed: int = 0,
    num_shards: int = 4, image_size: int = synthetic.DEFAULT_IMAGE_SIZE,
    overwrite: bool = False,
    progress_factory: Callable[[str], Callable[[int, int], None]] | None = None
) -> dict[str, list[str]]:
  """Generates and writes the train and val splits.

  Files: `<split>-0000i-of-0000n.tfrecord` and `dataset_descriptor.json`.
  The same arguments always give the same bytes. Like
  conversion.convert_dataset, it writes beside output_dir first
  (staging.StagedOutput) and swaps the result in when complete: a
  failure or an interrupt leaves output_dir as it was, and a folder holding
  other files than a dataset is refused.

  Args:
    output_dir: created if missing.
    num_train: training images, >= 0.
    num_val: validation images, >= 0 (num_train + num_val >= 1).
    seed: the dataset's seed, >= 0.
    num_shards: shards per split.
    image_size: side of the square images, MIN_IMAGE_SIZE..MAX_IMAGE_SIZE
      of deeplab2.data.synthetic (odd, e.g. 129 or 257).
    overwrite: replace existing output; without it, existing shards or
      descriptor are an error.
    progress_factory: optional callable(split) -> callable(done, total).

  Returns:
    dict split -> list of shard paths.

  Raises:
    FileExistsError: output exists and overwrite is False, or output_dir
      holds other files.
    ValueError: num_shards < 1 or more than can be open
      (conversion_checks.check_num_shards); an argument check_arguments
      refuses; other splits' shards with other labels stay in output_dir
      (conversion_checks.check_other_splits).
    staging.OutputError: output_dir cannot be written.
  """
  conversion_checks.check_num_shards(num_shards)
  check_arguments(num_train, num_val, seed, image_size)
  splits = {'train': num_train, 'val': num_val}
  with staging.StagedOutput(
      output_dir, splits, overwrite,
      overwrite_hint='overwrite=True (--overwrite)') as staged:
    sizes = conversion_checks.check_other_splits(output_dir, list(splits),
                                                 synthetic.DESCRIPTOR)
    for split, count in splits.items():
      progress = progress_factory(split) if progress_factory else None
      with tfrecord.ShardedWriter(staged.path, split, num_shards) as writer:
        for done, (name, image, panoptic, _) in enumerate(
            synthetic.generate_split(seed, split, count, image_size), 1):
          writer.write(tfrecord.make_example(
              tfrecord.encode_png(image), 'png', image_size, image_size,
              name + '.png', panoptic))
          if progress is not None:
            progress(done, count)
        writer.commit()
    sizes.update(splits)
    descriptor = dataclasses.replace(synthetic.DESCRIPTOR,
                                     splits_to_sizes=sizes)
    descriptor.write_json(os.path.join(
        staged.path, dataset_descriptor.DESCRIPTOR_FILENAME))
  return {split: tfrecord.shard_paths(output_dir, split, num_shards)
          for split in splits}
