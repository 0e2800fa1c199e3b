"""A model_dir whose `checkpoint` state file is lost or unreadable: every
mode uses the `ckpt-N` files by step, and training writes a whole state
file again, keeping the unreadable one."""

import logging
import os
import shutil
import time

import pytest
import tensorflow as tf

from deeplab2.training import experiment
from deeplab2.training import modes
from deeplab2.utils import checkpoints
from conftest import save_checkpoints_at, tiny_config_text

_DAMAGE = {
    'binary': b'\x89\xcf\x00\xffnot text',
    'empty': b'',
    'not_a_state': b'model_checkpoint_path: [unclosed',
}


@pytest.fixture(scope='module')
def saved_two_and_four(tiny_dataset_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp('state_file')
  config_path = root / 'config.textproto'
  config_path.write_text(tiny_config_text(tiny_dataset_dir, steps=6))
  model_dir = str(root / 'model')
  save_checkpoints_at(str(config_path), model_dir, (2, 4))
  return str(config_path), model_dir


@pytest.fixture()
def damaged_state(saved_two_and_four, tmp_path, request):
  """(config, a copy of the model_dir whose state file is damaged as the
  test's parameter says, the bytes written there)."""
  config_path, model_dir = saved_two_and_four
  copy = str(tmp_path / 'model')
  shutil.copytree(model_dir, copy)
  state = os.path.join(copy, 'checkpoint')
  data = _DAMAGE.get(request.param)
  if data is None:
    os.remove(state)
  else:
    with open(state, 'wb') as f:
      f.write(data)
  return config_path, copy, data


_KINDS = [*_DAMAGE, 'missing']


# Reading the state is one function for every mode: eval and continuous_eval
# take two kinds, the trainer's repair every kind.
@pytest.mark.parametrize('damaged_state', ['binary', 'missing'], indirect=True)
def test_eval_scores_the_newest_checkpoint_with_one_warning(damaged_state,
                                                            caplog):
  config_path, model_dir, data = damaged_state
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    metrics = modes.run('eval', config_path, model_dir)
  assert metrics['num_images'] == 4
  assert os.path.exists(experiment.metrics_path(model_dir, 4))
  warnings = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and r.name == 'deeplab2']
  assert len(warnings) == 1, warnings
  assert 'taking its checkpoints by step (newest ckpt-4)' in warnings[0]
  assert ('unreadable' in warnings[0]) == (data is not None)
  # Evaluation only reads: the state file is as it was.
  state = os.path.join(model_dir, 'checkpoint')
  if data is None:
    assert not os.path.exists(state)
  else:
    with open(state, 'rb') as f:
      assert f.read() == data


@pytest.mark.parametrize('damaged_state', ['binary'], indirect=True)
def test_continuous_eval_takes_the_checkpoints_by_step(damaged_state):
  config_path, model_dir, _ = damaged_state
  metrics = modes.run('continuous_eval', config_path, model_dir)
  assert metrics['num_images'] == 4
  assert os.path.exists(experiment.metrics_path(model_dir, 4))


@pytest.mark.parametrize('damaged_state', _KINDS, indirect=True)
def test_training_resumes_and_writes_a_whole_state_file(damaged_state,
                                                        caplog):
  config_path, model_dir, data = damaged_state
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    run = experiment.Experiment(config_path, model_dir)
    assert run.restore() == os.path.join(model_dir, 'ckpt-4')
    run.optimizer.iterations.assign(6)
    run.checkpoints.save(6)
  assert 'a new one lists the 2 checkpoint(s) found by step' in caplog.text
  # The newest is the new save, and the older ones are still counted.
  assert checkpoints.newest_first(model_dir) == [
      os.path.join(model_dir, f'ckpt-{step}') for step in (6, 4, 2)]
  kept = os.path.join(model_dir, 'checkpoint.unreadable')
  if data is None:
    assert not os.path.exists(kept)
  else:
    with open(kept, 'rb') as f:
      assert f.read() == data


def test_new_checkpoints_waits_and_stops(tmp_path):
  model_dir = str(tmp_path)
  start = time.time()
  assert not list(checkpoints.new_checkpoints(model_dir, timeout=0.3,
                                              poll_seconds=0.05))
  assert 0.3 <= time.time() - start < 5
  for step in (1, 2):
    for suffix in ('.index', '.data-00000-of-00001'):
      (tmp_path / f'ckpt-{step}{suffix}').write_bytes(b'')
  found = checkpoints.new_checkpoints(model_dir, timeout=0.2,
                                      poll_seconds=0.05)
  assert next(found) == os.path.join(model_dir, 'ckpt-2')
  assert not list(found)    # nothing newer came
  asked = []
  start = time.time()
  stopped = checkpoints.new_checkpoints(
      str(tmp_path / 'empty'), timeout=60, poll_seconds=0.05,
      should_stop=lambda: asked.append(1) or len(asked) > 2)
  assert not list(stopped)
  assert time.time() - start < 5 and len(asked) == 3
  # No timeout (continuous_eval_timeout -1): waits until asked to stop.
  asked.clear()
  forever = checkpoints.new_checkpoints(
      str(tmp_path / 'empty'), timeout=None, poll_seconds=0.05,
      should_stop=lambda: asked.append(1) or len(asked) > 4)
  assert not list(forever)
  assert len(asked) == 5


def test_a_failed_save_removes_its_files_and_says_the_disk_is_full(
    saved_two_and_four, tmp_path, monkeypatch):
  # A real full disk (checked by hand on a 300 KB tmpfs) fails in SaveV2
  # with this error after making ckpt-N_temp/; the test fakes just that.
  config_path, model_dir = saved_two_and_four
  copy = str(tmp_path / 'model')
  shutil.copytree(model_dir, copy)
  run = experiment.Experiment(config_path, copy)
  run.restore()

  def save_on_a_full_disk(self, checkpoint_number, check_interval):
    del check_interval
    temp = os.path.join(self.directory, f'ckpt-{checkpoint_number}_temp')
    os.makedirs(temp)
    with open(os.path.join(temp, 'part-00000-of-00001.data'), 'wb') as f:
      f.write(b'partial')
    raise tf.errors.ResourceExhaustedError(
        None, None, f'{temp}/part-00000-of-00001.data.tempstate1; No space '
        'left on device [Op:SaveV2]')

  monkeypatch.setattr(tf.train.CheckpointManager, 'save', save_on_a_full_disk)
  before = sorted(os.listdir(copy))
  with pytest.raises(OSError) as failed:
    run.checkpoints.save(6)
  assert str(failed.value) == (
      f'cannot save the checkpoint of step 6 in {copy}: No space left on '
      'device (the disk is full); its partial files were removed; the '
      f'newest whole checkpoint is {copy}/ckpt-4')
  assert sorted(os.listdir(copy)) == before
