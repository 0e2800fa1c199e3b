"""keep_best_checkpoint: the best evaluated checkpoint of model_dir kept in
model_dir/best, beside the last num_checkpoints_to_keep, and out of their
way (never deleted by them, never resumed)."""

import json
import logging
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from deeplab2 import config as config_lib
from deeplab2 import label_spec as label_spec_lib
from deeplab2.evaluation import metric_names
from deeplab2.evaluation import metric_set
from deeplab2.serving import export
from deeplab2.training import best_checkpoint
from deeplab2.training import experiment
from deeplab2.training import modes
from deeplab2.utils import checkpoints
from conftest import save_checkpoints_at, tiny_config_text


def _config_text(data_dir, steps=6, **trainer_options):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir, steps))
  for name, value in trainer_options.items():
    setattr(config.trainer_options, name, value)
  return text_format.MessageToString(config)


@pytest.fixture(scope='module')
def saved(tiny_dataset_dir, tmp_path_factory):
  """(config path, a model_dir with ckpt-2, ckpt-4 and ckpt-6)."""
  root = tmp_path_factory.mktemp('best')
  config_path = root / 'config.textproto'
  config_path.write_text(_config_text(tiny_dataset_dir))
  model_dir = str(root / 'model')
  save_checkpoints_at(str(config_path), model_dir, (2, 4, 6))
  return str(config_path), model_dir


@pytest.fixture()
def model_dir(saved, tmp_path):
  """A copy of the saved model_dir, for one test to change."""
  copy = str(tmp_path / 'model')
  shutil.copytree(saved[1], copy)
  return copy


def _keep(model_dir, step, value, metric='pq_all'):
  return best_checkpoint.keep_if_best(
      model_dir, os.path.join(model_dir, f'ckpt-{step}'), step,
      {metric: value, 'num_images': 4}, metric)


def _record(model_dir):
  with open(os.path.join(model_dir, 'best', 'best.json')) as f:
    return json.load(f)


def _messages(caplog):
  return [r.getMessage() for r in caplog.records if r.name == 'deeplab2']


def test_metric_names_are_the_scalar_metrics_evaluation_reports():
  spec = label_spec_lib.LabelSpec(num_classes=3, ignore_label=255,
                                  label_divisor=1000, thing_class_ids=(2,))
  label = np.array([[0, 1], [2001, 2002]])
  for with_mask_ap in (False, True):
    metrics = metric_set.MetricSet(spec, with_mask_ap)
    metrics.update(label, label, label // 1000, {2001: 0.9, 2002: 0.8})
    scalars = {k for k, v in metrics.result().items()
               if isinstance(v, float)}
    assert scalars == set(metric_names.quality_metrics(with_mask_ap))


def test_a_better_evaluation_replaces_the_best_and_a_worse_one_does_not(
    model_dir, caplog):
  best = os.path.join(model_dir, 'best')
  with caplog.at_level(logging.INFO, logger='deeplab2'):
    assert _keep(model_dir, 2, 0.5) == best_checkpoint.Best(
        'pq_all', 0.5, 2, 'best/ckpt-2')
    assert _keep(model_dir, 4, 0.4) is None          # worse
    assert _keep(model_dir, 4, 0.5) is None          # equal: not above
    assert _record(model_dir)['step'] == 2
    assert _keep(model_dir, 6, 0.6).step == 6
  assert _messages(caplog) == [
      f'new best pq_all 0.5000 at step 2 (the first): kept as {best}/ckpt-2',
      f'pq_all 0.4000 at step 4 is not above the best 0.5000 at step 2; '
      f'the best stays {best}/ckpt-2.',
      f'pq_all 0.5000 at step 4 is not above the best 0.5000 at step 2; '
      f'the best stays {best}/ckpt-2.',
      f'new best pq_all 0.6000 at step 6 (was 0.5000 at step 2): kept as '
      f'{best}/ckpt-6']
  assert _record(model_dir) == {'metric': 'pq_all', 'value': 0.6, 'step': 6,
                                'checkpoint': 'best/ckpt-6'}
  # Only the new best's files, a state file naming it, nothing staged.
  assert sorted(os.listdir(best)) == [
      'best.json', 'checkpoint', 'ckpt-6.data-00000-of-00001',
      'ckpt-6.index']
  assert tf.train.latest_checkpoint(best) == os.path.join(best, 'ckpt-6')
  assert checkpoints.training_step(os.path.join(best, 'ckpt-6')) == 6
  assert not [e for e in os.listdir(model_dir) if e.startswith('.')]
  # The copy is the checkpoint, byte for byte.
  for suffix in ('.index', '.data-00000-of-00001'):
    with open(os.path.join(model_dir, 'ckpt-6' + suffix), 'rb') as f, open(
        os.path.join(best, 'ckpt-6' + suffix), 'rb') as g:
      assert f.read() == g.read()
  # Another metric starts over: its first value is the best.
  assert _keep(model_dir, 4, 0.1, metric='miou').step == 4
  assert _record(model_dir)['metric'] == 'miou'


@pytest.mark.parametrize('bad', [math.nan, -1.0, math.inf, None])
def test_nan_or_an_undefined_value_is_never_the_best(model_dir, bad):
  assert _keep(model_dir, 2, bad) is None
  assert not os.path.exists(os.path.join(model_dir, 'best'))
  assert _keep(model_dir, 4, 0.0).step == 4     # 0 is a value
  assert _keep(model_dir, 6, bad) is None
  assert _record(model_dir)['step'] == 4


def test_weights_that_are_no_checkpoint_of_model_dir_are_not_kept(
    model_dir, tmp_path, caplog):
  elsewhere = str(tmp_path / 'elsewhere')
  os.makedirs(elsewhere)
  for name in os.listdir(model_dir):
    if name.startswith('ckpt-2.'):
      shutil.copy(os.path.join(model_dir, name), elsewhere)
  outside = os.path.join(elsewhere, 'ckpt-2')
  metrics = {'pq_all': 0.9}
  with caplog.at_level(logging.INFO, logger='deeplab2'):
    assert best_checkpoint.keep_if_best(model_dir, outside, 2, metrics,
                                        'pq_all') is None
    assert best_checkpoint.keep_if_best(model_dir, None, 3, metrics,
                                        'pq_all') is None
    assert _keep(model_dir, 2, 0.5).step == 2
    # The best itself, evaluated again, is no new best.
    kept = os.path.join(model_dir, 'best', 'ckpt-2')
    assert best_checkpoint.keep_if_best(model_dir, kept, 2, metrics,
                                        'pq_all') is None
  assert _messages(caplog)[:2] == [
      f'keep_best_checkpoint: the weights evaluated at step 2 are {outside}, '
      f'not a checkpoint of {model_dir}; not kept as the best.',
      'keep_best_checkpoint: the weights evaluated at step 3 are not a saved '
      'checkpoint; not kept as the best.']
  assert _record(model_dir)['value'] == 0.5


def test_a_checkpoint_deleted_before_its_copy_leaves_the_best(model_dir,
                                                              caplog):
  _keep(model_dir, 2, 0.5)
  os.remove(os.path.join(model_dir, 'ckpt-4.data-00000-of-00001'))
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    assert _keep(model_dir, 4, 0.7) is None
  assert 'could not keep' in caplog.text and 'the best stays' in caplog.text
  assert _record(model_dir)['step'] == 2
  assert tf.train.latest_checkpoint(os.path.join(model_dir, 'best')).endswith(
      'ckpt-2')
  assert not [e for e in os.listdir(model_dir) if e.startswith('.')]


def test_old_checkpoints_go_but_the_best_stays_and_is_never_resumed(
    tiny_dataset_dir, tmp_path):
  config_path = tmp_path / 'config.textproto'
  config_path.write_text(_config_text(
      tiny_dataset_dir, steps=10, num_checkpoints_to_keep=2,
      keep_best_checkpoint=True))
  model_dir = str(tmp_path / 'model')
  run = experiment.Experiment(str(config_path), model_dir)
  first = run.model.weights[0]
  for step in (2, 4, 6, 8):
    # Each checkpoint tells itself apart by its first weight.
    first.assign(tf.fill(first.shape, float(step)))
    run.optimizer.iterations.assign(step)
    path = run.checkpoints.save(step)
    if step == 2:
      # What evaluate() calls: the weights are the checkpoint just saved.
      assert run.checkpoints.current() == path
      best_checkpoint.keep_if_best(model_dir, run.checkpoints.current(),
                                   step, {'pq_all': 0.5}, 'pq_all')
  best = os.path.join(model_dir, 'best')
  # num_checkpoints_to_keep deleted ckpt-2 and ckpt-4, not the copy.
  assert sorted(e for e in os.listdir(model_dir) if e.endswith('.index')) == [
      'ckpt-6.index', 'ckpt-8.index']
  assert checkpoints.damaged_files(os.path.join(best, 'ckpt-2')) is None
  # Resume and continuous_eval take model_dir's newest, with the state file
  # and without it (by step).
  newest = os.path.join(model_dir, 'ckpt-8')
  assert checkpoints.newest_first(model_dir)[0] == newest
  assert next(checkpoints.new_checkpoints(model_dir, timeout=0)) == newest
  run.optimizer.iterations.assign(0)
  assert run.restore() == newest and run.global_step == 8
  assert np.all(first.numpy() == 8)
  os.remove(os.path.join(model_dir, 'checkpoint'))
  assert checkpoints.newest_first(model_dir, warn=False) == [
      newest, os.path.join(model_dir, 'ckpt-6')]
  # export.py's --checkpoint_path (and Predictor.from_experiment) take
  # model_dir/best as a model_dir: its state file names the copy.
  model = export.restored_model(run.parts, best)
  assert np.all(model.weights[0].numpy() == 2)


def test_train_and_eval_keeps_the_best_evaluated_checkpoint(
    tiny_dataset_dir, tmp_path, caplog):
  config = config_lib.parse_experiment_text(_config_text(
      tiny_dataset_dir, steps=4, keep_best_checkpoint=True,
      best_checkpoint_metric='miou', num_checkpoints_to_keep=1))
  config.evaluator_options.eval_interval = 2
  config_path = tmp_path / 'config.textproto'
  config_path.write_text(text_format.MessageToString(config))
  model_dir = str(tmp_path / 'model')
  with caplog.at_level(logging.INFO, logger='deeplab2'):
    modes.run('train_and_eval', str(config_path), model_dir)
  values = {}
  for step in (2, 4):
    with open(experiment.metrics_path(model_dir, step)) as f:
      values[step] = json.load(f)['miou']
  # The first of the highest (a tie keeps the earlier one).
  step = 4 if values[4] > values[2] else 2
  assert _record(model_dir) == {'metric': 'miou', 'value': values[step],
                                'step': step,
                                'checkpoint': f'best/ckpt-{step}'}
  best = os.path.join(model_dir, 'best')
  assert (f'new best miou {values[2]:.4f} at step 2 (the first): kept as '
          f'{best}/ckpt-2') in _messages(caplog)
  assert tf.train.latest_checkpoint(best) == os.path.join(best,
                                                          f'ckpt-{step}')
  assert checkpoints.training_step(os.path.join(best, f'ckpt-{step}')) == step
  # num_checkpoints_to_keep 1: model_dir keeps ckpt-4 only, beside the
  # best.
  assert checkpoints.newest_first(model_dir) == [
      os.path.join(model_dir, 'ckpt-4')]
