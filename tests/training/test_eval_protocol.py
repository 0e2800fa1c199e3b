"""The paper's evaluation protocol end to end: test-time augmentation in
train_and_eval, mask AP, the per-class table, and prediction files that
cityscapesScripts scores as we do."""

import json
import logging
import os

from google.protobuf import text_format
import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2 import inference
from deeplab2.data import cityscapes
from deeplab2.data import conversion
from deeplab2.training import experiment
from deeplab2.training import modes
from deeplab2.training import prediction_staging

import cityscapes_official
from conftest import tiny_config_text


def _write_config(path, text, edit):
  config = config_lib.parse_experiment_text(text)
  edit(config)
  path.write_text(text_format.MessageToString(config))
  return str(path)


def test_two_scale_flipped_eval_runs_through_train_and_eval(
    tiny_dataset_dir, tmp_path, caplog):
  def edit(config):
    evaluator = config.evaluator_options
    evaluator.eval_scales[:] = [0.75, 1.25]
    evaluator.add_flipped_images = True
    evaluator.save_predictions = True
  config_path = _write_config(tmp_path / 'tta.textproto',
                              tiny_config_text(tiny_dataset_dir, steps=2),
                              edit)
  model_dir = tmp_path / 'model'
  with caplog.at_level(logging.INFO, logger='deeplab2'):
    metrics = modes.run('train_and_eval', config_path, str(model_dir))
  assert metrics['num_images'] == 4
  for key in ('pq_all', 'miou', 'ap', 'ap50', 'ap75', 'ap_small'):
    assert key in metrics
  with open(experiment.metrics_path(str(model_dir), 2)) as f:
    saved = json.load(f)
  assert saved['ap'] == metrics['ap'] and 'per_class' in saved
  assert 'per_class_iou' in saved and 'per_class_ap' in saved
  # The per-class table is logged, headed as the stand-alone evaluator's.
  tables = [r.getMessage() for r in caplog.records
            if r.getMessage().startswith('per class:')]
  assert len(tables) == 1 and ' PQ ' in tables[0].splitlines()[1]
  predictions = prediction_staging.predictions_path(str(model_dir), 2)
  with open(os.path.join(predictions, 'panoptic.json')) as f:
    written = json.load(f)
  assert len(written['annotations']) == 4
  assert len(os.listdir(os.path.join(predictions, 'panoptic'))) == 4
  # Evaluating the same step again: the options reach the evaluator's
  # forward pass, and the first predictions are kept.
  again = experiment.Experiment(config_path, str(model_dir))
  again.restore()
  again.evaluate()
  evaluator = again._evaluator  # pylint: disable=protected-access
  assert evaluator.tta == inference.TestTimeAugmentation((0.75, 1.25), True)
  images = tf.random.uniform([1, 33, 33, 3], 0, 255, seed=5)
  augmented = evaluator._predict(images)  # pylint: disable=protected-access
  plain = again.model(images, training=False)
  assert not np.allclose(augmented['center_heatmap'].numpy(),
                         plain['center_heatmap'].numpy())
  assert sorted(name for name in os.listdir(os.path.dirname(predictions))
                if name.startswith('predictions-')) == [
                    'predictions-00000002', 'predictions-00000002-2']


@pytest.fixture(scope='module')
def cityscapes_records(tmp_path_factory):
  """The Cityscapes sample (800 x 800) as val TFRecords, and its gtFine
  files for cityscapesScripts."""
  root = tmp_path_factory.mktemp('cityscapes')
  cityscapes_official.copy_sample_as_val(root)
  records = str(root / 'records')
  conversion.convert_dataset(lambda split: cityscapes.find_split(root, split),
                             ['val'], records, num_shards=1)
  cityscapes_official.write_ground_truth(root, shrink=1)
  return root, records


def test_cityscapes_predictions_of_a_tiny_model_score_the_same_officially(
    cityscapes_records, tmp_path, monkeypatch):
  root, records = cityscapes_records

  def edit(config):
    config.seed = 3
    config.model_options.panoptic_deeplab.semantic_head.output_channels = 19
    config.evaluator_options.save_predictions = True
    config.evaluator_options.center_score_threshold = 0.0
    for options, crop in ((config.train_dataset_options, 33),
                          (config.eval_dataset_options, 801)):
      options.dataset = 'cityscapes_panoptic'
      options.file_pattern[:] = [os.path.join(records, 'val-*.tfrecord')]
      options.crop_size[:] = [crop, crop]
      options.batch_size = 1
  config_path = _write_config(tmp_path / 'cityscapes.textproto',
                              tiny_config_text('/unused'), edit)
  model_dir = str(tmp_path / 'model')
  run = experiment.Experiment(config_path, model_dir)
  metrics, _ = run.evaluate()
  predictions = prediction_staging.predictions_path(model_dir, 0)
  official = cityscapes_official.evaluate(
      root, tmp_path.__class__(predictions), tmp_path, monkeypatch)
  assert official['pq'] == pytest.approx(metrics['pq_all'], abs=1e-9)
  assert official['miou'] == pytest.approx(metrics['miou'], abs=1e-9)
  assert 0.0 < metrics['miou'] < 1.0
  assert 0.0 <= official['ap'] <= 1.0
