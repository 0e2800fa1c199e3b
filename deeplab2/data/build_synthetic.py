"""Writes the synthetic dataset as sharded TFRecords plus its descriptor."""

import dataclasses
import os

from deeplab2.data import dataset_descriptor
from deeplab2.data import synthetic
from deeplab2.data import tfrecord


def write_synthetic_dataset(output_dir, num_train=600, num_val=100, seed=0,
                            num_shards=4, image_size=synthetic.DEFAULT_IMAGE_SIZE,
                            overwrite=False):
  """Generates and writes the train and val splits.

  Files: `<split>-0000i-of-0000n.tfrecord` and `dataset_descriptor.json`.
  The same arguments always give the same bytes.

  Args:
    output_dir: created if missing.
    num_train: training images.
    num_val: validation images.
    seed: the dataset's seed.
    num_shards: shards per split.
    image_size: side of the square images (odd, e.g. 129 or 257).
    overwrite: replace existing output; without it, existing shards or
      descriptor are an error.

  Returns:
    dict split -> list of shard paths.

  Raises:
    FileExistsError: output exists and overwrite is False.
  """
  splits = {'train': num_train, 'val': num_val}
  planned = [p for split in splits
             for p in tfrecord.shard_paths(output_dir, split, num_shards)]
  planned.append(os.path.join(output_dir,
                              dataset_descriptor.DESCRIPTOR_FILENAME))
  existing = [p for p in planned if os.path.exists(p)]
  if existing and not overwrite:
    raise FileExistsError(
        f'{existing[0]} exists ({len(existing)} output files in all); pass '
        'overwrite=True (--overwrite) to replace them.')
  os.makedirs(output_dir, exist_ok=True)
  written = {}
  for split, count in splits.items():
    with tfrecord.ShardedWriter(output_dir, split, num_shards) as writer:
      for name, image, panoptic, _ in synthetic.generate_split(
          seed, split, count, image_size):
        writer.write(tfrecord.make_example(
            tfrecord.encode_png(image), 'png', image_size, image_size,
            name + '.png', panoptic))
      writer.commit()
    written[split] = writer.paths
  descriptor = dataclasses.replace(synthetic.DESCRIPTOR,
                                   splits_to_sizes=dict(splits))
  descriptor.write_json(os.path.join(output_dir,
                                     dataset_descriptor.DESCRIPTOR_FILENAME))
  return written
