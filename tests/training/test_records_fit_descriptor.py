"""Shards that do not fit the descriptor they are read with stop training
before its first step, in one line naming the shard and the descriptor."""

import json
import os
import re
import shutil

from google.protobuf import text_format
import numpy as np
import pytest

from deeplab2 import config as config_lib
from deeplab2.cli import train
from deeplab2.data import dataset_descriptor
from deeplab2.data import record_checks
import cli_runner
from conftest import tiny_config_text


def _with_descriptor(tmp_path, data_dir, **changes):
  """A tiny config whose datasets are read with the dataset's descriptor
  JSON changed as `changes` say."""
  with open(os.path.join(data_dir, 'dataset_descriptor.json')) as f:
    data = json.load(f)
  data.update(changes)
  descriptor_path = tmp_path / 'descriptor.json'
  descriptor_path.write_text(json.dumps(data))
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir, 4))
  config.train_dataset_options.dataset = str(descriptor_path)
  config.eval_dataset_options.dataset = str(descriptor_path)
  # A divisor of 3 leaves room for 2 instances per class: keep_k_centers
  # must fit it, or the config check stops the run first.
  config.evaluator_options.keep_k_centers = 2
  config.model_options.panoptic_deeplab.semantic_head.output_channels = (
      data['num_classes'])
  config_path = tmp_path / 'config.textproto'
  config_path.write_text(text_format.MessageToString(config))
  return str(config_path), str(descriptor_path)


@pytest.mark.parametrize('changes, problem', [
    ({'label_divisor': 3}, r'panoptic id \d+ is class \d+ with label_divisor '
     r'3, outside 0\.\.4 and not the ignore label 255'),
    ({'num_classes': 4, 'thing_class_ids': [2, 3],
      'class_names': ['wall', 'floor', 'disc', 'box'],
      'colormap': [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]},
     r'panoptic id 4\d\d\d is class 4 with label_divisor 1000, outside '
     r'0\.\.3'),
    ({'thing_class_ids': [3, 4]}, r'panoptic id 2\d\d\d is instance \d+ of '
     r'class 2 with label_divisor 1000, but class 2 is no thing class'),
])
def test_records_of_another_descriptor_are_one_line_before_any_step(
    tiny_dataset_dir, tmp_path, capsys, changes, problem):
  config_path, descriptor_path = _with_descriptor(tmp_path, tiny_dataset_dir,
                                                  **changes)
  model_dir = tmp_path / 'model'
  result = cli_runner.run_main(
      train.main, [f'--config_file={config_path}', '--mode=train',
                   f'--model_dir={model_dir}'], capsys)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1 and 'Traceback' not in result.stderr
  shard = os.path.join(tiny_dataset_dir, 'train-00000-of-00002.tfrecord')
  assert errors[0].startswith(
      f'error: {shard}: record 0 (') and (
          f') does not fit the dataset descriptor {descriptor_path}: '
          in errors[0])
  assert __import__('re').search(problem, errors[0]), errors[0]
  assert errors[0].endswith('Were the records written for another dataset '
                            'or label_divisor?')
  # Checked before anything is made.
  assert not model_dir.exists()


def test_the_converters_labels_fit_their_descriptors(tiny_dataset_dir):
  descriptor = dataset_descriptor.read_json(
      os.path.join(tiny_dataset_dir, 'dataset_descriptor.json'))
  files = sorted(os.path.join(tiny_dataset_dir, name)
                 for name in os.listdir(tiny_dataset_dir)
                 if name.endswith('.tfrecord'))
  assert record_checks.check_records(files, descriptor.label_spec,
                                     'synthetic') == 12


def test_label_problem_accepts_void_crowd_and_no_label():
  spec = dataset_descriptor.get_descriptor('synthetic_panoptic').label_spec
  fine = np.array([-1, 255000, 0, 1000, 2000, 2001, 3000, 4999])
  assert record_checks.label_problem(fine, spec) is None
  assert 'is class 5 ' in record_checks.label_problem(np.array([5000]), spec)


def _copy_of(dataset_dir, data_dir):
  shutil.copytree(dataset_dir, data_dir)
  return data_dir


def _train_on(data_dir, tmp_path, capsys):
  """train.py --mode=train on the tiny config reading data_dir."""
  config_path = tmp_path / 'config.textproto'
  config_path.write_text(tiny_config_text(str(data_dir), 4))
  return cli_runner.run_main(
      train.main, [f'--config_file={config_path}', '--mode=train',
                   f'--model_dir={tmp_path / "model"}'], capsys)


def test_a_truncated_shard_is_named_before_any_step(tiny_dataset_dir, tmp_path,
                                                    capsys):
  data_dir = _copy_of(tiny_dataset_dir, tmp_path / 'data')
  shard = data_dir / 'train-00001-of-00002.tfrecord'
  size = shard.stat().st_size
  shard.write_bytes(shard.read_bytes()[:size - 100])
  result = _train_on(data_dir, tmp_path, capsys)
  assert result.returncode == 1
  assert [line for line in result.stderr.splitlines()
          if line.startswith('error:')] == [
              f'error: {shard} is truncated: its record 3 ends past the end '
              f'of the file ({size - 100} bytes).']


def test_a_damaged_record_names_its_shard(tiny_dataset_dir, tmp_path, capsys):
  data_dir = _copy_of(tiny_dataset_dir, tmp_path / 'data')
  shard = data_dir / 'train-00001-of-00002.tfrecord'
  data = bytearray(shard.read_bytes())
  # Past the headers of records 0 and 1, into the middle of record 2's
  # data: the framing stays intact, its checksum no longer holds.
  offset = 0
  for _ in range(2):
    offset += 12 + int.from_bytes(data[offset:offset + 8], 'little') + 4
  length = int.from_bytes(data[offset:offset + 8], 'little')
  data[offset + 12 + length // 2] ^= 0xFF
  shard.write_bytes(bytes(data))
  assert record_checks.find_corrupt_record(
      [os.path.join(tiny_dataset_dir, 'train-00001-of-00002.tfrecord')]) is None
  result = _train_on(data_dir, tmp_path, capsys)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1, result.stderr
  assert re.fullmatch(
      f'error: {re.escape(str(shard))}: record 2 does not read back '
      r'\(corrupted record at \d+\); the shard is damaged: convert its '
      'split again', errors[0]), errors


@pytest.mark.parametrize('mode', ['train', 'train_and_eval'])
def test_a_file_pattern_matching_nothing_is_located_and_makes_nothing(
    tiny_dataset_dir, tmp_path, capsys, mode):
  config = config_lib.parse_experiment_text(tiny_config_text(tiny_dataset_dir))
  split = 'train' if mode == 'train' else 'eval'
  options = getattr(config, f'{split}_dataset_options')
  options.file_pattern[:] = [str(tmp_path / 'nowhere-*.tfrecord')]
  config_path = tmp_path / 'config.textproto'
  text = text_format.MessageToString(config)
  config_path.write_text(text)
  line = 1 + text.splitlines().index(
      f'  file_pattern: "{tmp_path}/nowhere-*.tfrecord"')
  model_dir = tmp_path / 'model'
  result = cli_runner.run_main(
      train.main, [f'--config_file={config_path}', f'--mode={mode}',
                   f'--model_dir={model_dir}'], capsys)
  assert result.returncode == 1
  assert [line for line in result.stderr.splitlines()
          if line.startswith('error:')] == [
              f'error: {config_path}:{line}: {split}_dataset_options.'
              f'file_pattern: No TFRecord files match '
              f"['{tmp_path}/nowhere-*.tfrecord']."]
  assert not model_dir.exists()
