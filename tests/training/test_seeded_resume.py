"""A seeded run stopped by a signal and resumed is the run uninterrupted:
the input stream's position is in the checkpoint, and the stream is a
function of the seed and that position alone."""

import os
import signal

from google.protobuf import text_format
import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.data import input_pipeline
from deeplab2.training import interrupts
from deeplab2.training import modes
from deeplab2.training import train_loop
from conftest import tiny_config_text

# 8 training images in batches of 2: 4 steps an epoch, so the stop at step
# 3 resumes inside the first epoch and the resumed run crosses into the
# second.
_STEPS = 6
_STOP_AT = 3


def _seeded_config(tmp_path, data_dir):
  config = config_lib.parse_experiment_text(
      tiny_config_text(data_dir, _STEPS))
  config.seed = 11
  trainer = config.trainer_options
  trainer.steps_per_loop = 1
  trainer.save_checkpoints_steps = _STEPS
  trainer.save_summaries_steps = _STEPS
  augmentations = config.train_dataset_options.augmentations
  augmentations.min_scale_factor = 0.5
  augmentations.max_scale_factor = 2.0
  augmentations.scale_factor_step_size = 0.25
  path = tmp_path / 'seeded.textproto'
  path.write_text(text_format.MessageToString(config))
  return str(path)


def _variables(model_dir):
  reader = tf.train.load_checkpoint(os.path.join(model_dir, f'ckpt-{_STEPS}'))
  # Every variable's value; not the save counter (the resumed run saved
  # once more) nor the object graph that holds it.
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.endswith('VARIABLE_VALUE') and
          not name.startswith('save_counter')}


def test_a_stopped_and_resumed_seeded_run_equals_the_uninterrupted_one(
    tiny_dataset_dir, tmp_path, monkeypatch):
  config_path = _seeded_config(tmp_path, tiny_dataset_dir)
  straight = str(tmp_path / 'straight')
  modes.run('train', config_path, straight)

  report = train_loop.TrainLoop._report

  def report_then_stop(self, step, *args, **kwargs):
    report(self, step, *args, **kwargs)
    if step == _STOP_AT:
      os.kill(os.getpid(), signal.SIGTERM)   # as a scheduler would

  resumed = str(tmp_path / 'resumed')
  monkeypatch.setattr(train_loop.TrainLoop, '_report', report_then_stop)
  with pytest.raises(interrupts.TrainingStopped) as stopped:
    modes.run('train', config_path, resumed)
  assert stopped.value.step == _STOP_AT
  monkeypatch.setattr(train_loop.TrainLoop, '_report', report)
  modes.run('train', config_path, resumed)

  expected, got = _variables(straight), _variables(resumed)
  assert sorted(got) == sorted(expected)
  position = [name for name in got if name.startswith('input_position')]
  assert len(position) == 1 and got[position[0]] == _STEPS
  # The two ASPP dropouts' random states are saved too.
  assert len([name for name in got if name.startswith('random_states/')]) == 2
  different = [name for name in expected
               if not np.array_equal(expected[name], got[name])]
  assert not different, different[:10]


@pytest.mark.parametrize('start_batch', [1, 4, 7])
def test_a_seeded_stream_started_later_is_the_same_stream(
    tiny_dataset_dir, tmp_path, start_batch):
  config_path = _seeded_config(tmp_path, tiny_dataset_dir)
  parts = config_lib.load_experiment(config_path)
  options = parts.pipeline_options('train')
  batches = list(input_pipeline.make_dataset(options).take(12))
  later = input_pipeline.make_dataset(
      options.__class__(**{**options.__dict__, 'start_batch': start_batch}))
  for expected, got in zip(batches[start_batch:], later.take(12 - start_batch)):
    assert sorted(expected) == sorted(got)
    for key in expected:
      np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy(),
                                    err_msg=key)


def test_record_counts_come_from_headers_and_name_a_truncated_file(
    tiny_dataset_dir, tmp_path):
  files = input_pipeline.list_files(
      [os.path.join(tiny_dataset_dir, 'train-*.tfrecord')])
  assert [input_pipeline.count_records(f) for f in files] == [
      sum(1 for _ in tf.data.TFRecordDataset(f)) for f in files]
  truncated = tmp_path / 'cut.tfrecord'
  data = open(files[0], 'rb').read()
  truncated.write_bytes(data[:len(data) - 10])
  with pytest.raises(ValueError, match=r'cut\.tfrecord is truncated: its '
                     r'record 3 ends past the end of the file'):
    input_pipeline.count_records(str(truncated))


@pytest.mark.parametrize('seed', [None, 0])
def test_the_stream_builds_under_a_global_seed_of_zero(tiny_dataset_dir,
                                                       tmp_path, seed):
  # A config seed of 0 sets TF's global seed to 0 (Experiment calls
  # keras.utils.set_random_seed), under which TF refuses tf.data shuffles
  # with tensor seeds inside a flat_map.
  keras.utils.set_random_seed(0)
  config_path = _seeded_config(tmp_path, tiny_dataset_dir)
  options = config_lib.load_experiment(config_path).pipeline_options('train')
  options = options.__class__(**{**options.__dict__, 'seed': seed})
  batch = next(iter(input_pipeline.make_dataset(options)))
  assert batch['image'].shape[0] == 2
