"""Resize to a range (COCO, Mapillary): sizes as deeplab2, training and
evaluation paths, and evaluation against the original labels."""


import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2.data import augmentation
from deeplab2.data import input_pipeline
from deeplab2.postprocessing import post_processor
from deeplab2.training import evaluator as evaluator_lib
from deeplab2.utils import resize
from conftest import tiny_config_text


@pytest.mark.parametrize('size,min_size,max_size,factor,expected', [
    ((427, 640), 641, 641, 0, (427, 641)),    # COCO: longest side to 641
    ((427, 640), 641, 0, 0, (641, 960)),      # shortest side only
    ((427, 640), 0, 320, 0, (213, 320)),      # longest side only
    ((427, 640), 641, 641, 16, (433, 641)),   # sides of 16 k + 1
    ((1024, 2048), 1025, 2049, 0, (1024, 2049)),
])
def test_target_sizes(size, min_size, max_size, factor, expected):
  got = resize.resize_to_range_size(tf.constant(size), min_size,
                                          max_size, factor)
  assert tuple(got.numpy()) == expected


def _options(data_dir, min_resize, is_training, batch_size=1):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir))
  options = (config.train_dataset_options if is_training
             else config.eval_dataset_options)
  options.min_resize_value[:] = [min_resize]
  options.max_resize_value[:] = [min_resize]
  options.batch_size = batch_size
  parts = config_lib.from_message(config)
  return parts, parts.pipeline_options('train' if is_training else 'eval')


def test_training_resizes_before_the_crop(tiny_dataset_dir):
  import dataclasses  # pylint: disable=g-import-not-at-top
  _, options = _options(tiny_dataset_dir, 25, is_training=True, batch_size=2)
  assert options.resizes and options.min_resize_value == 25
  options = dataclasses.replace(
      options, autoaugment_policy_name='simple_classification_policy')
  batch = next(iter(input_pipeline.make_dataset(options)))
  assert batch[common.IMAGE].shape == (2, 33, 33, 3)


def test_evaluation_scores_predictions_resized_back(tiny_dataset_dir):
  parts, options = _options(tiny_dataset_dir, 17, is_training=False)
  dataset = input_pipeline.make_dataset(options)
  batch = next(iter(dataset))
  assert tuple(batch[common.IMAGE_SIZE].numpy()[0]) == (17, 17)
  assert tuple(batch[common.LABEL_SIZE].numpy()[0]) == (33, 33)
  assert batch[common.PANOPTIC_LABEL].shape == (1, 33, 33)   # original
  model = parts.build_model()
  strategy = tf.distribute.get_strategy()
  evaluator = evaluator_lib.Evaluator(strategy, model,
                                      parts.build_post_processor(),
                                      parts.label_spec)
  metrics = evaluator.evaluate(dataset)
  assert metrics['num_images'] == 4
  assert 0.0 <= metrics['miou'] <= 1.0


def test_resized_evaluation_takes_batches_of_any_size(tiny_dataset_dir):
  parts, options = _options(tiny_dataset_dir, 17, is_training=False,
                            batch_size=3)
  batches = list(input_pipeline.make_dataset(options))
  # 4 images in batches of 3: the last batch is completed by padding.
  assert [b[common.IS_VALID].numpy().tolist() for b in batches] == [
      [True, True, True], [True, False, False]]
  model = parts.build_model()
  strategy = tf.distribute.get_strategy()
  evaluate = evaluator_lib.Evaluator(strategy, model,
                                     parts.build_post_processor(),
                                     parts.label_spec).evaluate
  _, single = _options(tiny_dataset_dir, 17, is_training=False)
  assert evaluate(input_pipeline.make_dataset(options)) == evaluate(
      input_pipeline.make_dataset(single))


def test_a_seeded_training_pipeline_repeats_itself(tiny_dataset_dir):
  import dataclasses  # pylint: disable=g-import-not-at-top
  _, options = _options(tiny_dataset_dir, 0, is_training=True, batch_size=2)
  options = dataclasses.replace(
      options, seed=11, min_scale_factor=0.5, max_scale_factor=2.0,
      scale_factor_step_size=0.25,
      autoaugment_policy_name='simple_classification_policy')

  def first_batches(opts):
    batches = iter(input_pipeline.make_dataset(opts))
    return [next(batches) for _ in range(3)]

  one, two = first_batches(options), first_batches(options)
  other = first_batches(dataclasses.replace(options, seed=12))
  for a, b in zip(one, two):
    for key in (common.IMAGE, common.PANOPTIC_LABEL, common.GT_OFFSET):
      np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
  assert any(not np.array_equal(a[common.IMAGE].numpy(),
                                c[common.IMAGE].numpy())
             for a, c in zip(one, other))
