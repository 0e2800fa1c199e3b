"""Bad configs: each is one ConfigError line naming file, line and field.

The valid values in the messages come from the code they govern (the
backbone registry, each backbone's strides and endpoints, the AutoAugment
policies, the optimizer registry, the learning policies); the command line
prints the same line, without a traceback, and creates nothing.
"""

import logging
import os
import re
import subprocess
import sys

import pytest

from deeplab2 import config as config_lib
from deeplab2.config import values
from deeplab2.cli import train
import cli_runner
from conftest import REPO_ROOT, SYNTHETIC_CONFIG

# The synthetic config's test-time scales (its evaluator_options).
_SYNTHETIC_SCALES = ('eval_scales: 1.0\n  eval_scales: 1.25\n'
                     '  eval_scales: 1.5\n'
                     '  eval_scales: 1.75\n  eval_scales: 2.0')

_XCEPTION = os.path.join(REPO_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                         'xception71_os16.textproto')
_COCO = os.path.join(REPO_ROOT, 'configs', 'coco', 'panoptic_deeplab',
                     'resnet50_os32.textproto')


def _read(path):
  with open(path) as f:
    return f.read()


def _edit(base, old, new, count=1):
  text = _read(base)
  assert old in text, old
  return text.replace(old, new, count)


# (id, base config, old text, new text, the line's text, field, message).
BAD_CONFIGS = [
    ('unknown_backbone', SYNTHETIC_CONFIG, 'name: "resnet50"',
     'name: "resnet51"', 'name: "resnet51"', 'model_options.backbone.name',
     r'unknown backbone "resnet51"; valid: mobilenet_v3_large, '
     r'mobilenet_v3_small, resnet50, resnet50_beta, swidernet, '
     r'wide_resnet41, xception_71'),
    ('stride_the_backbone_cannot_do', _XCEPTION, 'output_stride: 16',
     'output_stride: 4', 'output_stride: 4',
     'model_options.backbone.output_stride',
     r'4: backbone "xception_71" can be built with output strides '
     r'\(8, 16, 32\)'),
    ('option_the_backbone_ignores', _XCEPTION, 'name: "xception_71"',
     'name: "xception_71"\n    drop_path_keep_prob: 0.8',
     'drop_path_keep_prob: 0.8', 'model_options.backbone.drop_path_keep_prob',
     r'backbone "xception_71" does not apply drop_path_keep_prob'),
    ('missing_initial_checkpoint', SYNTHETIC_CONFIG,
     'model_options {', 'model_options {\n  initial_checkpoint: "/nope/ckpt"',
     'initial_checkpoint: "/nope/ckpt"', 'model_options.initial_checkpoint',
     r'"/nope/ckpt" is neither a weights file nor a checkpoint prefix'),
    ('unknown_decoder_endpoint', SYNTHETIC_CONFIG, 'feature_key: "res5"',
     'feature_key: "res6"', 'feature_key: "res6"',
     'model_options.decoder.feature_key',
     r'"res6" is not an endpoint of the backbone; it has res1, res2, res3, '
     r'res4, res5'),
    ('unknown_low_level_endpoint', SYNTHETIC_CONFIG,
     'feature_key: "res2"', 'feature_key: "stem"', 'feature_key: "stem"',
     'model_options.panoptic_deeplab.low_level.feature_key',
     r'"stem" is not an endpoint of the backbone'),
    ('unknown_autoaugment_policy', SYNTHETIC_CONFIG,
     'scale_factor_step_size: 0.25',
     'scale_factor_step_size: 0.25\n    autoaugment_policy_name: "rand"',
     'autoaugment_policy_name: "rand"',
     'train_dataset_options.augmentations.autoaugment_policy_name',
     r'unknown policy "rand"; valid: simple_classification_policy'),
    ('unknown_optimizer', SYNTHETIC_CONFIG, 'base_learning_rate: 0.004',
     'base_learning_rate: 0.004\n    optimizer: "adagrad"',
     'optimizer: "adagrad"', 'trainer_options.solver_options.optimizer',
     r'"adagrad" is not one of \(\'adam\', \'adamw\', \'sgd\'\)'),
    ('unknown_schedule', SYNTHETIC_CONFIG, 'base_learning_rate: 0.004',
     'base_learning_rate: 0.004\n    learning_policy: "step"',
     'learning_policy: "step"',
     'trainer_options.solver_options.learning_policy',
     r'"step" is not one of \(\'poly\', \'cosine\'\)'),
    ('two_resize_values', SYNTHETIC_CONFIG, 'batch_size: 8',
     'batch_size: 8\n  min_resize_value: 65\n  min_resize_value: 97',
     'min_resize_value: 65', 'train_dataset_options.min_resize_value',
     r'one value \(the shorter or longer side\), got \[65, 97\]'),
    ('max_resize_below_min', SYNTHETIC_CONFIG, 'batch_size: 8',
     'batch_size: 8\n  min_resize_value: 97\n  max_resize_value: 65',
     'max_resize_value: 65', 'train_dataset_options.max_resize_value',
     r'65 is smaller than min_resize_value 97'),
    ('resize_factor_without_resize', SYNTHETIC_CONFIG, 'batch_size: 8',
     'batch_size: 8\n  resize_factor: 16', 'resize_factor: 16',
     'train_dataset_options.resize_factor',
     r'applies to a resize: set min_resize_value or max_resize_value too'),
    ('eval_scale_not_positive', SYNTHETIC_CONFIG, _SYNTHETIC_SCALES,
     'eval_scales: 0.0\n  eval_scales: 1.0',
     'eval_scales: 0.0', 'evaluator_options.eval_scales',
     r'must all be positive, got \[0.0, 1.0\]'),
    ('eval_scale_twice', SYNTHETIC_CONFIG, _SYNTHETIC_SCALES,
     'eval_scales: 0.5\n  eval_scales: 0.5',
     'eval_scales: 0.5', 'evaluator_options.eval_scales',
     r'lists a scale twice: \[0.5, 0.5\]'),
    ('pretrained_weights_not_read', SYNTHETIC_CONFIG, 'name: "resnet50"',
     'name: "resnet50"\n    pretrained_weights: "imagenet.h5"',
     'pretrained_weights: "imagenet.h5"',
     'model_options.backbone.pretrained_weights',
     r'is not read here; give ImageNet weights as '
     r'model_options.initial_checkpoint'),
    ('adamw_decay_with_adam', SYNTHETIC_CONFIG, 'base_learning_rate: 0.004',
     'base_learning_rate: 0.004\n    adamw_weight_decay: 0.01',
     'adamw_weight_decay: 0.01',
     'trainer_options.solver_options.adamw_weight_decay',
     r'applies to optimizer "adamw" only, not "adam"'),
    ('more_centers_than_instance_ids', SYNTHETIC_CONFIG, 'keep_k_centers: 50',
     'keep_k_centers: 1200', 'keep_k_centers: 1200',
     'evaluator_options.keep_k_centers',
     r'^1200 centers can give one class 1200 instances, but '
     r'eval_dataset_options.dataset "synthetic_panoptic" has label_divisor '
     r'1000 \(instance ids 1\.\.999\); set keep_k_centers to at most 999$'),
    # Numbers out of range, NaN and inf included (`inf > 0` holds).
    ('sigma_inf', SYNTHETIC_CONFIG, 'sigma: 3', 'sigma: inf', 'sigma: inf',
     'train_dataset_options.sigma', r'^must be finite and positive, got inf$'),
    ('small_instance_weight_inf', SYNTHETIC_CONFIG,
     'small_instance_weight: 3.0', 'small_instance_weight: inf',
     'small_instance_weight: inf',
     'train_dataset_options.small_instance_weight',
     r'^must be finite and >= 0, got inf$'),
    ('max_scale_factor_inf', SYNTHETIC_CONFIG, 'max_scale_factor: 1.5',
     'max_scale_factor: inf', 'max_scale_factor: inf',
     'train_dataset_options.augmentations.max_scale_factor',
     r'^must be finite and positive, got inf$'),
    ('min_scale_factor_above_max', SYNTHETIC_CONFIG, 'min_scale_factor: 0.75',
     'min_scale_factor: 2.0', 'min_scale_factor: 2.0',
     'train_dataset_options.augmentations.min_scale_factor',
     r'^need 0 < min \(2.0\) <= max \(1.5\)$'),
    ('scale_factor_step_size_nan', SYNTHETIC_CONFIG,
     'scale_factor_step_size: 0.25', 'scale_factor_step_size: nan',
     'scale_factor_step_size: nan',
     'train_dataset_options.augmentations.scale_factor_step_size',
     r'^must be finite and >= 0, got nan$'),
    ('width_multiplier_inf', SYNTHETIC_CONFIG,
     'backbone_width_multiplier: 0.25', 'backbone_width_multiplier: inf',
     'backbone_width_multiplier: inf',
     'model_options.backbone.backbone_width_multiplier',
     r'^must be finite and positive, got inf$'),
    ('base_learning_rate_inf', SYNTHETIC_CONFIG, 'base_learning_rate: 0.004',
     'base_learning_rate: inf', 'base_learning_rate: inf',
     'trainer_options.solver_options.base_learning_rate',
     r'^must be finite and positive, got inf$'),
    ('base_learning_rate_nan', SYNTHETIC_CONFIG, 'base_learning_rate: 0.004',
     'base_learning_rate: nan', 'base_learning_rate: nan',
     'trainer_options.solver_options.base_learning_rate',
     r'^must be finite and positive, got nan$'),
    ('poly_learning_power_inf', SYNTHETIC_CONFIG, 'warmup_steps: 100',
     'warmup_steps: 100\n    poly_learning_power: inf',
     'poly_learning_power: inf',
     'trainer_options.solver_options.poly_learning_power',
     r'^must be finite and positive, got inf$'),
    ('batchnorm_epsilon_nan', SYNTHETIC_CONFIG, 'warmup_steps: 100',
     'warmup_steps: 100\n    batchnorm_epsilon: nan',
     'batchnorm_epsilon: nan',
     'trainer_options.solver_options.batchnorm_epsilon',
     r'^must be finite and positive, got nan$'),
    ('weight_decay_inf', SYNTHETIC_CONFIG, 'warmup_steps: 100',
     'warmup_steps: 100\n    weight_decay: inf', 'weight_decay: inf',
     'trainer_options.solver_options.weight_decay',
     r'^must be finite and >= 0, got inf$'),
    ('clip_gradient_norm_inf', SYNTHETIC_CONFIG, 'warmup_steps: 100',
     'warmup_steps: 100\n    use_gradient_clipping: true\n'
     '    clip_gradient_norm: inf', 'clip_gradient_norm: inf',
     'trainer_options.solver_options.clip_gradient_norm',
     r'^must be finite and positive, got inf$'),
    ('loss_weight_nan', SYNTHETIC_CONFIG, 'weight: 200', 'weight: nan',
     'weight: nan', 'trainer_options.loss_options.center_loss.weight',
     r'^must be finite and >= 0, got nan$'),
    ('center_score_threshold_inf', SYNTHETIC_CONFIG,
     'center_score_threshold: 0.1', 'center_score_threshold: inf',
     'center_score_threshold: inf', 'evaluator_options.center_score_threshold',
     r'^must be finite and >= 0, got inf$'),
    ('continuous_eval_timeout_below_minus_one', SYNTHETIC_CONFIG,
     'continuous_eval_timeout: 60', 'continuous_eval_timeout: -2',
     'continuous_eval_timeout: -2', 'evaluator_options.continuous_eval_timeout',
     r'^must be >= 0 seconds or -1 \(wait forever\), got -2$'),
    ('eval_scale_nan', SYNTHETIC_CONFIG, _SYNTHETIC_SCALES,
     'eval_scales: nan\n  eval_scales: 1.0',
     'eval_scales: nan', 'evaluator_options.eval_scales',
     r'^must all be finite, got \[nan, 1.0\]$'),
    ('eval_scale_negative', SYNTHETIC_CONFIG, _SYNTHETIC_SCALES,
     'eval_scales: -0.5\n  eval_scales: 1.0',
     'eval_scales: -0.5', 'evaluator_options.eval_scales',
     r'^must all be positive, got \[-0.5, 1.0\]$'),
    ('best_checkpoint_metric_unknown', SYNTHETIC_CONFIG,
     'num_checkpoints_to_keep: 3', 'num_checkpoints_to_keep: 3\n'
     '  keep_best_checkpoint: true\n  best_checkpoint_metric: "PQ"',
     'best_checkpoint_metric: "PQ"', 'trainer_options.best_checkpoint_metric',
     r'^"PQ" is not a metric of this config\'s evaluation; valid: pq_all, '
     r'pq_things, pq_stuff, sq_all, sq_things, sq_stuff, rq_all, rq_things, '
     r'rq_stuff, miou, ap, ap50, ap75, ap_small, ap_medium, ap_large$'),
    # A count is no quality metric; refused also without keep_best_checkpoint.
    ('best_checkpoint_metric_a_count', SYNTHETIC_CONFIG,
     'num_checkpoints_to_keep: 3', 'num_checkpoints_to_keep: 3\n'
     '  best_checkpoint_metric: "num_images"',
     'best_checkpoint_metric: "num_images"',
     'trainer_options.best_checkpoint_metric',
     r'^"num_images" is not a metric of this config\'s evaluation; valid: '
     r'pq_all, .*, miou, ap, .*, ap_large$'),
    ('coco_300_centers', _COCO, 'keep_k_centers: 255', 'keep_k_centers: 300',
     'keep_k_centers: 300', 'evaluator_options.keep_k_centers',
     r'^300 centers can give one class 300 instances, but '
     r'eval_dataset_options.dataset "coco_panoptic" has label_divisor 256 '
     r'\(instance ids 1\.\.255\); set keep_k_centers to at most 255$'),
]


def _bad_config(tmp_path, case):
  name, base, old, new, line_text, _, _ = case
  text = _edit(base, old, new)
  path = tmp_path / f'{name}.textproto'
  path.write_text(text)
  lines = [i for i, line in enumerate(text.splitlines(), 1)
           if line.strip() == line_text]
  assert lines, line_text
  return str(path), lines[0]


@pytest.mark.parametrize('case', BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_one_located_config_error(tmp_path, case):
  path, line = _bad_config(tmp_path, case)
  field, message = case[5], case[6]
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.load_experiment(path)
  error = info.value
  assert (error.path, error.line, error.field) == (path, line, field)
  assert '\n' not in str(error)
  assert str(error).startswith(f'{path}:{line}: {field}: ')
  assert re.search(message, error.reason), error.reason


def test_a_layer_multiplier_the_backbone_cannot_build_is_a_config_error(
    tmp_path):
  """Caught when the backbone is built: still a ConfigError, not a trace."""
  text = _edit(SYNTHETIC_CONFIG, 'backbone_layer_multiplier: 0.5',
               'backbone_layer_multiplier: 0.1')
  path = tmp_path / 'thin.textproto'
  path.write_text(text)
  parts = config_lib.load_experiment(str(path))
  line = text.splitlines().index('  backbone {') + 1
  with pytest.raises(config_lib.ConfigError,
                     match=rf'thin.textproto:{line}: model_options.backbone: '
                     r'backbone_layer_multiplier 0.1 leaves a stage without '
                     r'blocks'):
    parts.build_model(input_size=(33, 33))


def test_set_fields_with_no_meaning_here_give_one_warning_line_each(
    tmp_path, caplog):
  text = _edit(SYNTHETIC_CONFIG, 'nms_kernel: 7',
               'nms_kernel: 7\n  save_raw_predictions: true\n'
               '  merge_semantic_and_instance_with_tf_op: true')
  path = tmp_path / 'warn.textproto'
  path.write_text(text)
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    parts = config_lib.load_experiment(str(path))
  lines = text.splitlines()
  save = lines.index('  save_raw_predictions: true') + 1
  merge = lines.index('  merge_semantic_and_instance_with_tf_op: true') + 1
  assert list(parts.warnings) == [
      f'{path}:{save}: evaluator_options.save_raw_predictions: deeplab2\'s '
      'raw prediction files are not written; save_predictions writes the '
      'official formats (COCO panoptic, cityscapesScripts); ignored',
      f'{path}:{merge}: evaluator_options.'
      'merge_semantic_and_instance_with_tf_op: there is no custom merge op '
      'here; the pure-TF merge runs (same result)']
  logged = [r.getMessage() for r in caplog.records if r.name == 'deeplab2']
  assert logged == [f'config: {w}' for w in parts.warnings]


def test_mask_ap_metrics_need_the_instance_branch(tmp_path):
  best = ('num_checkpoints_to_keep: 3\n  keep_best_checkpoint: true\n'
          '  best_checkpoint_metric: "ap50"')
  text = _edit(SYNTHETIC_CONFIG, 'num_checkpoints_to_keep: 3', best)
  path = tmp_path / 'ap50.textproto'
  path.write_text(text)
  assert config_lib.load_experiment(str(path)).best_checkpoint.metric == (
      'ap50')
  path.write_text(text.replace('    instance {',
                               '    instance {\n      enable: false', 1))
  line = path.read_text().splitlines().index(
      '  best_checkpoint_metric: "ap50"') + 1
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.load_experiment(str(path))
  assert str(info.value) == (
      f'{path}:{line}: trainer_options.best_checkpoint_metric: "ap50" is not '
      'a metric of this config\'s evaluation (mask AP is computed with the '
      'instance branch only: model_options.panoptic_deeplab.instance.enable)'
      '; valid: pq_all, pq_things, pq_stuff, sq_all, sq_things, sq_stuff, '
      'rq_all, rq_things, rq_stuff, miou')


def test_best_checkpoint_metric_without_keep_best_is_one_warning(tmp_path):
  text = _edit(SYNTHETIC_CONFIG, 'num_checkpoints_to_keep: 3',
               'num_checkpoints_to_keep: 3\n  best_checkpoint_metric: "miou"')
  path = tmp_path / 'metric.textproto'
  path.write_text(text)
  line = text.splitlines().index('  best_checkpoint_metric: "miou"') + 1
  parts = config_lib.load_experiment(str(path))
  assert parts.warnings == (
      f'{path}:{line}: trainer_options.best_checkpoint_metric: applies with '
      'keep_best_checkpoint: true only; ignored',)
  assert parts.best_checkpoint == values.BestCheckpoint(
      keep=False, metric='miou')


def test_set_fields_asking_for_nothing_are_quiet(tmp_path):
  text = _edit(SYNTHETIC_CONFIG,
               'add_flipped_images: true\n  ' + _SYNTHETIC_SCALES,
               'add_flipped_images: false\n'
               '  eval_scales: 1.0\n  save_predictions: false\n'
               '  merge_semantic_and_instance_with_tf_op: false')
  text = text.replace('num_checkpoints_to_keep: 3',
                      'num_checkpoints_to_keep: 3\n'
                      '  keep_best_checkpoint: false', 1)
  path = tmp_path / 'quiet.textproto'
  path.write_text(text)
  assert config_lib.load_experiment(str(path)).warnings == ()


def test_shipped_coco_config_loads_without_warnings():
  assert config_lib.load_experiment(_COCO).warnings == ()


def test_train_prints_each_config_error_as_one_line(tmp_path, capsys,
                                                    monkeypatch):
  """trainer/train.py on every bad config of the table: one `error:` line,
  exit status 1, no traceback, no model_dir. The first case runs as its
  own process (the shim, as a script); the others go through
  deeplab2.cli.train.main() in this process."""
  runs = []
  for case in BAD_CONFIGS:
    path, line = _bad_config(tmp_path, case)
    runs.append((path, line, case[5], str(tmp_path / f'{case[0]}_dir')))
  script = os.path.join(REPO_ROOT, 'trainer', 'train.py')
  path, line, field, model_dir = runs[0]
  result = subprocess.run(
      [sys.executable, script, f'--config_file={path}', '--mode=train',
       f'--model_dir={model_dir}'],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
      check=False)
  assert result.returncode == 1, result.stderr
  assert 'Traceback' not in result.stderr + result.stdout
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, result.stderr
  assert errors[0].startswith(f'error: {path}:{line}: {field}: ')
  assert not os.path.exists(model_dir)

  monkeypatch.chdir(tmp_path)
  for path, line, field, model_dir in runs[1:]:
    result = cli_runner.run_main(
        train.main, [f'--config_file={path}', '--mode=train',
                     f'--model_dir={model_dir}'], capsys)
    assert result.returncode == 1, (path, result.stderr)
    errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
    assert len(errors) == 1, (path, result.stderr)
    assert errors[0].startswith(f'error: {path}:{line}: {field}: '), errors
    # The message is one line: nothing of it follows the `error:` line.
    assert result.stderr.endswith(errors[0] + '\n'), result.stderr
    assert 'Traceback' not in result.stderr
    assert not os.path.exists(model_dir)
