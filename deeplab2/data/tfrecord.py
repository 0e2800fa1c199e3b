"""The TFRecord schema (deeplab2's feature keys) and sharded writing.

Panoptic labels are stored as raw little-endian int32 bytes
(`image/segmentation/class/format` = "raw"), one value per pixel:
`semantic * label_divisor + instance`.
"""

import io
import os
import re

import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab2 import common

KEY_IMAGE = 'image/encoded'
KEY_IMAGE_FILENAME = 'image/filename'
KEY_IMAGE_FORMAT = 'image/format'
KEY_IMAGE_HEIGHT = 'image/height'
KEY_IMAGE_WIDTH = 'image/width'
KEY_IMAGE_CHANNELS = 'image/channels'
KEY_LABEL = 'image/segmentation/class/encoded'
KEY_LABEL_FORMAT = 'image/segmentation/class/format'

LABEL_FORMAT_RAW = 'raw'


def encode_png(image):
  """uint8 [H, W, 3] -> PNG bytes."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def make_example(image_bytes, image_format, height, width, filename,
                 panoptic_label):
  """Builds a tf.train.Example in the SPEC schema.

  Args:
    image_bytes: the encoded image (PNG or JPEG bytes).
    image_format: "png" or "jpeg".
    height: image height in pixels.
    width: image width in pixels.
    filename: the image's name (without directories), for prediction files.
    panoptic_label: int32 [height, width] panoptic ids, or None for an
      unlabeled split.
  """
  def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

  def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  feature = {
      KEY_IMAGE: _bytes(image_bytes),
      KEY_IMAGE_FILENAME: _bytes(filename.encode()),
      KEY_IMAGE_FORMAT: _bytes(image_format.encode()),
      KEY_IMAGE_HEIGHT: _int(height),
      KEY_IMAGE_WIDTH: _int(width),
      KEY_IMAGE_CHANNELS: _int(3),
  }
  if panoptic_label is not None:
    label = np.asarray(panoptic_label)
    if label.shape != (height, width):
      raise ValueError(f'{filename}: label shape {label.shape} differs from '
                       f'the image size {(height, width)}.')
    feature[KEY_LABEL] = _bytes(label.astype('<i4').tobytes())
    feature[KEY_LABEL_FORMAT] = _bytes(LABEL_FORMAT_RAW.encode())
  return tf.train.Example(features=tf.train.Features(feature=feature))


def shard_paths(output_dir, split, num_shards):
  """The final paths of a split's shards: `<split>-00000-of-00004.tfrecord`."""
  return [os.path.join(output_dir, f'{split}-{i:05d}-of-{num_shards:05d}'
                       '.tfrecord') for i in range(num_shards)]


_SHARD_NAME = re.compile(r'(?P<split>.+)-\d{5,}-of-\d{5,}\.tfrecord')


def shard_split(path):
  """The split of a shard path written by shard_paths, or None."""
  match = _SHARD_NAME.fullmatch(os.path.basename(path))
  return match.group('split') if match else None


class ShardedWriter:
  """Writes examples round-robin into shards under temporary names.

  The shards get their final names only in `commit()`, so an interrupted
  conversion never leaves files that look complete. Use as a context
  manager: leaving the block with an exception deletes the temporary files.
  """

  def __init__(self, output_dir, split, num_shards):
    self._final_paths = shard_paths(output_dir, split, num_shards)
    self._tmp_paths = [p + '.tmp' for p in self._final_paths]
    self._writers = [tf.io.TFRecordWriter(p) for p in self._tmp_paths]
    self._count = 0

  @property
  def paths(self):
    return list(self._final_paths)

  def write(self, example):
    self._writers[self._count % len(self._writers)].write(
        example.SerializeToString(deterministic=True))
    self._count += 1

  def commit(self):
    for writer in self._writers:
      writer.close()
    for tmp, final in zip(self._tmp_paths, self._final_paths):
      os.replace(tmp, final)
    return self._count

  def abort(self):
    for writer in self._writers:
      writer.close()
    for tmp in self._tmp_paths:
      if os.path.exists(tmp):
        os.remove(tmp)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is not None:
      self.abort()
    return False


def parse_example(serialized):
  """Decodes a serialized example in TF ops.

  Returns:
    dict keyed by deeplab2.common constants: IMAGE uint8 [H, W, 3],
    PANOPTIC_LABEL int32 [H, W] (all -1, no label, when the record has
    none), FILENAME string scalar, IMAGE_SIZE int32 [2], (H, W).
  """
  features = tf.io.parse_single_example(serialized, {
      KEY_IMAGE: tf.io.FixedLenFeature([], tf.string),
      KEY_IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, ''),
      KEY_IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
      KEY_IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
      KEY_LABEL: tf.io.FixedLenFeature([], tf.string, ''),
  })
  height = tf.cast(features[KEY_IMAGE_HEIGHT], tf.int32)
  width = tf.cast(features[KEY_IMAGE_WIDTH], tf.int32)
  image = tf.io.decode_image(features[KEY_IMAGE], channels=3,
                             expand_animations=False)
  image = tf.reshape(image, [height, width, 3])
  raw_label = features[KEY_LABEL]
  label = tf.cond(
      tf.strings.length(raw_label) > 0,
      lambda: tf.reshape(tf.io.decode_raw(raw_label, tf.int32),
                         [height, width]),
      lambda: tf.fill([height, width], -1))
  return {
      common.IMAGE: image,
      common.PANOPTIC_LABEL: label,
      common.FILENAME: features[KEY_IMAGE_FILENAME],
      common.IMAGE_SIZE: tf.stack([height, width]),
  }
