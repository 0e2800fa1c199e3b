"""The TFRecord schema (deeplab2's feature keys) and sharded writing.

Panoptic labels are stored as raw little-endian int32 bytes
(`image/segmentation/class/format` = "raw"), one value per pixel:
`semantic * label_divisor + instance`.
"""

import contextlib
import errno
import io
import os
import re

import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab2 import common
from deeplab2.utils import atomic


KEY_IMAGE = 'image/encoded'
KEY_IMAGE_FILENAME = 'image/filename'
KEY_IMAGE_FORMAT = 'image/format'
KEY_IMAGE_HEIGHT = 'image/height'
KEY_IMAGE_WIDTH = 'image/width'
KEY_IMAGE_CHANNELS = 'image/channels'
KEY_LABEL = 'image/segmentation/class/encoded'
KEY_LABEL_FORMAT = 'image/segmentation/class/format'

LABEL_FORMAT_RAW = 'raw'


def encode_png(image: np.ndarray) -> bytes:
  """uint8 [H, W, 3] -> PNG bytes."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def make_example(image_bytes: bytes, image_format: str, height: int,
                 width: int, filename: str,
                 panoptic_label: np.ndarray | None) -> tf.train.Example:
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


def shard_paths(output_dir: str, split: str, num_shards: int) -> list[str]:
  """The final paths of a split's shards: `<split>-00000-of-00004.tfrecord`."""
  return [os.path.join(output_dir, f'{split}-{i:05d}-of-{num_shards:05d}'
                       '.tfrecord') for i in range(num_shards)]


_SHARD_NAME = re.compile(r'(?P<split>.+)-\d{5,}-of-\d{5,}\.tfrecord')


def shard_split(path: str) -> str | None:
  """The split of a shard path written by shard_paths, or None."""
  match = _SHARD_NAME.fullmatch(os.path.basename(path))
  return match.group('split') if match else None


_ERRNO = {
    'ResourceExhaustedError': errno.ENOSPC,
    'PermissionDeniedError': errno.EACCES,
    'NotFoundError': errno.ENOENT,
}


def _os_error(error: Exception, path: str) -> OSError:
  """An OSError (errno, reason, path) for a TF file error or an OSError."""
  if isinstance(error, OSError):
    number = error.errno or errno.EIO
    reason = error.strerror or str(error)
  else:
    number = _ERRNO.get(type(error).__name__, errno.EIO)
    message = getattr(error, 'message', str(error))
    # TF raises ResourceExhaustedError for these too, not only a full disk.
    for limit in (errno.EMFILE, errno.ENFILE):
      if message.endswith(os.strerror(limit)):
        number = limit
    reason = os.strerror(number) if number != errno.EIO else message
  return OSError(number, reason, path)


@contextlib.contextmanager
def _file_errors(path):
  """Raises TF's and Python's file errors as OSError naming `path`."""
  try:
    yield
  except (tf.errors.OpError, OSError) as e:
    raise _os_error(e, path) from e


class ShardedWriter:
  """Writes examples round-robin into shards under temporary names.

  Each shard is written under a unique hidden name beside it
  (`.<shard>.tmp-<host>-<pid>-<tag>`, atomic.sibling_path) and gets its
  final name only in `commit()`, after it is synced to disk: an interrupted
  conversion never leaves files that look complete, and two writers never
  share a temporary file. Use as a context manager: leaving the block with
  an exception deletes the temporary files, even when closing them fails (a
  full disk). Temporary shards that killed writers left beside the same
  shard names are removed first (atomic.recover_stale).

  Every file error (TensorFlow's or Python's) is raised as an OSError
  (errno, reason, path) naming the shard.
  """

  def __init__(self, output_dir: str, split: str, num_shards: int):
    """Opens the temporary shards.

    Args:
      output_dir: an existing folder.
      split: the split name, the shards' prefix.
      num_shards: number of shard files, >= 1.

    Raises:
      ValueError: num_shards < 1.
      OSError: a shard cannot be opened (nothing is left on disk).
    """
    if num_shards < 1:
      raise ValueError(f'num_shards={num_shards}: a split needs 1 shard or '
                       'more.')
    self._folder = output_dir
    self._final_paths = shard_paths(output_dir, split, num_shards)
    self._tmp_paths = [atomic.sibling_path(p) for p in self._final_paths]
    self._writers = []
    self._renamed = []
    self._count = 0
    try:
      for final, path in zip(self._final_paths, self._tmp_paths):
        atomic.recover_stale(final)
        with _file_errors(path):
          self._writers.append(tf.io.TFRecordWriter(path))
    except BaseException:
      self.abort()
      raise

  @property
  def paths(self) -> list[str]:
    """The final shard paths (they exist after `commit()`)."""
    return list(self._final_paths)

  def write(self, example: tf.train.Example) -> None:
    """Appends `example` to the next shard (round-robin)."""
    index = self._count % len(self._writers)
    with _file_errors(self._tmp_paths[index]):
      self._writers[index].write(example.SerializeToString(deterministic=True))
    self._count += 1

  def commit(self) -> int:
    """Closes and syncs the shards and gives them their final names.

    Returns:
      the number of examples written.

    Raises:
      OSError: closing, syncing or renaming failed; the temporary files
        (and the shards already renamed) are gone.
    """
    try:
      for writer, path in zip(self._writers, self._tmp_paths):
        with _file_errors(path):
          writer.close()
      self._writers = []
      for path in self._tmp_paths:
        with _file_errors(path):
          atomic.fsync_file(path)
      for tmp, final in zip(self._tmp_paths, self._final_paths):
        with _file_errors(final):
          os.replace(tmp, final)
        self._renamed.append(final)
    except BaseException:
      self.abort()
      raise
    self._renamed = []   # committed: abort() no longer deletes them
    with contextlib.suppress(OSError):   # some file systems refuse it
      atomic.fsync_folder(self._folder)
    return self._count

  def abort(self) -> None:
    """Closes and deletes the files; never raises an OSError.

    Close errors (the data cannot be flushed to a full disk) are ignored:
    the files go anyway, with the shards a failed commit() had renamed.
    Files that cannot be deleted are logged.
    """
    writers, self._writers = self._writers, []
    for writer in writers:
      try:
        writer.close()
      except (tf.errors.OpError, OSError):
        pass
    del writers
    for path in self._tmp_paths + self._renamed:
      atomic.remove(path)

  def __enter__(self) -> 'ShardedWriter':
    return self

  def __exit__(self, exc_type, exc, tb) -> bool:
    if exc_type is not None:
      self.abort()
    return False


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
  """Encoded image bytes (string scalar) -> uint8 [H, W, 3].

  JPEG takes the accurate integer inverse DCT, the one of PIL, OpenCV and
  libjpeg's own default: TF's default (the fast one) gives pixels up to
  about 10 levels off on most of an image, and evaluation would then score
  other inputs than the Predictor and infer.py (which read with PIL) serve.
  deeplab2 decodes with TF's default (docs/deeplab2_differences.md).
  """
  return tf.cond(
      tf.io.is_jpeg(encoded),
      lambda: tf.io.decode_jpeg(encoded, channels=3,
                                dct_method='INTEGER_ACCURATE'),
      lambda: tf.io.decode_image(encoded, channels=3,
                                 expand_animations=False))


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
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
  image = tf.reshape(decode_image(features[KEY_IMAGE]), [height, width, 3])
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
