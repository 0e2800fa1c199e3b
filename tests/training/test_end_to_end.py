"""A tiny train -> eval -> export -> reload round trip, and resumption."""

import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

from deeplab2.cli import train
from deeplab2.serving import export
from deeplab2.training import experiment
from deeplab2.training import modes
import cli_runner
from conftest import REPO_ROOT, tiny_config_text

# Serves an image, then lists the SavedModel with TensorFlow's own
# saved_model_cli (`saved_model_cli show --all --dir DIR`), in one process.
_RELOAD_SCRIPT = """
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
image = np.load(sys.argv[2])
outputs = loaded.signatures['serving_default'](image=tf.constant(image))
assert not any(m.startswith('deeplab2') for m in sys.modules), 'imported us'
np.savez(sys.argv[3], **{k: v.numpy() for k, v in outputs.items()})
from tensorflow.python.tools import saved_model_cli
sys.argv = ['saved_model_cli', 'show', '--all', '--dir', sys.argv[1]]
saved_model_cli.main()
"""


def _checkpoint_steps(model_dir):
  return sorted(int(p.split('-')[-1].split('.')[0])
                for p in glob.glob(os.path.join(model_dir, 'ckpt-*.index')))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_dataset_dir):
  root = tmp_path_factory.mktemp('e2e')
  config_path = root / 'tiny.textproto'
  config_path.write_text(tiny_config_text(tiny_dataset_dir, steps=6))
  model_dir = str(root / 'model')
  metrics = modes.run('train_and_eval', str(config_path), model_dir)
  return str(config_path), model_dir, metrics


def test_train_and_eval_writes_checkpoints_summaries_and_metrics(trained):
  _, model_dir, metrics = trained
  assert _checkpoint_steps(model_dir) == [2, 4, 6]
  for key in ('pq_all', 'sq_all', 'rq_all', 'pq_things', 'pq_stuff', 'miou'):
    assert 0.0 <= metrics[key] <= 1.0
  assert metrics['num_images'] == 4
  with open(experiment.metrics_path(model_dir, 6)) as f:
    saved = json.load(f)
  assert saved['step'] == 6 and saved['pq_all'] == metrics['pq_all']
  train_tags, eval_tags = (_summary_tags(os.path.join(model_dir, split))
                           for split in ('train', 'eval'))
  assert {'losses/total_loss', 'losses/semantic_loss', 'losses/center_loss',
          'losses/regression_loss', 'learning_rate',
          'steps_per_second'} <= train_tags
  assert {'eval/pq_all', 'eval/sq_things', 'eval/rq_stuff', 'eval/miou',
          'eval/num_images'} <= eval_tags
  for picture in ('image', 'panoptic', 'ground_truth', 'center_heatmap',
                  'offset_map'):
    assert f'eval_images/0/{picture}' in eval_tags
    assert f'eval_images/3/{picture}' in eval_tags
  for name in ('wall', 'floor', 'disc', 'box', 'triangle'):
    assert f'eval_per_class/pq/{name}' in eval_tags
    assert f'eval_per_class/iou/{name}' in eval_tags
  assert 'config' in train_tags
  # The pictures left in model_dir.
  for path in (os.path.join(model_dir, 'curves.png'),
               os.path.join(model_dir, 'eval', 'confusion-00000006.png')):
    picture = np.asarray(Image.open(path).convert('RGB'))
    assert picture.shape[0] > 100 and picture.shape[1] > 100, path
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 5, path
  for picture in ('image', 'panoptic', 'center_heatmap', 'offsets'):
    assert f'train_inputs/0/{picture}' in train_tags
    assert f'train_inputs/1/{picture}' in train_tags


def _summary_tags(directory):
  tags = set()
  for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  return tags


def test_a_finished_run_trains_no_more(trained):
  config_path, model_dir, _ = trained
  before = {p: os.path.getmtime(p)
            for p in glob.glob(os.path.join(model_dir, 'ckpt-*'))}
  modes.run('train', config_path, model_dir)
  after = {p: os.path.getmtime(p)
           for p in glob.glob(os.path.join(model_dir, 'ckpt-*'))}
  assert before == after
  trained_metrics = trained[2]
  metrics = modes.run('eval', config_path, model_dir)
  assert metrics['num_images'] == 4
  # A fresh process state restored from the checkpoint scores exactly as the
  # weights in memory did: every weight was saved.
  assert metrics['miou'] == trained_metrics['miou']
  assert metrics['per_class_iou'] == trained_metrics['per_class_iou']


def test_continuous_eval_stops_after_the_last_checkpoint(trained):
  config_path, model_dir, _ = trained
  metrics = modes.run('continuous_eval', config_path, model_dir)
  assert metrics['num_images'] == 4


def test_export_serves_without_our_package(trained, tmp_path):
  config_path, model_dir, _ = trained
  export_dir = str(tmp_path / 'export')
  export.export_from_config(config_path, model_dir, export_dir)
  with pytest.raises(FileExistsError, match='exists; pass overwrite=True'):
    export.export_from_config(config_path, model_dir, export_dir)

  image = np.random.default_rng(0).integers(0, 256, (37, 29, 3), np.uint8)
  np.save(tmp_path / 'image.npy', image)
  listing = subprocess.run(
      [sys.executable, '-c', _RELOAD_SCRIPT, export_dir,
       str(tmp_path / 'image.npy'), str(tmp_path / 'out.npz')],
      check=True, cwd=str(tmp_path), env={**os.environ, 'PYTHONPATH': ''},
      capture_output=True, text=True).stdout
  served = np.load(tmp_path / 'out.npz')
  for key in ('panoptic_pred', 'semantic_pred', 'instance_pred'):
    assert served[key].shape == (37, 29) and served[key].dtype == np.int32
  assert served['center_heatmap'].shape == (37, 29)
  assert served['offset_map'].shape == (37, 29, 2)

  # The same numbers as the in-process module.
  loaded = tf.saved_model.load(export_dir)
  local = loaded.signatures['serving_default'](image=tf.constant(image))
  np.testing.assert_array_equal(local['panoptic_pred'].numpy(),
                                served['panoptic_pred'])

  assert "signature_def['serving_default']" in listing
  assert 'panoptic_pred' in listing


def test_command_line_reports_config_errors(tmp_path, capsys):
  bad = tmp_path / 'bad.textproto'
  bad.write_text('model_options { backbon { name: "resnet50" } }\n')
  result = cli_runner.run_main(
      train.main, [f'--config_file={bad}', '--mode=train',
                   f'--model_dir={tmp_path}/m'], capsys)
  assert result.returncode != 0
  assert 'bad.textproto:1: backbon: unknown field "backbon"' in result.stderr


def test_a_killed_run_resumes_from_its_last_checkpoint(tiny_dataset_dir,
                                                       tmp_path):
  """SIGKILL the command line mid-run, then run it again."""
  config_path = tmp_path / 'long.textproto'
  config_path.write_text(tiny_config_text(tiny_dataset_dir, steps=400))
  model_dir = tmp_path / 'model'
  command = [sys.executable, os.path.join(REPO_ROOT, 'trainer', 'train.py'),
             f'--config_file={config_path}', '--mode=train',
             f'--model_dir={model_dir}']
  log_path = tmp_path / 'train.log'
  with open(log_path, 'w') as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
      deadline = time.time() + 300
      # The `checkpoint` state file, written after ckpt-N.index: polling the
      # index could kill the run between the two.
      while (tf.train.latest_checkpoint(str(model_dir)) is None
             and process.poll() is None and time.time() < deadline):
        time.sleep(0.2)
    finally:
      process.kill()
      process.wait()
  killed_at = tf.train.latest_checkpoint(str(model_dir))
  assert killed_at is not None, (
      'no checkpoint before the kill; the run printed:\n'
      + log_path.read_text()[-3000:])
  step_at_kill = int(killed_at.rsplit('-', 1)[1])
  assert step_at_kill < 400, 'the run finished before it was killed'
  resumed = experiment.Experiment(str(config_path), str(model_dir))
  assert resumed.restore() == killed_at
  assert resumed.global_step == step_at_kill
