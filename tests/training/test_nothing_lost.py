"""Training that survives being stopped, damaged checkpoints, and the
command line's one-line errors."""

import glob
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from google.protobuf import text_format
import pytest

from deeplab2 import config as config_lib
from deeplab2.cli import export_model
from deeplab2.cli import train
from deeplab2.data import input_pipeline
from deeplab2.serving import export
from deeplab2.training import experiment
from deeplab2.training import modes
import cli_runner
from conftest import REPO_ROOT, save_checkpoints_at, tiny_config_text


def _checkpoint_steps(model_dir):
  return sorted(int(p.split('-')[-1].split('.')[0])
                for p in glob.glob(os.path.join(model_dir, 'ckpt-*.index')))


def _config(tmp_path, data_dir, steps, name='config.textproto', **trainer):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir, steps))
  for field, value in trainer.items():
    setattr(config.trainer_options, field, value)
  path = tmp_path / name
  path.write_text(text_format.MessageToString(config))
  return str(path)


def _train_flags(config_path, model_dir):
  return [f'--config_file={config_path}', '--mode=train',
          f'--model_dir={model_dir}']


def _train_command(config_path, model_dir):
  """The command line as a process (the trainer/train.py shim)."""
  return [sys.executable, os.path.join(REPO_ROOT, 'trainer', 'train.py'),
          *_train_flags(config_path, model_dir)]


def test_sigterm_saves_the_current_step_and_the_rerun_trains_on(
    tiny_dataset_dir, tmp_path, capsys, caplog):
  # Loops of 25 steps: the stop comes inside a loop, not at its end.
  config_path = _config(tmp_path, tiny_dataset_dir, steps=100,
                        steps_per_loop=25, save_checkpoints_steps=50,
                        save_summaries_steps=25, num_checkpoints_to_keep=10)
  model_dir = str(tmp_path / 'model')
  log_path = tmp_path / 'first.log'
  with open(log_path, 'w') as log:
    process = subprocess.Popen(_train_command(config_path, model_dir),
                               stdout=log, stderr=subprocess.STDOUT)
    try:
      deadline = time.time() + 300
      while ('step 25/100' not in log_path.read_text() and
             process.poll() is None and time.time() < deadline):
        time.sleep(0.1)
      assert process.poll() is None, log_path.read_text()[-3000:]
      process.send_signal(signal.SIGTERM)
      sent = time.time()
      returncode = process.wait(timeout=60)
      stopped_after = time.time() - sent
    finally:
      process.kill()
  text = log_path.read_text()
  assert returncode == 128 + signal.SIGTERM, text[-3000:]
  assert stopped_after < 10, text[-3000:]
  stopped = [line for line in text.splitlines() if line.startswith('stopped:')]
  assert len(stopped) == 1, text[-3000:]
  steps = _checkpoint_steps(model_dir)
  step = steps[-1]
  assert 25 <= step < 100
  assert f'stopped by SIGTERM at step {step}; saved ' in stopped[0]
  assert 'Traceback' not in text

  # The rerun in this process: the stop above needed a real one, the
  # resume does not.
  caplog.set_level(logging.INFO, logger='deeplab2')
  rerun = cli_runner.run_main(train.main, _train_flags(config_path, model_dir),
                              capsys)
  log_text = caplog.text + rerun.stdout
  assert rerun.returncode == 0, log_text[-3000:] + rerun.stderr[-3000:]
  assert f'at step {step}.' in log_text   # Restored ... at step N.
  # No step twice: the rerun's first progress line is past the saved step.
  first_logged = int(re.findall(r'step (\d+)/100', log_text)[0])
  assert step < first_logged <= step + 25
  # After the resume, checkpoints at multiples of 50 and at the end.
  assert _checkpoint_steps(model_dir) == sorted(
      {s for s in steps if s < step} | {step} |
      {s for s in (50, 100) if s > step})


@pytest.fixture(scope='module')
def checkpoints_two_and_four(tiny_dataset_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp('four_steps')
  config_path = _config(root, tiny_dataset_dir, steps=4)
  model_dir = str(root / 'model')
  save_checkpoints_at(config_path, model_dir, (2, 4))
  assert _checkpoint_steps(model_dir) == [2, 4]
  return config_path, model_dir


@pytest.fixture()
def four_steps(checkpoints_two_and_four, tmp_path):
  """A copy of a model_dir with checkpoints at steps 2 and 4 of a 4-step
  run, and its config."""
  config_path, model_dir = checkpoints_two_and_four
  copy = str(tmp_path / 'model')
  shutil.copytree(model_dir, copy)
  # The `checkpoint` file names the checkpoints by absolute path.
  state = os.path.join(copy, 'checkpoint')
  with open(state) as f:
    text = f.read()
  with open(state, 'w') as f:
    f.write(text.replace(model_dir, copy))
  local_config = str(tmp_path / 'config.textproto')
  shutil.copy(config_path, local_config)
  return local_config, copy


@pytest.mark.parametrize('damage', ['remove_data', 'truncate_data',
                                    'truncate_index'])
def test_a_damaged_newest_checkpoint_falls_back_with_a_warning(
    four_steps, damage, caplog):
  config_path, model_dir = four_steps
  newest = os.path.join(model_dir, 'ckpt-4')
  data, = glob.glob(newest + '.data-*')
  if damage == 'remove_data':
    os.remove(data)
    named = 'ckpt-4.data-*-of-* is missing'
  else:
    path = data if damage == 'truncate_data' else newest + '.index'
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
    named = 'Checkpoint ' + newest + ' is damaged ('
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    resumed = experiment.Experiment(config_path, model_dir)
    assert resumed.restore() == os.path.join(model_dir, 'ckpt-2')
  assert resumed.global_step == 2
  assert named in caplog.text
  assert 'Resumed from ' + os.path.join(model_dir, 'ckpt-2') in caplog.text
  if damage == 'remove_data':
    # eval too evaluates the intact one.
    metrics = modes.run('eval', config_path, model_dir)
    assert metrics['num_images'] == 4


def test_a_checkpoint_of_another_config_is_one_line(four_steps, tmp_path):
  config_path, model_dir = four_steps
  config = config_lib.parse_experiment_text(open(config_path).read())
  config.model_options.decoder.decoder_channels = 24
  other = tmp_path / 'other.textproto'
  other.write_text(text_format.MessageToString(config))
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, 'trainer', 'train.py'),
       f'--config_file={other}', '--mode=eval', f'--model_dir={model_dir}'],
      capture_output=True, text=True, check=False)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1 and 'Traceback' not in result.stderr
  assert (f'error: Checkpoint {model_dir}/ckpt-4 does not fit this config: '
          in errors[0])
  assert '(16,)' in errors[0] and '(24,)' in errors[0]
  # Not preceded by TF's warning per unrestored value.
  assert 'could not be found' not in result.stdout + result.stderr


def test_a_model_dir_that_is_a_file_is_one_line(tmp_path, tiny_config_path,
                                                capsys):
  not_a_folder = tmp_path / 'file'
  not_a_folder.write_text('x')
  result = cli_runner.run_main(
      train.main, _train_flags(tiny_config_path, not_a_folder), capsys)
  assert result.returncode == 1
  assert [line for line in result.stderr.splitlines()
          if line.startswith('error:')] == [
              f'error: --model_dir={not_a_folder} is a file; give a folder '
              '(created if missing).']
  assert 'Traceback' not in result.stderr
  assert not_a_folder.read_text() == 'x'


def _listing(folder):
  return sorted((os.path.relpath(os.path.join(parent, name), folder),
                 os.path.getsize(os.path.join(parent, name)))
                for parent, _, names in os.walk(folder) for name in names)


def test_export_overwrite_replaces_a_saved_model_and_nothing_else(
    four_steps, tmp_path, caplog):
  config_path, model_dir = four_steps
  before = _listing(model_dir)
  with pytest.raises(FileExistsError, match=(
      'is not a SavedModel folder .*checkpoint.*--overwrite replaces '
      'SavedModel folders only')):
    export.export_from_config(config_path, model_dir, model_dir,
                              overwrite=True)
  assert _listing(model_dir) == before
  # A damaged newest checkpoint: export takes the older one, with a warning.
  os.remove(os.path.join(model_dir, 'ckpt-4.index'))
  output = str(tmp_path / 'export')
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    export.export_from_config(config_path, model_dir, output)
  assert 'ckpt-4 is damaged (ckpt-4.index is missing)' in caplog.text
  first = _listing(output)
  export.export_from_config(config_path, model_dir, output,
                            overwrite=True)
  assert _listing(output) and sorted(os.listdir(tmp_path)) == [
      'config.textproto', 'export', 'model']
  assert [name for name, _ in _listing(output)] == [name for name, _ in first]


def test_export_errors_are_one_line(four_steps, tmp_path, capsys):
  config_path, model_dir = four_steps
  for checkpoint, message in (
      (os.path.join(model_dir, 'ckpt-7'),
       f'error: No checkpoint {model_dir}/ckpt-7 ({model_dir}/ckpt-7.index '
       'does not exist).'),):
    result = cli_runner.run_main(
        export_model.main,
        [f'--config_file={config_path}', f'--checkpoint_path={checkpoint}',
         f'--output_path={tmp_path / "export"}'], capsys)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines()
            if line.startswith('error:')] == [message]
    assert 'Traceback' not in result.stderr
    assert not os.path.exists(tmp_path / 'export')


@pytest.mark.parametrize('output_path, what', [
    ('/', 'a filesystem root'), ('.', 'the working folder'),
    ('', 'the working folder'), ('./', 'the working folder')])
def test_export_refuses_a_root_or_the_working_folder(
    tiny_config_path, tmp_path, monkeypatch, capsys, output_path, what):
  # A SavedModel is staged beside its folder and swapped in: '/' used to
  # stage it as ./..tmp-<pid> in the working folder and leave it there.
  work = tmp_path / 'work'
  work.mkdir()
  monkeypatch.chdir(work)
  result = cli_runner.run_main(
      export_model.main,
      [f'--config_file={tiny_config_path}', '--checkpoint_path=unused',
       f'--output_path={output_path}', '--overwrite'], capsys)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: --output_path={output_path!r} is {what}; give a folder for '
      'the SavedModel alone (e.g. runs/export).']
  assert os.listdir(work) == []


def test_a_file_pattern_matching_other_files_names_the_file(
    tiny_dataset_dir, tmp_path):
  pattern = os.path.join(tiny_dataset_dir, '*')
  with pytest.raises(ValueError, match=(
      r'dataset_descriptor.json \(matched by .*\) is not a TFRecord file: '
      'its first record header does not check out')):
    input_pipeline.list_files([pattern])
  (tmp_path / 'empty.tfrecord').write_bytes(b'')
  assert input_pipeline.list_files([str(tmp_path / '*.tfrecord')])
