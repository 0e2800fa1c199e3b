"""The synthetic dataset: deterministic, a fair panoptic test, readable back."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2.cli import messages
from deeplab2.data import build_synthetic
from deeplab2.data import dataset_descriptor
from deeplab2.data import input_pipeline
from deeplab2.data import synthetic
from deeplab2.data import targets
from deeplab2.data import tfrecord
from deeplab2.utils import atomic

DESCRIPTOR = dataset_descriptor.DATASETS.get('synthetic_panoptic')


def _samples(count, seed=0):
  return list(synthetic.generate_split(seed, 'train', count))


def test_deterministic_per_seed_and_independent_of_count():
  first = _samples(5)
  again = _samples(8)[:5]
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
  other = _samples(1, seed=1)[0]
  assert not np.array_equal(first[0][1], other[1])


def test_a_fair_panoptic_problem():
  samples = _samples(40)
  classes, crowd_images, void_images, small, per_image = set(), 0, 0, 0, []
  for _, image, panoptic, segments in samples:
    assert image.dtype == np.uint8 and image.shape == (129, 129, 3)
    semantic = panoptic // synthetic.LABEL_DIVISOR
    classes |= set(np.unique(semantic).tolist())
    crowd_images += any(s['iscrowd'] for s in segments)
    void_images += (semantic == synthetic.IGNORE_LABEL).any()
    things = [s for s in segments if s['category_id'] in
              DESCRIPTOR.thing_class_ids and not s['iscrowd']]
    small += sum(s['area'] < 80 for s in things)
    per_image.append(len(things))
    # Segment areas agree with the label.
    for s in segments:
      label = s['category_id'] * synthetic.LABEL_DIVISOR + s['instance_id']
      assert np.count_nonzero(panoptic == label) == s['area']
  assert {0, 1, 2, 3, 4, 255} <= classes
  assert crowd_images >= 5 and void_images >= 5 and small >= 20
  assert min(per_image) >= 1 and max(per_image) >= 6


def test_touching_instances_exist():
  touching = 0
  for _, _, panoptic, _ in _samples(20):
    instance = panoptic % synthetic.LABEL_DIVISOR
    is_instance = (instance > 0) & (panoptic // synthetic.LABEL_DIVISOR !=
                                    synthetic.IGNORE_LABEL)
    right = is_instance[:, :-1] & is_instance[:, 1:] & (
        panoptic[:, :-1] != panoptic[:, 1:])
    touching += right.any()
  assert touching >= 5


def test_written_records_decode_back(tmp_path):
  paths = build_synthetic.write_synthetic_dataset(
      str(tmp_path), num_train=3, num_val=2, seed=0, num_shards=2,
      image_size=33)
  assert [os.path.basename(p) for p in paths['val']] == [
      'val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  expected = {name + '.png': (image, panoptic) for name, image, panoptic, _ in
              synthetic.generate_split(0, 'val', 2, 33)}
  for record in tf.data.TFRecordDataset(paths['val']):
    example = tfrecord.parse_example(record)
    image, panoptic = expected.pop(example[common.FILENAME].numpy().decode())
    np.testing.assert_array_equal(example[common.IMAGE].numpy(), image)
    np.testing.assert_array_equal(example[common.PANOPTIC_LABEL].numpy(),
                                  panoptic)
  assert not expected
  descriptor = dataset_descriptor.read_json(
      str(tmp_path / dataset_descriptor.DESCRIPTOR_FILENAME))
  assert descriptor.splits_to_sizes == {'train': 3, 'val': 2}
  assert descriptor.thing_class_ids == DESCRIPTOR.thing_class_ids


def test_existing_output_is_not_overwritten(tmp_path):
  build_synthetic.write_synthetic_dataset(str(tmp_path), 2, 1, image_size=33,
                                          num_shards=1)
  before = (tmp_path / 'train-00000-of-00001.tfrecord').read_bytes()
  with pytest.raises(FileExistsError, match=r'already holds split train, val '
                     r'\(2 shard\(s\)\); pass overwrite=True \(--overwrite\) '
                     r'to replace them and dataset_descriptor.json\.$'):
    build_synthetic.write_synthetic_dataset(str(tmp_path), 2, 1, seed=5,
                                            image_size=33, num_shards=1)
  assert (tmp_path / 'train-00000-of-00001.tfrecord').read_bytes() == before
  build_synthetic.write_synthetic_dataset(str(tmp_path), 2, 1, seed=5,
                                          image_size=33, num_shards=1,
                                          overwrite=True)
  assert (tmp_path / 'train-00000-of-00001.tfrecord').read_bytes() != before
  assert not [e for e in os.listdir(tmp_path) if atomic.is_temporary(e)]


def test_training_batches(tiny_dataset_dir):
  options = input_pipeline.PipelineOptions(
      file_patterns=(os.path.join(tiny_dataset_dir, 'train-*.tfrecord'),),
      batch_size=2, crop_size=(33, 33), is_training=True,
      target_options=targets.TargetOptions(DESCRIPTOR.label_spec, sigma=3.0),
      min_scale_factor=0.5, max_scale_factor=2.0, scale_factor_step_size=0.5)
  batch = next(iter(input_pipeline.make_dataset(options)))
  assert batch[common.IMAGE].shape == (2, 33, 33, 3)
  assert batch[common.GT_OFFSET].shape == (2, 33, 33, 2)
  semantic = batch[common.GT_SEMANTIC].numpy()
  label = batch[common.PANOPTIC_LABEL].numpy()
  np.testing.assert_array_equal(semantic, label // 1000)


def test_an_eval_image_larger_than_the_crop_is_named(tmp_path):
  build_synthetic.write_synthetic_dataset(str(tmp_path), 0, 1, seed=5,
                                          image_size=49, num_shards=1)
  options = input_pipeline.PipelineOptions(
      file_patterns=(str(tmp_path / 'val-*.tfrecord'),), batch_size=1,
      crop_size=(33, 65), is_training=False,
      target_options=targets.TargetOptions(DESCRIPTOR.label_spec))
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    next(iter(input_pipeline.make_dataset(options)))
  # train.py's error line.
  assert messages.op_error_line(error.value) == (
      "InvalidArgumentError: assertion failed: [eval image] [synthetic_val_000000.png] [is (height, "
      "width)] [49 49] [larger than eval_dataset_options.crop_size] [33 65] "
      "[; give crop_size at least its size (output_stride * k + 1 per side) "
      "or resize it with min_resize_value / max_resize_value]")


def test_missing_files_name_the_pattern():
  options = input_pipeline.PipelineOptions(
      file_patterns=('/nonexistent/train-*.tfrecord',), batch_size=1,
      crop_size=(33, 33), is_training=False,
      target_options=targets.TargetOptions(DESCRIPTOR.label_spec))
  with pytest.raises(FileNotFoundError,
                     match=r"No TFRecord files match \['/nonexistent/train-"):
    input_pipeline.make_dataset(options)


def test_same_arguments_give_the_same_bytes(tmp_path):
  for name in ('a', 'b'):
    build_synthetic.write_synthetic_dataset(str(tmp_path / name), 3, 1,
                                            image_size=33, num_shards=1)
  for filename in ('train-00000-of-00001.tfrecord',
                   'val-00000-of-00001.tfrecord', 'dataset_descriptor.json'):
    assert ((tmp_path / 'a' / filename).read_bytes() ==
            (tmp_path / 'b' / filename).read_bytes())


@pytest.mark.parametrize('seed', [None, 5])
def test_hosts_with_fewer_files_than_hosts_share_out_the_records(
    tiny_dataset_dir, seed):
  files = input_pipeline.list_files(
      [os.path.join(tiny_dataset_dir, 'train-*.tfrecord')])
  assert len(files) == 2                      # 8 records, 3 hosts
  options = input_pipeline.PipelineOptions(
      file_patterns=(), batch_size=1, crop_size=(33, 33), is_training=True,
      target_options=targets.TargetOptions(DESCRIPTOR.label_spec, sigma=3.0),
      seed=seed)
  seen = []
  for host, count in ((0, 3), (1, 3), (2, 2)):
    context = tf.distribute.InputContext(num_input_pipelines=3,
                                         input_pipeline_id=host,
                                         num_replicas_in_sync=3)
    records, _ = input_pipeline._train_records(files, options, context)  # pylint: disable=protected-access
    seen += [tfrecord.parse_example(r)[common.FILENAME].numpy()
             for r in records.take(count)]
  assert len(seen) == len(set(seen)) == 8     # one epoch: each record once
