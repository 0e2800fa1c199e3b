"""Two worker processes under MultiWorkerMirroredStrategy, continuous_eval
beside a training process, the strategy flags, and a seeded run repeating
itself."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
from google.protobuf import text_format

from deeplab2 import config as config_lib
from deeplab2.cli import train
from deeplab2.data import build_synthetic
from deeplab2.training import distribution
from deeplab2.training import experiment
from deeplab2.training import modes
from deeplab2.training import prediction_staging
import cli_runner
from conftest import REPO_ROOT, save_checkpoints_at, tiny_config_text

_HERE = os.path.dirname(os.path.abspath(__file__))


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _config(tmp_path, data_dir, steps=2, evaluator=None, **changes):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir, steps))
  for name, value in (evaluator or {}).items():
    setattr(config.evaluator_options, name, value)
  config.trainer_options.solver_options.use_sync_batchnorm = True
  config.eval_dataset_options.batch_size = 1
  config.evaluator_options.num_vis_samples = 2
  for name, value in changes.items():
    setattr(config, name, value)
  path = tmp_path / 'config.textproto'
  path.write_text(text_format.MessageToString(config))
  return str(path)


@pytest.fixture(scope='module')
def three_val_images(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('three_val'))
  build_synthetic.write_synthetic_dataset(path, num_train=4, num_val=3,
                                          seed=4, num_shards=1,
                                          image_size=33)
  return path


def test_two_workers_train_alike_and_evaluate_like_one_process(
    tmp_path, three_val_images):
  # Threshold 0: detections on every host, so mask AP's rows travel too.
  config_path = _config(tmp_path, three_val_images, evaluator={
      'save_predictions': True, 'center_score_threshold': 0.0})
  model_dir = str(tmp_path / 'model')
  ports = ','.join(str(p) for p in _free_ports(2))
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  # Logs go to files: a full pipe would block one worker in a collective
  # while the other waits for it.
  log_paths = [tmp_path / f'worker{task}.log' for task in range(2)]
  workers = []
  for task, log_path in enumerate(log_paths):
    with open(log_path, 'w') as log:
      workers.append(subprocess.Popen(
          [sys.executable, os.path.join(_HERE, 'multi_worker_checks.py'),
           config_path, model_dir, ports, str(task),
           str(tmp_path / f'worker{task}.json')],
          stdout=log, stderr=subprocess.STDOUT, env=env))
  try:
    for worker in workers:
      worker.wait(timeout=600)
  finally:
    for worker in workers:
      worker.kill()
  logs = [p.read_text() for p in log_paths]
  for worker, log in zip(workers, logs):
    assert worker.returncode == 0, log[-4000:]
  chief, other = [json.loads((tmp_path / f'worker{t}.json').read_text())
                  for t in range(2)]
  assert chief['strategy'].startswith(
      'MultiWorkerMirroredStrategy: 2 replica(s) on 2 host(s)')
  assert chief['replicas'] == 2 and chief['is_chief'] and not other['is_chief']
  assert chief['step'] == other['step'] == 2
  assert 'MultiWorkerMirroredStrategy: 2 replica(s) on 2 host(s)' in logs[0]
  for a, b in zip(chief['weights'], other['weights']):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert chief['metrics'] == other['metrics']
  assert chief['metrics']['num_images'] == 3
  # Written once, by the chief; the other worker left nothing behind.
  assert [os.path.basename(p) for p in glob.glob(
      os.path.join(model_dir, 'eval', 'metrics-*.json'))] == [
          'metrics-00000002.json']
  assert not glob.glob(os.path.join(model_dir, '.worker-*'))
  # Each host wrote its images; the chief merged them into one folder.
  predictions = prediction_staging.predictions_path(model_dir, 2)
  written = _predictions(predictions)
  assert sorted(written) == [f'synthetic_val_{i:06d}.png' for i in range(3)]
  assert any(s['category_id'] in written.things
             for a in written.annotations for s in a['segments_info'])
  assert 0.0 <= chief['metrics']['ap'] <= 1.0
  # One process, one device, the chief's checkpoint: the same metrics, and
  # the same predictions in a new folder beside the first.
  one = experiment.Experiment(config_path, model_dir)
  one.restore()
  metrics, _ = one.evaluate()
  assert json.loads(json.dumps(metrics)) == chief['metrics']
  again = _predictions(predictions + '-2')
  assert again.annotations == written.annotations
  for name in written:
    np.testing.assert_array_equal(again[name], written[name])
  assert not glob.glob(os.path.join(model_dir, 'eval', '*.partial'))


class _Written(dict):
  """PNG name -> pixels, with the JSON's annotations and thing ids."""


def _predictions(folder):
  with open(os.path.join(folder, 'panoptic.json')) as f:
    data = json.load(f)
  written = _Written({name: np.array(Image.open(os.path.join(
      folder, 'panoptic', name))) for name in os.listdir(
          os.path.join(folder, 'panoptic'))})
  written.annotations = sorted(data['annotations'],
                               key=lambda a: str(a['image_id']))
  written.things = {c['id'] for c in data['categories'] if c['isthing']}
  return written


def test_continuous_eval_beside_training_evaluates_each_checkpoint_once(
    tmp_path, tiny_dataset_dir):
  config_path = _config(tmp_path, tiny_dataset_dir, steps=8)
  config = config_lib.parse_experiment_text(
      open(config_path).read())
  config.trainer_options.num_checkpoints_to_keep = 2
  config.evaluator_options.continuous_eval_timeout = 120
  config.evaluator_options.num_vis_samples = 0
  with open(config_path, 'w') as f:
    f.write(text_format.MessageToString(config))
  model_dir = str(tmp_path / 'model')
  train_cmd = [sys.executable, os.path.join(REPO_ROOT, 'trainer', 'train.py'),
               f'--config_file={config_path}', f'--model_dir={model_dir}']
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  log_path = tmp_path / 'continuous_eval.log'
  with open(log_path, 'w') as log:
    evaluator = subprocess.Popen(train_cmd + ['--mode=continuous_eval'],
                                 stdout=log, stderr=subprocess.STDOUT,
                                 env=env)
  try:
    time.sleep(2)
    trainer = subprocess.run(train_cmd + ['--mode=train'],
                             capture_output=True, text=True, env=env,
                             timeout=600)
    assert trainer.returncode == 0, trainer.stdout[-3000:] + trainer.stderr
    evaluator.wait(timeout=600)
  finally:
    evaluator.kill()
  log = log_path.read_text()
  assert evaluator.returncode == 0, log[-4000:]
  evaluated = [int(line.split('eval at step ')[1].split()[0])
               for line in log.splitlines() if 'eval at step ' in line]
  context = f'evaluated {evaluated}; log:\n{log[-3000:]}'
  assert evaluated, context
  assert len(evaluated) == len(set(evaluated)), context
  assert evaluated == sorted(evaluated) and evaluated[-1] == 8, context
  assert set(evaluated) <= {2, 4, 6, 8}, context
  metric_files = sorted(glob.glob(os.path.join(model_dir, 'eval',
                                               'metrics-*.json')))
  assert [int(p[-13:-5]) for p in metric_files] == evaluated, context


def test_continuous_eval_skips_a_checkpoint_deleted_before_it_is_read(
    tmp_path, tiny_dataset_dir, caplog, monkeypatch):
  config_path = _config(tmp_path, tiny_dataset_dir, steps=4)
  model_dir = str(tmp_path / 'model')
  save_checkpoints_at(config_path, model_dir, (2, 4))
  restore = experiment.Experiment.restore

  def restore_after_deletion(self, checkpoint_path=None):
    # The trainer's num_checkpoints_to_keep removes it just then.
    for path in glob.glob(checkpoint_path + '.*'):
      os.remove(path)
    return restore(self, checkpoint_path)

  monkeypatch.setattr(experiment.Experiment, 'restore',
                      restore_after_deletion)
  with caplog.at_level('INFO', logger='deeplab2'):
    with pytest.raises(FileNotFoundError, match=(
        r'continuous_eval: no checkpoint in .*model could be evaluated '
        r'within continuous_eval_timeout \(1 s\)')):
      modes.run('continuous_eval', config_path, model_dir)
  assert 'ckpt-4 is damaged (ckpt-4.index is missing).' in caplog.text


def test_num_gpus_beyond_this_host_is_one_clear_line(tmp_path,
                                                     tiny_config_path,
                                                     capsys):
  process = cli_runner.run_main(
      train.main, [f'--config_file={tiny_config_path}', '--mode=train',
                   f'--model_dir={tmp_path / "model"}', '--num_gpus=3'],
      capsys)
  assert process.returncode == 1
  assert process.stderr.strip().splitlines()[-1] == (
      'error: --num_gpus=3, but this host has 0 GPU(s).')
  assert not os.path.exists(tmp_path / 'model')


def test_flags_that_contradict_tf_config_are_errors(monkeypatch):
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'worker': ['localhost:1', 'localhost:2']},
      'task': {'type': 'worker', 'index': 0}}))
  with pytest.raises(ValueError, match='--num_gpus does not apply to a '
                     'multi-worker TF_CONFIG'):
    distribution.create_strategy(num_gpus=0)
  with pytest.raises(ValueError, match='--master .* and a multi-worker '
                     'TF_CONFIG exclude each other'):
    distribution.create_strategy(master='my-tpu')


def test_a_seed_outside_32_bits_is_a_config_error(tmp_path,
                                                  tiny_dataset_dir):
  path = _config(tmp_path, tiny_dataset_dir, seed=2 ** 32)
  with pytest.raises(config_lib.ConfigError,
                     match=r'seed: must be in \[0, 2\*\*32\), got 4294967296'):
    config_lib.load_experiment(path)


def test_num_gpus_zero_is_the_cpu():
  strategy = distribution.create_strategy(num_gpus=0)
  assert strategy.num_replicas_in_sync == 1
  assert 'OneDeviceStrategy: 1 replica(s) on 1 host(s)' in (
      distribution.describe(strategy))


def test_a_seeded_run_repeats_exactly(tmp_path, tiny_dataset_dir):
  config_path = _config(tmp_path, tiny_dataset_dir, steps=2, seed=17)
  runs = []
  for name in ('a', 'b'):
    run = experiment.Experiment(config_path, str(tmp_path / name))
    initial = [w.copy() for w in run.model.get_weights()]
    run.train(2)
    runs.append((initial, run.model.get_weights()))
  (init_a, final_a), (init_b, final_b) = runs
  for a, b in zip(init_a + final_a, init_b + final_b):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(init_a, final_a))
