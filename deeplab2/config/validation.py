"""Checks an ExperimentOptions for values that cannot work.

Every error is a ConfigError naming the file, the line (when the field is
set in the text) and the dotted field path.
"""

from deeplab2.config import errors
from deeplab2.config import text_locations
from deeplab2.data import dataset_descriptor
from deeplab2.losses import names as loss_names

_OUTPUT_STRIDES = (4, 8, 16, 32)
_LEARNING_POLICIES = ('poly', 'cosine')
_OPTIMIZERS = ('adam', 'sgd', 'adamw')
_CONV_TYPES = ('depthwise_separable_conv', 'standard_conv')
# Keras dtype policies of ModelOptions.dtype_policy.
DTYPE_POLICIES = ('float32', 'mixed_bfloat16', 'mixed_float16')


class _Checker:
  """Collects the location context for one config."""

  def __init__(self, path, text):
    self.path = path
    self.text = text

  def fail(self, field, reason):
    raise errors.ConfigError(
        reason, path=self.path,
        line=text_locations.first_line(self.text, field), field=field)

  def require(self, condition, field, reason):
    if not condition:
      self.fail(field, reason)


def validate_experiment(config, path=None, text=None, num_replicas=1,
                        descriptor_base_dir=None):
  """Validates `config` in place (it is not modified).

  Args:
    config: config_pb2.ExperimentOptions.
    path: the config file, for messages.
    text: the config's text, to locate fields.
    num_replicas: replicas of the distribution strategy; batch sizes must be
      divisible by it.
    descriptor_base_dir: where relative descriptor paths are looked up.

  Returns:
    dict mapping 'train' / 'eval' to the DatasetDescriptor of each dataset
    option that is set.

  Raises:
    ConfigError: the first problem found.
  """
  check = _Checker(path, text)
  model = config.model_options
  check.require(model.HasField('panoptic_deeplab'),
                'model_options.panoptic_deeplab',
                'this package builds Panoptic-DeepLab; set panoptic_deeplab')
  output_stride = model.backbone.output_stride
  check.require(output_stride in _OUTPUT_STRIDES,
                'model_options.backbone.output_stride',
                f'{output_stride} is not one of {_OUTPUT_STRIDES}')
  check.require(model.dtype_policy in DTYPE_POLICIES,
                'model_options.dtype_policy',
                f'"{model.dtype_policy}" is not one of {DTYPE_POLICIES}')
  _check_decoder(check, model.decoder, 'model_options.decoder')
  pdl = model.panoptic_deeplab
  _check_head(check, pdl.semantic_head,
              'model_options.panoptic_deeplab.semantic_head')
  if pdl.instance.enable:
    prefix = 'model_options.panoptic_deeplab.instance'
    if pdl.instance.HasField('instance_decoder_override'):
      _check_decoder(check, pdl.instance.instance_decoder_override,
                     f'{prefix}.instance_decoder_override')
    _check_head(check, pdl.instance.center_head, f'{prefix}.center_head',
                expected_outputs=1)
    _check_head(check, pdl.instance.regression_head,
                f'{prefix}.regression_head', expected_outputs=2)

  descriptors = {}
  for split, field in (('train', 'train_dataset_options'),
                       ('eval', 'eval_dataset_options')):
    if not config.HasField(field):
      continue
    options = getattr(config, field)
    descriptor = _check_dataset(check, options, field, output_stride,
                                num_replicas, descriptor_base_dir)
    check.require(
        pdl.semantic_head.output_channels == descriptor.num_classes,
        'model_options.panoptic_deeplab.semantic_head.output_channels',
        f'{pdl.semantic_head.output_channels} classes, but {field}.dataset '
        f'"{options.dataset}" has {descriptor.num_classes}')
    descriptors[split] = descriptor

  _check_trainer(check, config.trainer_options)
  _check_evaluator(check, config.evaluator_options)
  return descriptors


def _check_decoder(check, decoder, field):
  check.require(decoder.feature_key, f'{field}.feature_key',
                'must name a backbone endpoint, e.g. "res5"')
  check.require(decoder.decoder_channels > 0, f'{field}.decoder_channels',
                f'must be positive, got {decoder.decoder_channels}')
  check.require(decoder.aspp_channels > 0, f'{field}.aspp_channels',
                f'must be positive, got {decoder.aspp_channels}')
  check.require(decoder.decoder_conv_type in _CONV_TYPES,
                f'{field}.decoder_conv_type',
                f'"{decoder.decoder_conv_type}" is not one of {_CONV_TYPES}')
  check.require(decoder.aspp_conv_type in _CONV_TYPES,
                f'{field}.aspp_conv_type',
                f'"{decoder.aspp_conv_type}" is not one of {_CONV_TYPES}')
  if not decoder.aspp_use_only_1x1_proj_conv:
    check.require(len(decoder.atrous_rates) == 3, f'{field}.atrous_rates',
                  f'needs 3 rates, got {list(decoder.atrous_rates)}')
    check.require(all(r > 0 for r in decoder.atrous_rates),
                  f'{field}.atrous_rates',
                  f'rates must be positive, got {list(decoder.atrous_rates)}')


def _check_head(check, head, field, expected_outputs=None):
  check.require(head.output_channels > 0, f'{field}.output_channels',
                f'must be positive, got {head.output_channels}')
  if expected_outputs is not None:
    check.require(head.output_channels == expected_outputs,
                  f'{field}.output_channels',
                  f'must be {expected_outputs}, got {head.output_channels}')
  check.require(head.head_channels > 0, f'{field}.head_channels',
                f'must be positive, got {head.head_channels}')
  check.require(head.head_conv_type in _CONV_TYPES, f'{field}.head_conv_type',
                f'"{head.head_conv_type}" is not one of {_CONV_TYPES}')


def _check_dataset(check, options, field, output_stride, num_replicas,
                   base_dir):
  check.require(options.dataset, f'{field}.dataset',
                'must name a built-in dataset or a descriptor JSON')
  try:
    descriptor = dataset_descriptor.get_descriptor(options.dataset, base_dir)
  except (KeyError, ValueError) as e:
    check.fail(f'{field}.dataset', str(e).strip('"\''))
  check.require(options.file_pattern, f'{field}.file_pattern',
                'needs at least one TFRecord glob pattern')
  check.require(options.batch_size > 0, f'{field}.batch_size',
                f'must be positive, got {options.batch_size}')
  check.require(
      options.batch_size % num_replicas == 0, f'{field}.batch_size',
      f'{options.batch_size} is not divisible by the {num_replicas} replicas')
  crop = list(options.crop_size)
  check.require(len(crop) == 2, f'{field}.crop_size',
                f'needs [height, width], got {crop}')
  for size in crop:
    check.require(
        size > 1 and (size - 1) % output_stride == 0, f'{field}.crop_size',
        f'{crop}: each side must be output_stride * k + 1 '
        f'(output_stride {output_stride}, e.g. {output_stride * 4 + 1})')
  aug = options.augmentations
  check.require(0 < aug.min_scale_factor <= aug.max_scale_factor,
                f'{field}.augmentations.min_scale_factor',
                f'need 0 < min ({aug.min_scale_factor}) <= max '
                f'({aug.max_scale_factor})')
  check.require(aug.scale_factor_step_size >= 0,
                f'{field}.augmentations.scale_factor_step_size',
                f'must be >= 0, got {aug.scale_factor_step_size}')
  check.require(options.sigma > 0, f'{field}.sigma',
                f'must be positive, got {options.sigma}')
  return descriptor


def _check_trainer(check, trainer):
  field = 'trainer_options'
  for name in ('save_checkpoints_steps', 'save_summaries_steps',
               'steps_per_loop', 'num_checkpoints_to_keep'):
    value = getattr(trainer, name)
    check.require(value > 0, f'{field}.{name}', f'must be positive, got {value}')
  losses = trainer.loss_options
  for name, valid in (
      ('semantic_loss', loss_names.SEMANTIC_LOSS_NAMES),
      ('center_loss', loss_names.CENTER_LOSS_NAMES),
      ('regression_loss', loss_names.REGRESSION_LOSS_NAMES)):
    loss = getattr(losses, name)
    if not losses.HasField(name):
      continue
    check.require(loss.name in valid, f'{field}.loss_options.{name}.name',
                  f'"{loss.name}" is not one of {valid}')
    check.require(loss.weight >= 0, f'{field}.loss_options.{name}.weight',
                  f'must be >= 0, got {loss.weight}')
    check.require(0 < loss.top_k_percent <= 1,
                  f'{field}.loss_options.{name}.top_k_percent',
                  f'must be in (0, 1], got {loss.top_k_percent}')
  solver = trainer.solver_options
  sfield = f'{field}.solver_options'
  check.require(solver.learning_policy in _LEARNING_POLICIES,
                f'{sfield}.learning_policy',
                f'"{solver.learning_policy}" is not one of '
                f'{_LEARNING_POLICIES}')
  check.require(solver.optimizer in _OPTIMIZERS, f'{sfield}.optimizer',
                f'"{solver.optimizer}" is not one of {_OPTIMIZERS}')
  check.require(solver.base_learning_rate > 0, f'{sfield}.base_learning_rate',
                f'must be positive, got {solver.base_learning_rate}')
  check.require(solver.training_number_of_steps > 0,
                f'{sfield}.training_number_of_steps',
                f'must be positive, got {solver.training_number_of_steps}')
  check.require(0 <= solver.warmup_steps < solver.training_number_of_steps,
                f'{sfield}.warmup_steps',
                f'{solver.warmup_steps} must be in [0, '
                f'training_number_of_steps={solver.training_number_of_steps})')
  check.require(0 < solver.batchnorm_momentum < 1,
                f'{sfield}.batchnorm_momentum',
                f'must be in (0, 1), got {solver.batchnorm_momentum}')


def _check_evaluator(check, evaluator):
  field = 'evaluator_options'
  check.require(evaluator.eval_interval > 0, f'{field}.eval_interval',
                f'must be positive, got {evaluator.eval_interval}')
  check.require(evaluator.nms_kernel > 0 and evaluator.nms_kernel % 2 == 1,
                f'{field}.nms_kernel',
                f'must be a positive odd number, got {evaluator.nms_kernel}')
  check.require(evaluator.keep_k_centers == -1 or evaluator.keep_k_centers > 0,
                f'{field}.keep_k_centers',
                f'must be positive or -1, got {evaluator.keep_k_centers}')
  check.require(0 <= evaluator.center_score_threshold,
                f'{field}.center_score_threshold',
                f'must be >= 0, got {evaluator.center_score_threshold}')
  check.require(evaluator.stuff_area_limit >= 0, f'{field}.stuff_area_limit',
                f'must be >= 0, got {evaluator.stuff_area_limit}')
