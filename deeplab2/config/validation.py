"""Checks an ExperimentOptions for values that cannot work.

The one home of config checks. Valid values come from the code they govern:
the backbone registry (names, each backbone's output strides, endpoints and
applied options), the convolution types, the dtype policies, the AutoAugment
policies, the optimizer registry and the learning policies, the loss names
and the dataset registry.

Every field of the schema is read by `parts.py`, or refused while set (it
would change the results but is not implemented), or named in one warning
line (a deeplab2 implementation detail or side output with no meaning here):
see FIELD_USE. Every problem is a ConfigError naming the file, the line
(when the field is set in the text) and the dotted field path.
"""

import dataclasses

import tensorflow as tf

from deeplab2.config import errors
from deeplab2.config import text_locations
from deeplab2.data import autoaugment
from deeplab2.data import dataset_descriptor
from deeplab2.losses import names as loss_names
from deeplab2.modeling import backbones
from deeplab2.modeling.backbones import base as backbone_base
from deeplab2.modeling import precision
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import drop_path
from deeplab2.solver import optimizers
from deeplab2.solver import schedules

READ = 'read'
NOT_IMPLEMENTED = 'not implemented'
NO_MEANING_HERE = 'no meaning here'


@dataclasses.dataclass(frozen=True)
class FieldUse:
  """How this package treats one schema field.

  Attributes:
    kind: READ, NOT_IMPLEMENTED (an error while `active`) or NO_MEANING_HERE
      (one warning while `active`).
    active: callable(value) -> bool, whether a set value asks for something
      (e.g. `add_flipped_images: false` asks for nothing).
    reason: the message.
  """
  kind: str
  active: object = None
  reason: str = ''


def _true(value):
  return bool(value)


def _always(value):
  del value
  return True


_E = 'deeplab2.EvaluatorOptions'
_D = 'deeplab2.DatasetOptions'
_NO_RAW_FILES = ('deeplab2\'s raw prediction files are not written; '
                 'save_predictions writes the official formats (COCO '
                 'panoptic, cityscapesScripts); ignored')

# Fields that are not simply read. Every other field of the schema is READ;
# tests/config/test_field_use.py checks that parts.py reads each of them.
FIELD_USE = {
    f'{_D}.use_two_frames': FieldUse(
        NOT_IMPLEMENTED, _true,
        'two-frame input (Motion-DeepLab) is not supported'),
    f'{_D}.decode_groundtruth_label': FieldUse(
        NOT_IMPLEMENTED, lambda value: not value,
        'training and evaluation need the ground-truth labels; set it true'),
    'deeplab2.LossOptions.motion_loss': FieldUse(
        NOT_IMPLEMENTED, _always,
        'Motion-DeepLab losses are not supported'),
    'deeplab2.ModelOptions.BackboneOptions.pretrained_weights': FieldUse(
        NOT_IMPLEMENTED, _true,
        'is not read here; give ImageNet weights as '
        'model_options.initial_checkpoint (a Keras Applications '
        '.weights.h5 file or a checkpoint)'),
    'deeplab2.ModelOptions.deeplab_v3': FieldUse(
        NOT_IMPLEMENTED, _always,
        'this package builds Panoptic-DeepLab; set panoptic_deeplab'),
    'deeplab2.ModelOptions.deeplab_v3_plus': FieldUse(
        NOT_IMPLEMENTED, _always,
        'this package builds Panoptic-DeepLab; set panoptic_deeplab'),
    'deeplab2.ModelOptions.motion_deeplab': FieldUse(
        NOT_IMPLEMENTED, _always,
        'this package builds Panoptic-DeepLab; set panoptic_deeplab'),
    f'{_E}.save_raw_predictions': FieldUse(NO_MEANING_HERE, _true,
                                           _NO_RAW_FILES),
    f'{_E}.raw_panoptic_format': FieldUse(NO_MEANING_HERE, _always,
                                          _NO_RAW_FILES),
    f'{_E}.convert_raw_to_eval_ids': FieldUse(NO_MEANING_HERE, _always,
                                              _NO_RAW_FILES),
    f'{_E}.detailed_ap_metrics': FieldUse(
        NO_MEANING_HERE, _true, 'mask AP always reports AP, AP50, AP75 and '
        'AP small / medium / large; ignored'),
    f'{_E}.use_tf_function': FieldUse(
        NO_MEANING_HERE, lambda value: not value,
        'evaluation always runs in a tf.function here; ignored'),
    f'{_E}.merge_semantic_and_instance_with_tf_op': FieldUse(
        NO_MEANING_HERE, _true,
        'there is no custom merge op here; the pure-TF merge runs (same '
        'result)'),
}

# BackboneOptions (plain) field -> ModelOptions.BackboneOptions field.
_BACKBONE_FIELDS = {
    'stem_width_multiplier': 'stem_width_multiplier',
    'width_multiplier': 'backbone_width_multiplier',
    'layer_multiplier': 'backbone_layer_multiplier',
    'use_squeeze_and_excite': 'use_squeeze_and_excite',
    'drop_path_keep_prob': 'drop_path_keep_prob',
    'drop_path_schedule': 'drop_path_schedule',
    'use_sac_beyond_stride': 'use_sac_beyond_stride',
}


def backbone_options(proto):
  """backbones.BackboneOptions of a ModelOptions.BackboneOptions message."""
  return backbones.BackboneOptions(
      output_stride=proto.output_stride,
      **{plain: getattr(proto, field)
         for plain, field in _BACKBONE_FIELDS.items()})


def instance_branch_inputs(model_options):
  """What the instance decoder is built from, with the fields that say so.

  The instance branch takes `instance_decoder_override` and
  `low_level_override` when set, else the semantic branch's decoder and
  low-level options.

  Returns:
    (decoder options, its dotted field, low-level options, their field).
  """
  pdl = model_options.panoptic_deeplab
  prefix = 'model_options.panoptic_deeplab.instance'
  decoder, decoder_field = model_options.decoder, 'model_options.decoder'
  if pdl.instance.HasField('instance_decoder_override'):
    decoder = pdl.instance.instance_decoder_override
    decoder_field = f'{prefix}.instance_decoder_override'
  low_levels = pdl.low_level
  low_level_field = 'model_options.panoptic_deeplab.low_level'
  if pdl.instance.low_level_override:
    low_levels = pdl.instance.low_level_override
    low_level_field = f'{prefix}.low_level_override'
  return decoder, decoder_field, low_levels, low_level_field


def single_resize_value(values):
  """The one non-zero value of a repeated resize field, or 0."""
  values = [v for v in values if v]
  return values[0] if values else 0


class _Checker:
  """Locates fields of one config for its messages."""

  def __init__(self, path, text):
    self.path = path
    self.text = text
    self.warnings = []

  def _line(self, field, index=0):
    return text_locations.first_line(self.text, field, index)

  def fail(self, field, reason, index=0):
    """Raises; `index` picks the item of a repeated message."""
    raise errors.ConfigError(reason, path=self.path,
                             line=self._line(field, index), field=field)

  def require(self, condition, field, reason, index=0):
    if not condition:
      self.fail(field, reason, index)

  def warn(self, field, reason):
    self.warnings.append(errors.located(reason, self.path, self._line(field),
                                        field))


def validate_experiment(config, path=None, text=None, num_replicas=1,
                        descriptor_base_dir=None):
  """Validates `config` (it is not modified).

  Args:
    config: config_pb2.ExperimentOptions.
    path: the config file, for messages.
    text: the config's text, to locate fields.
    num_replicas: replicas of the distribution strategy; batch sizes must be
      divisible by it.
    descriptor_base_dir: where relative descriptor paths are looked up.

  Returns:
    (descriptors, warnings): a dict mapping 'train' / 'eval' to the
    DatasetDescriptor of each dataset option that is set, and a list of
    one-line warnings (`file:line: field: message`) for set fields with no
    meaning here.

  Raises:
    ConfigError: the first problem found.
  """
  check = _Checker(path, text)
  _check_field_use(check, config, '')
  check.require(not config.HasField('seed') or 0 <= config.seed < 2 ** 32,
                'seed', f'must be in [0, 2**32), got {config.seed}')
  model = config.model_options
  check.require(model.HasField('panoptic_deeplab'),
                'model_options.panoptic_deeplab',
                'this package builds Panoptic-DeepLab; set panoptic_deeplab')
  check.require(model.dtype_policy in precision.DTYPE_POLICIES,
                'model_options.dtype_policy',
                f'"{model.dtype_policy}" is not one of '
                f'{precision.DTYPE_POLICIES}')
  if model.initial_checkpoint:
    path = model.initial_checkpoint
    check.require(
        tf.io.gfile.exists(path) or tf.io.gfile.exists(path + '.index'),
        'model_options.initial_checkpoint',
        f'"{path}" is neither a weights file nor a checkpoint prefix (no '
        f'{path}.index)')
  entry = _check_backbone(check, model.backbone)
  output_stride = model.backbone.output_stride
  pdl = model.panoptic_deeplab
  _check_decoder(check, model.decoder, pdl.low_level, entry,
                 'model_options.decoder',
                 'model_options.panoptic_deeplab.low_level')
  _check_head(check, pdl.semantic_head,
              'model_options.panoptic_deeplab.semantic_head')
  if pdl.instance.enable:
    prefix = 'model_options.panoptic_deeplab.instance'
    decoder, decoder_field, low_levels, low_level_field = (
        instance_branch_inputs(model))
    _check_decoder(check, decoder, low_levels, entry, decoder_field,
                   low_level_field)
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
    descriptor = _check_dataset(check, options, field, split, output_stride,
                                num_replicas, descriptor_base_dir)
    check.require(
        pdl.semantic_head.output_channels == descriptor.num_classes,
        'model_options.panoptic_deeplab.semantic_head.output_channels',
        f'{pdl.semantic_head.output_channels} classes, but {field}.dataset '
        f'"{options.dataset}" has {descriptor.num_classes}')
    descriptors[split] = descriptor
  if len(descriptors) == 2:
    train, evaluation = descriptors['train'], descriptors['eval']
    check.require(
        train.label_spec == evaluation.label_spec,
        'eval_dataset_options.dataset',
        f'"{config.eval_dataset_options.dataset}" labels pixels otherwise '
        f'than train_dataset_options.dataset '
        f'"{config.train_dataset_options.dataset}" (classes, thing ids, '
        'ignore label or label divisor differ)')

  _check_trainer(check, config.trainer_options)
  _check_evaluator(check, config.evaluator_options)
  if descriptors:
    # Both splits label pixels alike (checked above); eval is what is
    # post-processed.
    split = 'eval' if 'eval' in descriptors else 'train'
    _check_instance_ids_fit(check, config.evaluator_options,
                            descriptors[split], f'{split}_dataset_options',
                            getattr(config, f'{split}_dataset_options'))
  return descriptors, check.warnings


def _check_field_use(check, message, prefix):
  """Refuses NOT_IMPLEMENTED fields and warns on NO_MEANING_HERE ones."""
  for field, value in message.ListFields():
    path = f'{prefix}{field.name}'
    use = FIELD_USE.get(field.full_name)
    if use is not None and use.active(value):
      if use.kind == NOT_IMPLEMENTED:
        check.fail(path, use.reason)
      check.warn(path, use.reason)
    if field.message_type is None:
      continue
    for item in ([value] if hasattr(value, 'ListFields') else value):
      _check_field_use(check, item, f'{path}.')


def _check_backbone(check, backbone):
  """Checks the backbone options; returns its registry entry."""
  field = 'model_options.backbone'
  names = backbones.BACKBONES.names()
  check.require(backbone.name in names, f'{field}.name',
                f'unknown backbone "{backbone.name}"; valid: '
                f'{", ".join(names)}')
  entry = backbones.BACKBONES.get(backbone.name)
  check.require(backbone.output_stride in entry.output_strides,
                f'{field}.output_stride',
                f'{backbone.output_stride}: backbone "{backbone.name}" can '
                f'be built with output strides {entry.output_strides}')
  unapplied = backbone_base.non_default_option(
      backbone_options(backbone), entry.applied_options)
  if unapplied:
    name = _BACKBONE_FIELDS[unapplied[0]]
    check.fail(f'{field}.{name}',
               f'{unapplied[1]!r}: backbone "{backbone.name}" does not apply '
               f'{name}; leave it at its default')
  for name in ('stem_width_multiplier', 'backbone_width_multiplier',
               'backbone_layer_multiplier'):
    value = getattr(backbone, name)
    check.require(value > 0, f'{field}.{name}',
                  f'must be positive, got {value}')
  check.require(0 < backbone.drop_path_keep_prob <= 1,
                f'{field}.drop_path_keep_prob',
                f'must be in (0, 1], got {backbone.drop_path_keep_prob}')
  check.require(backbone.drop_path_schedule in drop_path.SCHEDULES,
                f'{field}.drop_path_schedule',
                f'"{backbone.drop_path_schedule}" is not one of '
                f'{drop_path.SCHEDULES}')
  return entry


def _check_decoder(check, decoder, low_levels, entry, field, low_level_field):
  endpoints = ', '.join(entry.endpoints)
  check.require(decoder.feature_key in entry.endpoints,
                f'{field}.feature_key',
                f'"{decoder.feature_key}" is not an endpoint of the backbone; '
                f'it has {endpoints}')
  for index, low in enumerate(low_levels):
    check.require(low.feature_key in entry.endpoints,
                  f'{low_level_field}.feature_key',
                  f'"{low.feature_key}" is not an endpoint of the backbone; '
                  f'it has {endpoints}', index)
    check.require(low.channels_project > 0,
                  f'{low_level_field}.channels_project',
                  f'must be positive, got {low.channels_project}', index)
  check.require(decoder.decoder_channels > 0, f'{field}.decoder_channels',
                f'must be positive, got {decoder.decoder_channels}')
  check.require(decoder.aspp_channels > 0, f'{field}.aspp_channels',
                f'must be positive, got {decoder.aspp_channels}')
  for name in ('decoder_conv_type', 'aspp_conv_type'):
    value = getattr(decoder, name)
    check.require(value in convolutions.CONV_TYPES, f'{field}.{name}',
                  f'"{value}" is not one of {convolutions.CONV_TYPES}')
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
  check.require(head.head_conv_type in convolutions.CONV_TYPES,
                f'{field}.head_conv_type',
                f'"{head.head_conv_type}" is not one of '
                f'{convolutions.CONV_TYPES}')


def _check_dataset(check, options, field, split, output_stride,
                   num_replicas, base_dir):
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
  # An eval batch of any size works: each replica takes ceil(batch /
  # replicas) images and the last global batch is padded.
  check.require(
      split != 'train' or options.batch_size % num_replicas == 0,
      f'{field}.batch_size',
      f'{options.batch_size} is not divisible by the {num_replicas} replicas')
  crop = list(options.crop_size)
  check.require(len(crop) == 2, f'{field}.crop_size',
                f'needs [height, width], got {crop}')
  for size in crop:
    check.require(
        size > 1 and (size - 1) % output_stride == 0, f'{field}.crop_size',
        f'{crop}: each side must be output_stride * k + 1 '
        f'(output_stride {output_stride}, e.g. {output_stride * 4 + 1})')
  _check_resize(check, options, field)
  aug = options.augmentations
  aug_field = f'{field}.augmentations'
  check.require(0 < aug.min_scale_factor <= aug.max_scale_factor,
                f'{aug_field}.min_scale_factor',
                f'need 0 < min ({aug.min_scale_factor}) <= max '
                f'({aug.max_scale_factor})')
  check.require(aug.scale_factor_step_size >= 0,
                f'{aug_field}.scale_factor_step_size',
                f'must be >= 0, got {aug.scale_factor_step_size}')
  policies = sorted(autoaugment.POLICIES)
  check.require(
      not aug.autoaugment_policy_name or
      aug.autoaugment_policy_name in autoaugment.POLICIES,
      f'{aug_field}.autoaugment_policy_name',
      f'unknown policy "{aug.autoaugment_policy_name}"; valid: '
      f'{", ".join(policies)}')
  if split == 'eval' and (
      aug.min_scale_factor != 1 or aug.max_scale_factor != 1 or
      aug.autoaugment_policy_name):
    check.warn(aug_field, 'evaluation does not augment; ignored')
  check.require(options.sigma > 0, f'{field}.sigma',
                f'must be positive, got {options.sigma}')
  check.require(options.small_instance_threshold >= 0,
                f'{field}.small_instance_threshold',
                f'must be >= 0, got {options.small_instance_threshold}')
  check.require(options.small_instance_weight >= 0,
                f'{field}.small_instance_weight',
                f'must be >= 0, got {options.small_instance_weight}')
  return descriptor


def _check_resize(check, options, field):
  for name in ('min_resize_value', 'max_resize_value'):
    values = list(getattr(options, name))
    check.require(all(v >= 0 for v in values), f'{field}.{name}',
                  f'must be >= 0, got {values}')
    check.require(len({v for v in values if v}) <= 1, f'{field}.{name}',
                  f'one value (the shorter or longer side), got {values}')
  min_resize = single_resize_value(options.min_resize_value)
  max_resize = single_resize_value(options.max_resize_value)
  check.require(not (min_resize and max_resize) or min_resize <= max_resize,
                f'{field}.max_resize_value',
                f'{max_resize} is smaller than min_resize_value {min_resize}')
  check.require(options.resize_factor >= 0, f'{field}.resize_factor',
                f'must be >= 0, got {options.resize_factor}')
  check.require(not options.resize_factor or min_resize or max_resize,
                f'{field}.resize_factor',
                'applies to a resize: set min_resize_value or '
                'max_resize_value too')


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
    if not losses.HasField(name):
      continue
    loss = getattr(losses, name)
    loss_field = f'{field}.loss_options.{name}'
    check.require(loss.name in valid, f'{loss_field}.name',
                  f'"{loss.name}" is not one of {valid}')
    check.require(loss.weight >= 0, f'{loss_field}.weight',
                  f'must be >= 0, got {loss.weight}')
    check.require(0 < loss.top_k_percent <= 1, f'{loss_field}.top_k_percent',
                  f'must be in (0, 1], got {loss.top_k_percent}')
  solver = trainer.solver_options
  sfield = f'{field}.solver_options'
  check.require(solver.learning_policy in schedules.LEARNING_POLICIES,
                f'{sfield}.learning_policy',
                f'"{solver.learning_policy}" is not one of '
                f'{schedules.LEARNING_POLICIES}')
  names = optimizers.OPTIMIZERS.names()
  check.require(solver.optimizer in names, f'{sfield}.optimizer',
                f'"{solver.optimizer}" is not one of {tuple(names)}')
  check.require(solver.base_learning_rate > 0, f'{sfield}.base_learning_rate',
                f'must be positive, got {solver.base_learning_rate}')
  check.require(solver.poly_learning_power > 0,
                f'{sfield}.poly_learning_power',
                f'must be positive, got {solver.poly_learning_power}')
  check.require(0 <= solver.poly_end_learning_rate <= solver.base_learning_rate,
                f'{sfield}.poly_end_learning_rate',
                f'{solver.poly_end_learning_rate} must be in [0, '
                f'base_learning_rate={solver.base_learning_rate}]')
  if solver.learning_policy == 'cosine':
    for name in ('poly_end_learning_rate', 'poly_learning_power'):
      if solver.HasField(name):
        check.warn(f'{sfield}.{name}',
                   'the cosine policy decays to 0 (as deeplab2); ignored')
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
  check.require(solver.batchnorm_epsilon > 0, f'{sfield}.batchnorm_epsilon',
                f'must be positive, got {solver.batchnorm_epsilon}')
  check.require(solver.weight_decay >= 0, f'{sfield}.weight_decay',
                f'must be >= 0, got {solver.weight_decay}')
  check.require(solver.adamw_weight_decay >= 0,
                f'{sfield}.adamw_weight_decay',
                f'must be >= 0, got {solver.adamw_weight_decay}')
  decoupled = optimizers.uses_decoupled_weight_decay(solver.optimizer)
  check.require(decoupled or not solver.adamw_weight_decay,
                f'{sfield}.adamw_weight_decay',
                f'applies to optimizer "adamw" only, not '
                f'"{solver.optimizer}"; use weight_decay (an L2 loss term)')
  check.require(not decoupled or not solver.weight_decay,
                f'{sfield}.weight_decay',
                'optimizer "adamw" decays the weights itself; use '
                'adamw_weight_decay')
  if solver.use_gradient_clipping:
    check.require(solver.clip_gradient_norm > 0,
                  f'{sfield}.clip_gradient_norm',
                  f'must be positive, got {solver.clip_gradient_norm}')


def _check_evaluator(check, evaluator):
  field = 'evaluator_options'
  check.require(evaluator.num_vis_samples >= 0, f'{field}.num_vis_samples',
                f'must be >= 0, got {evaluator.num_vis_samples}')
  check.require(evaluator.eval_interval > 0, f'{field}.eval_interval',
                f'must be positive, got {evaluator.eval_interval}')
  check.require(evaluator.eval_steps == -1 or evaluator.eval_steps > 0,
                f'{field}.eval_steps',
                f'must be positive or -1 (all), got {evaluator.eval_steps}')
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
  scales = list(evaluator.eval_scales)
  check.require(all(scale > 0 for scale in scales), f'{field}.eval_scales',
                f'must all be positive, got {scales}')
  check.require(len(set(scales)) == len(scales), f'{field}.eval_scales',
                f'lists a scale twice: {scales}')


def _check_instance_ids_fit(check, evaluator, descriptor, dataset_field,
                            dataset_options):
  """Refuses more centers than the label divisor has instance ids.

  Instance ids of a class run 1..label_divisor - 1; with keep_k_centers >=
  label_divisor one class can get an id that encodes an instance of the
  next class (deeplab2 encodes COCO's 257th instance of a class so).
  keep_k_centers -1 (keep all) is bounded by the merge instead, which turns
  instances past label_divisor - 1 of a class into void.
  """
  keep_k = evaluator.keep_k_centers
  divisor = descriptor.label_divisor
  default = '' if evaluator.HasField('keep_k_centers') else ' (the default)'
  check.require(
      keep_k < divisor, 'evaluator_options.keep_k_centers',
      f'{keep_k}{default} centers can give one class {keep_k} instances, but '
      f'{dataset_field}.dataset "{dataset_options.dataset}" has label_divisor '
      f'{divisor} (instance ids 1..{divisor - 1}); set keep_k_centers to at '
      f'most {divisor - 1}')
