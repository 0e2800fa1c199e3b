"""A stop signal during any evaluation ends it within seconds with one
`stopped:` line, writing none of its metrics or predictions; the same
command run again evaluates."""

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

from google.protobuf import text_format
import pytest

from deeplab2 import config as config_lib
from deeplab2.cli import train
from deeplab2.training import evaluator as evaluator_lib
from deeplab2.training import experiment
import cli_runner
from conftest import save_checkpoints_at, tiny_config_text

# trainer/train.py with each scored image taking 0.5 s more: an evaluation
# of the 40 images below then lasts 20 s or more. Once the first image is
# scored (the evaluation step and the post-processor traced, which takes
# seconds on a slow CPU) it prints _SCORED.
_SCORED = 'scored the first image'
_SLOW_EVALUATION = textwrap.dedent('''
    import sys, time
    from deeplab2.training import evaluator
    score = evaluator.Evaluator._score
    def slow_score(self, *args, **kwargs):
      count = score(self, *args, **kwargs)
      if not getattr(slow_score, 'said', False):
        slow_score.said = True
        print('scored the first image', flush=True)
      time.sleep(0.5)
      return count
    evaluator.Evaluator._score = slow_score
    from deeplab2.cli import train
    sys.exit(train.main(sys.argv[1:]))
''')


@pytest.fixture(scope='module')
def forty_val_images(tmp_path_factory):
  from deeplab2.data import build_synthetic  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('forty_val'))
  build_synthetic.write_synthetic_dataset(path, num_train=4, num_val=40,
                                          seed=5, num_shards=1,
                                          image_size=33)
  return path


def _config(tmp_path, data_dir, steps, **evaluator):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir, steps))
  for field, value in evaluator.items():
    setattr(config.evaluator_options, field, value)
  path = tmp_path / 'config.textproto'
  path.write_text(text_format.MessageToString(config))
  return str(path)


def _stop_when_logged(command, log_path, wanted, settle=1.0):
  """Runs `command`, sends SIGTERM `settle` s after `wanted` shows in its
  output; returns (exit status, seconds from the signal to the exit)."""
  with open(log_path, 'w') as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
      deadline = time.time() + 300
      while (wanted not in log_path.read_text() and process.poll() is None
             and time.time() < deadline):
        time.sleep(0.1)
      time.sleep(settle)
      assert process.poll() is None, log_path.read_text()[-3000:]
      process.send_signal(signal.SIGTERM)
      sent = time.time()
      returncode = process.wait(timeout=60)
      return returncode, time.time() - sent
    finally:
      process.kill()


def test_sigterm_during_the_final_evaluation_stops_within_5_s(
    forty_val_images, tmp_path, capsys):
  config_path = _config(tmp_path, forty_val_images, steps=2,
                        save_predictions=True)
  model_dir = str(tmp_path / 'model')
  log_path = tmp_path / 'run.log'
  returncode, seconds = _stop_when_logged(
      [sys.executable, '-c', _SLOW_EVALUATION, f'--config_file={config_path}',
       '--mode=train_and_eval', f'--model_dir={model_dir}'],
      log_path, _SCORED, settle=0.2)
  text = log_path.read_text()
  assert returncode == 128 + signal.SIGTERM, text[-3000:]
  assert seconds < 5, text[-3000:]
  stopped = [line for line in text.splitlines() if line.startswith('stopped:')]
  assert stopped == ['stopped: stopped by SIGTERM during the evaluation of '
                     'step 2; nothing of it was written; run the same '
                     'command again to evaluate'], text[-3000:]
  assert 'Traceback' not in text
  # The training checkpoint is there; nothing of the evaluation is.
  assert os.path.exists(os.path.join(model_dir, 'ckpt-2.index'))
  assert not os.path.exists(experiment.metrics_path(model_dir, 2))
  leftovers = [p for p in glob.glob(os.path.join(model_dir, '**', '*'),
                                    recursive=True)
               if 'prediction' in p or '.tmp-' in p]
  assert not leftovers

  # The same command again (in this process, at full speed) evaluates.
  rerun = cli_runner.run_main(
      train.main, [f'--config_file={config_path}', '--mode=train_and_eval',
                   f'--model_dir={model_dir}'], capsys)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert 'final: PQ' in rerun.stdout
  assert os.path.exists(experiment.metrics_path(model_dir, 2))


def test_sigterm_while_continuous_eval_waits_stops_at_once(tmp_path,
                                                           tiny_dataset_dir):
  # deeplab2's default continuous_eval_timeout, -1: waits forever.
  config_path = _config(tmp_path, tiny_dataset_dir, steps=2,
                        continuous_eval_timeout=-1)
  model_dir = tmp_path / 'model'
  model_dir.mkdir()
  log_path = tmp_path / 'run.log'
  returncode, seconds = _stop_when_logged(
      [sys.executable, '-m', 'deeplab2.cli.train',
       f'--config_file={config_path}', '--mode=continuous_eval',
       f'--model_dir={model_dir}'],
      log_path, 'continuous_eval: watching', settle=0.5)
  text = log_path.read_text()
  assert returncode == 128 + signal.SIGTERM, text[-3000:]
  assert seconds < 5, text[-3000:]
  assert [line for line in text.splitlines() if line.startswith('stopped:')
         ] == ['stopped: stopped by SIGTERM while waiting for a new '
               'checkpoint; run the same command again to evaluate']


def test_a_stop_signal_during_eval_mode_writes_nothing(
    tiny_dataset_dir, tmp_path, capsys, monkeypatch):
  config_path = _config(tmp_path, tiny_dataset_dir, steps=2,
                        save_predictions=True)
  model_dir = str(tmp_path / 'model')
  save_checkpoints_at(config_path, model_dir, (2,))
  score = evaluator_lib.Evaluator._score

  def score_then_interrupt(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)   # as Ctrl-C would
    time.sleep(0.2)                        # the watcher thread sets the flag
    return score(self, *args, **kwargs)

  monkeypatch.setattr(evaluator_lib.Evaluator, '_score', score_then_interrupt)
  before = sorted(os.listdir(model_dir))
  result = cli_runner.run_main(
      train.main, [f'--config_file={config_path}', '--mode=eval',
                   f'--model_dir={model_dir}'], capsys)
  assert result.returncode == 128 + signal.SIGINT, result.stderr[-3000:]
  assert result.stderr.splitlines()[-1] == (
      'stopped: stopped by SIGINT during the evaluation of step 2; nothing '
      'of it was written; run the same command again to evaluate')
  assert sorted(os.listdir(model_dir)) == before
