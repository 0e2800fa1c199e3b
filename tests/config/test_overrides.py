"""--config_override: text format or field=value merged over the file;
errors name the override that set the field."""

import pytest

from deeplab2 import config as config_lib
from deeplab2.cli import train
import cli_runner
from conftest import SYNTHETIC_CONFIG


def _load(*overrides):
  return config_lib.load_experiment(
      config_lib.ConfigFile(SYNTHETIC_CONFIG, overrides)).config


def test_both_forms_change_a_field_and_the_last_one_wins():
  base = config_lib.load_experiment(SYNTHETIC_CONFIG).config
  solver = base.trainer_options.solver_options
  assert solver.training_number_of_steps != 600
  config = _load(
      'trainer_options { solver_options { training_number_of_steps: 600 } }')
  assert config.trainer_options.solver_options.training_number_of_steps == 600
  # Everything else stays the file's.
  config.trainer_options.solver_options.training_number_of_steps = (
      solver.training_number_of_steps)
  assert config == base
  config = _load('trainer_options.solver_options.training_number_of_steps=600',
                 'trainer_options.solver_options.base_learning_rate = 0.01')
  assert config.trainer_options.solver_options.training_number_of_steps == 600
  assert config.trainer_options.solver_options.base_learning_rate == (
      pytest.approx(0.01))
  assert _load('seed=1', 'seed=2').seed == 2


def test_a_repeated_field_is_replaced_not_appended_to():
  config = _load('train_dataset_options.file_pattern="elsewhere/train-*"',
                 'train_dataset_options { crop_size: 65 crop_size: 65 }')
  assert list(config.train_dataset_options.file_pattern) == [
      'elsewhere/train-*']
  assert list(config.train_dataset_options.crop_size) == [65, 65]


def test_a_dotted_string_value_needs_no_quotes():
  config = _load('train_dataset_options.file_pattern=elsewhere/train-*',
                 'experiment_name=my "first" run',
                 "eval_dataset_options.file_pattern='quoted/val-*'")
  assert list(config.train_dataset_options.file_pattern) == [
      'elsewhere/train-*']
  assert config.experiment_name == 'my "first" run'
  assert list(config.eval_dataset_options.file_pattern) == ['quoted/val-*']


@pytest.mark.parametrize('override, message', [
    ('trainer_options { solver_options { learning_rate: 1 } }',
     '--config_override #1:1: learning_rate: unknown field "learning_rate" in '
     'deeplab2.SolverOptions; valid fields: '),
    ('trainer_options.solver_options.base_learning_rate=inf',
     '--config_override #1: trainer_options.solver_options.base_learning_rate'
     ': must be finite and positive, got inf'),
    ('train_dataset_options.sigma=-1',
     '--config_override #1: train_dataset_options.sigma: must be finite and '
     'positive, got -1.0'),
    ('seed=', '--config_override #1:1: '),
])
def test_a_bad_override_names_itself_and_the_field(override, message):
  with pytest.raises(config_lib.ConfigError) as error:
    _load(override)
  assert str(error.value).startswith(message)


def test_train_prints_a_bad_override_in_one_line_and_makes_nothing(
    tmp_path, capsys):
  model_dir = tmp_path / 'model'
  result = cli_runner.run_main(train.main, [
      f'--config_file={SYNTHETIC_CONFIG}', '--mode=train',
      f'--model_dir={model_dir}',
      '--config_override=train_dataset_options.sigma=inf'], capsys)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      'error: --config_override #1: train_dataset_options.sigma: must be '
      'finite and positive, got inf']
  assert not model_dir.exists()
