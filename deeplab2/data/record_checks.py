"""Checks that TFRecord shards fit the descriptor a config reads them with.

Labels are stored as panoptic ids `semantic * label_divisor + instance`; a
descriptor with another label_divisor or class count still trains, on
nonsense targets, without a word. Before a pipeline starts, the first
records of each shard are decoded (the label only) and their ids checked
against the LabelSpec, and every shard's record framing is walked, so that
a truncated shard is named now rather than as a DataLossError at some step.
"""

import re

import numpy as np
import tensorflow as tf

from deeplab2 import label_spec as label_spec_lib
from deeplab2.data import input_pipeline
from deeplab2.data import tfrecord

# Records decoded per shard, and in all.
RECORDS_PER_SHARD = 2
MAX_RECORDS = 64

_LABEL_FEATURES = {
    tfrecord.KEY_IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, ''),
    tfrecord.KEY_LABEL: tf.io.FixedLenFeature([], tf.string, ''),
}


def label_problem(panoptic: np.ndarray,
                  spec: label_spec_lib.LabelSpec) -> str | None:
  """Why panoptic ids cannot have been written with `spec`, or None.

  Args:
    panoptic: int panoptic ids of one label (negative: no label).
    spec: the LabelSpec (label_divisor, num_classes, ignore_label, things).

  Returns:
    A sentence naming the first wrong id and what it decodes to, or None.
  """
  ids = np.unique(panoptic[panoptic >= 0])
  semantic, instance = spec.split(ids)
  known = (semantic < spec.num_classes) | (semantic == spec.ignore_label)
  if not known.all():
    bad = int(ids[~known][0])
    return (f'panoptic id {bad} is class {bad // spec.label_divisor} '
            f'with label_divisor {spec.label_divisor}, outside '
            f'0..{spec.num_classes - 1} and not the ignore label '
            f'{spec.ignore_label}')
  stuff_instance = ((instance != 0) & (semantic != spec.ignore_label) &
                    ~np.asarray(spec.is_thing(semantic), bool))
  if stuff_instance.any():
    bad = int(ids[stuff_instance][0])
    cls, number = spec.split(bad)
    return (f'panoptic id {bad} is instance {number} of class {cls} with '
            f'label_divisor {spec.label_divisor}, but class {cls} is no '
            'thing class')
  return None


def check_records(files: list[str], spec: label_spec_lib.LabelSpec,
                  descriptor: str) -> int:
  """Checks shards against the descriptor they are read with.

  Args:
    files: the TFRecord shards (input_pipeline.list_files).
    spec: the descriptor's LabelSpec.
    descriptor: how the config names the descriptor (for the message).

  Returns:
    The number of records in all the shards.

  Raises:
    ValueError: a shard is truncated, or a record's label does not fit
      `spec`; one line naming the shard, the record and the descriptor.
  """
  total = sum(input_pipeline.count_records(path) for path in files)
  budget = MAX_RECORDS
  for path in files:
    if budget <= 0:
      break
    records = tf.data.TFRecordDataset(path).take(
        min(RECORDS_PER_SHARD, budget))
    for index, record in enumerate(records):
      budget -= 1
      features = tf.io.parse_single_example(record, _LABEL_FEATURES)
      raw = features[tfrecord.KEY_LABEL].numpy()
      if not raw:
        continue      # an unlabelled image (a test split)
      problem = label_problem(np.frombuffer(raw, np.int32), spec)
      if problem:
        name = features[tfrecord.KEY_IMAGE_FILENAME].numpy().decode(
            'utf-8', 'replace')
        raise ValueError(
            f'{path}: record {index} ({name or "no file name"}) does not fit '
            f'the dataset descriptor {descriptor}: {problem}. Were the '
            'records written for another dataset or label_divisor?')
  return total


def find_corrupt_record(files: list[str]) -> str | None:
  """Where the first record that fails TF's checksums is, or None.

  TF's DataLossError ('corrupted record at 12345') names no file; this
  reads every shard once (natively, checksums included) to find it.

  Returns:
    '{shard}: record {index} does not read back ({TF's words}); ...'
    (index counts from 0; the records before it read), or None when every
    record reads.
  """
  for path in files:
    try:
      tf.data.TFRecordDataset(path).reduce(0, lambda count, _: count + 1)
      continue
    except tf.errors.DataLossError as e:
      # TF's own words without its function and op names around them.
      found = re.search(r'corrupted record at \d+', e.message)
      problem = found.group() if found else e.message.splitlines()[0]
    index = 0
    try:
      for _ in tf.data.TFRecordDataset(path):
        index += 1
    except tf.errors.DataLossError:
      pass
    return (f'{path}: record {index} does not read back ({problem}); '
            'the shard is damaged: convert its split again')
  return None
