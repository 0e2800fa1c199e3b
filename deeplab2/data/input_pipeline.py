"""tf.data pipelines: TFRecords -> augmented, batched model inputs + targets.

Batches are dicts keyed by the constants of `deeplab2.common`.
"""

import dataclasses
import glob
import logging

import tensorflow as tf

from deeplab2 import common
from deeplab2.data import augmentation
from deeplab2.data import autoaugment
from deeplab2.data import targets
from deeplab2.data import tfrecord

_log = logging.getLogger('deeplab2')

@dataclasses.dataclass(frozen=True)
class PipelineOptions:
  """Plain values of one dataset's pipeline (built from DatasetOptions).

  Attributes:
    file_patterns: glob patterns of TFRecord shards.
    batch_size: per-replica batch size.
    crop_size: (height, width).
    is_training: augment and shuffle (train) or pad only (eval).
    min_scale_factor, max_scale_factor, scale_factor_step_size: random scale.
    min_resize_value, max_resize_value, resize_factor: resize to a range
      before anything else (0: off); evaluation then scores predictions
      resized back to the original label.
    target_options: targets.TargetOptions.
    flip_probability: of the training left-right flip (0.5, as deeplab2;
      0 never flips, e.g. to compare targets with a reference).
    seed: makes shuffling and augmentation deterministic when set: the
      training stream is then a pure function of the seed and the
      position in it.
    start_batch: (training, with a seed) global batches already read: the
      stream starts where they end, as a resumed run needs.
  """
  file_patterns: tuple
  batch_size: int
  crop_size: tuple
  is_training: bool
  target_options: targets.TargetOptions
  min_scale_factor: float = 1.0
  max_scale_factor: float = 1.0
  scale_factor_step_size: float = 0.0
  min_resize_value: int = 0
  max_resize_value: int = 0
  resize_factor: int = 0
  autoaugment_policy_name: str = ''
  flip_probability: float = 0.5
  seed: int | None = None
  start_batch: int = 0

  @property
  def resizes(self):
    return bool(self.min_resize_value or self.max_resize_value)


def list_files(file_patterns):
  """Expands glob patterns into TFRecord files.

  Raises:
    FileNotFoundError: nothing matches (the message names the patterns).
    ValueError: a matching file is not a TFRecord file (named), e.g. a
      pattern that also catches the descriptor JSON or images.
  """
  files = sorted(f for pattern in file_patterns for f in glob.glob(pattern))
  if not files:
    raise FileNotFoundError(
        f'No TFRecord files match {list(file_patterns)}.')
  for path in files:
    problem = _not_a_tfrecord(path)
    if problem:
      raise ValueError(f'{path} (matched by {list(file_patterns)}) is not a '
                       f'TFRecord file: {problem}.')
  return files


def _crc32c(data):
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
  return crc ^ 0xFFFFFFFF


def _not_a_tfrecord(path):
  """Why the file's first record header is not TFRecord framing, or None.

  A record starts with its length (uint64, little endian) and the masked
  CRC-32C of those 8 bytes; an empty file holds no records.
  """
  try:
    with open(path, 'rb') as f:
      header = f.read(12)
  except OSError as e:
    return f'cannot read it ({e.strerror})'
  if not header:
    return None
  if len(header) < 12:
    return 'shorter than a record header'
  crc = _crc32c(header[:8])
  masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
  if masked != int.from_bytes(header[8:12], 'little'):
    return 'its first record header does not check out'
  return None


def count_records(path):
  """The number of records of a TFRecord file, from their headers alone.

  Raises:
    ValueError: the file ends inside a record (the message names it).
  """
  count = 0
  with tf.io.gfile.GFile(path, 'rb') as f:
    size = f.size()
    while f.tell() < size:
      header = f.read(12)
      end = f.tell() + int.from_bytes(header[:8], 'little') + 4
      if len(header) < 12 or end > size:
        raise ValueError(f'{path} is truncated: its record {count} ends '
                         f'past the end of the file ({size} bytes).')
      f.seek(end)
      count += 1
  return count


def _train_sample(example, seed, options):
  t = options.target_options
  seeds = tf.random.split(seed, 4)
  image = example[common.IMAGE]
  if options.autoaugment_policy_name:
    image = autoaugment.distort(image, options.autoaugment_policy_name,
                                seeds[0])
  image = tf.cast(image, tf.float32)
  label = example[common.PANOPTIC_LABEL]
  if options.resizes:
    image, label = augmentation.resize_to_range(
        image, label, options.min_resize_value, options.max_resize_value,
        options.resize_factor)
  factor = augmentation.random_scale_factor(
      options.min_scale_factor, options.max_scale_factor,
      options.scale_factor_step_size, seeds[1])
  image, label = augmentation.scale(image, label, factor)
  image, label = augmentation.random_pad_and_crop(
      image, label, options.crop_size[0], options.crop_size[1],
      t.label_spec.void_label, seeds[2])
  image, label = augmentation.random_flip(image, label, seeds[3],
                                         options.flip_probability)
  sample = targets.make_targets(label, t)
  sample[common.IMAGE] = tf.ensure_shape(image, list(options.crop_size) + [3])
  sample[common.PANOPTIC_LABEL] = label
  return sample


def _eval_sample(example, options):
  t = options.target_options
  image = tf.cast(example[common.IMAGE], tf.float32)
  original_label = label = example[common.PANOPTIC_LABEL]
  if options.resizes:
    image, label = augmentation.resize_to_range(
        image, label, options.min_resize_value, options.max_resize_value,
        options.resize_factor)
  crop = tf.constant(options.crop_size, tf.int32)
  # One line naming the image: evaluation pads, never crops.
  fits = tf.debugging.Assert(tf.reduce_all(tf.shape(label) <= crop), [
      'eval image', example[common.FILENAME], 'is (height, width)',
      tf.shape(label), ('after the resize, ' if options.resizes else '') +
      'larger than eval_dataset_options.crop_size', crop,
      '; give crop_size at least its size (output_stride * k + 1 per side)'
      ' or resize it with min_resize_value / max_resize_value'])
  with tf.control_dependencies([fits]):
    size = tf.shape(label)
  image, label = augmentation.pad_to_size(
      image, label, options.crop_size[0], options.crop_size[1],
      t.label_spec.void_label)
  sample = targets.make_targets(label, t)
  sample[common.IMAGE] = tf.ensure_shape(image, list(options.crop_size) + [3])
  # With a resize, the metrics use the original label.
  sample[common.PANOPTIC_LABEL] = original_label if options.resizes else label
  sample[common.IMAGE_SIZE] = size
  sample[common.LABEL_SIZE] = tf.shape(original_label)
  sample[common.FILENAME] = example[common.FILENAME]
  return sample


# The map functions are plain TF code: tf.data's AutoGraph conversion of
# them (cached per process) took ~5 s of every process's first pipeline.
_no_autograph = tf.autograph.experimental.do_not_convert


def _shard(dataset, input_context):
  if input_context and input_context.num_input_pipelines > 1:
    return dataset.shard(input_context.num_input_pipelines,
                         input_context.input_pipeline_id)
  return dataset


def _eval_records(files, options, input_context):
  """(serialized example, is_valid) pairs of this input pipeline.

  The records are read in file order and padded with copies of the first
  one (is_valid False) up to a multiple of the global batch, then dealt out
  to the input pipelines: every pipeline gets the same number of full
  batches, and across them every image appears exactly once as valid.
  """
  global_batch = options.batch_size * (
      input_context.num_replicas_in_sync if input_context else 1)
  records = tf.data.TFRecordDataset(files)
  valid = records.map(lambda r: (r, True))
  if global_batch > 1:
    padding = records.take(1).map(lambda r: (r, False)).repeat(
        global_batch - 1)
    valid = valid.concatenate(padding).batch(
        global_batch, drop_remainder=True).unbatch()
  return _shard(valid, input_context)


def _eval_dataset(files, options, input_context):
  def sample(record, is_valid):
    example = _eval_sample(tfrecord.parse_example(record), options)
    example[common.IS_VALID] = is_valid
    return example
  dataset = _eval_records(files, options, input_context).map(
      _no_autograph(sample), num_parallel_calls=tf.data.AUTOTUNE)
  # Resized evaluation keeps original labels of different sizes: they are
  # padded to the largest of the batch (LABEL_SIZE gives each one's size).
  dataset = dataset.padded_batch(options.batch_size, drop_remainder=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _train_dataset(files, options, input_context):
  start = _start_record(options, input_context)
  dataset, seed = _train_records(files, options, input_context, start)
  dataset = dataset.map(_no_autograph(tfrecord.parse_example),
                        num_parallel_calls=tf.data.AUTOTUNE)
  if seed is None:
    seeds = tf.data.Dataset.random().batch(2)   # each run differs
  else:
    # The n-th sample's stateless seed is (seed, n): the augmented stream
    # repeats exactly, from any position.
    seeds = tf.data.Dataset.counter(start).map(
        lambda n: tf.stack([tf.constant(seed, tf.int64), n]))
  dataset = tf.data.Dataset.zip((dataset, seeds)).map(
      _no_autograph(lambda e, s: _train_sample(e, s, options)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
  dataset = dataset.batch(options.batch_size, drop_remainder=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _start_record(options, input_context):
  """The first record of this host's stream: the records its replicas
  read in options.start_batch global batches (0 without a seed: an
  unseeded run is not repeatable anyway)."""
  if options.seed is None or not options.start_batch:
    return 0
  local_replicas = (input_context.num_replicas_in_sync //
                    input_context.num_input_pipelines) if input_context else 1
  return options.start_batch * local_replicas * options.batch_size


# Records shuffled together: tf.data's buffer without a seed, blocks of this
# many with one.
_SHUFFLE_RECORDS = 256


def _seeded_order(count, seed, salt, epoch, index=0):
  """A permutation of range(count) set by (seed, salt, epoch, index) alone.

  Stateless: tf.data's own seeded shuffles would take tensor seeds inside
  the epochs' flat_map, which TF's seed handling refuses when the global
  seed is 0."""
  pair = tf.stack([tf.constant(seed * 4 + salt, tf.int64),
                   tf.cast(epoch, tf.int64) * 1000003 + index])
  return tf.argsort(tf.random.stateless_uniform([count], seed=pair))


def _train_records(files, options, input_context, start=0):
  """This host's endless stream of serialized training records, from its
  `start`-th record on, and the seed of its shuffling and augmentation
  (None: unseeded).

  The stream is a sequence of epochs: epoch e reads this host's share of
  the records once, in an order set by the seed and e alone, so a seeded
  stream can start anywhere by reading at most one epoch."""
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  host = input_context.input_pipeline_id if input_context else 0
  # Whole files per host when there are enough of them, else every host
  # reads all files in one shared order and keeps every n-th record.
  by_file = len(files) >= num_pipelines
  host_files = files[host::num_pipelines] if by_file else files
  seed = options.seed
  if seed is not None and input_context:
    # Each host shuffles and augments its share with its own stream.
    seed += 1000003 * host
  # The hosts sharing records must agree on the file order, seed or not.
  file_seed = seed if by_file else (options.seed or 0)

  def one_epoch(epoch):
    if file_seed is None:
      names = tf.data.Dataset.from_tensor_slices(host_files).shuffle(
          len(host_files))
    else:
      names = tf.data.Dataset.from_tensor_slices(tf.gather(
          host_files, _seeded_order(len(host_files), file_seed, 1, epoch)))
    records = names.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(host_files), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=seed is not None or not by_file)
    if not by_file:
      records = _shard(records, input_context)
    if seed is None:
      return records.shuffle(_SHUFFLE_RECORDS)

    def shuffled(index, block):
      return tf.gather(block, _seeded_order(tf.shape(block)[0], seed, 2,
                                            epoch, index))
    return records.batch(_SHUFFLE_RECORDS).enumerate().map(shuffled).unbatch()

  first_epoch, offset = 0, 0
  if start:
    total = sum(count_records(path) for path in host_files)
    per_epoch = total if by_file else len(range(host, total, num_pipelines))
    if per_epoch == 0:
      raise ValueError(f'{host_files} hold no records.')
    first_epoch, offset = divmod(start, per_epoch)
    _log.info('Input stream resumed at record %d of epoch %d (%d records '
              'per epoch on this host).', offset, first_epoch, per_epoch)
  dataset = tf.data.Dataset.counter(first_epoch).flat_map(one_epoch)
  return dataset.skip(offset), seed


def make_dataset(options, input_context=None):
  """Builds the dataset of one input pipeline (one host).

  Args:
    options: PipelineOptions (batch_size per replica).
    input_context: tf.distribute.InputContext: the host's share and the
      replica count.

  Returns:
    tf.data.Dataset of dicts keyed by deeplab2.common constants, in batches
    of options.batch_size. Training repeats forever. Evaluation runs once
    over full batches: the last global batch is completed with copies of
    the first image whose IS_VALID is False, so every replica gets the same
    number of batches and no image is scored twice.
  """
  files = list_files(options.file_patterns)
  if options.is_training:
    return _train_dataset(files, options, input_context)
  return _eval_dataset(files, options, input_context)
