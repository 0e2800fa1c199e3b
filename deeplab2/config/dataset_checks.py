"""Checks of train_dataset_options and eval_dataset_options.

Valid values come from the dataset registry (built-in names or descriptor
JSON files) and the AutoAugment policies.
"""

from deeplab2.config import checker as checker_lib
from deeplab2.config import readers
from deeplab2.data import autoaugment
from deeplab2.data import dataset_descriptor
from deeplab2.protos import config_pb2


def check_dataset(check: checker_lib.Checker,
                  options: config_pb2.DatasetOptions, field: str, split: str,
                  output_stride: int, num_replicas: int,
                  base_dir: str | None) -> dataset_descriptor.DatasetDescriptor:
  """Checks one `{split}_dataset_options`; returns its dataset descriptor.

  Args:
    check: the Checker of the config.
    options: the DatasetOptions message.
    field: its dotted field, e.g. "train_dataset_options".
    split: 'train' or 'eval'.
    output_stride: the backbone's (crop sides are output_stride * k + 1).
    num_replicas: train batches must be divisible by it.
    base_dir: where relative descriptor paths are looked up.

  Raises:
    ConfigError: the first problem found.
  """
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
  _check_augmentations(check, options.augmentations,
                       f'{field}.augmentations', split)
  check.require_positive(options.sigma, f'{field}.sigma')
  check.require(options.small_instance_threshold >= 0,
                f'{field}.small_instance_threshold',
                f'must be >= 0, got {options.small_instance_threshold}')
  check.require_non_negative(options.small_instance_weight,
                             f'{field}.small_instance_weight')
  return descriptor


def _check_resize(check: checker_lib.Checker,
                  options: config_pb2.DatasetOptions, field: str) -> None:
  for name in ('min_resize_value', 'max_resize_value'):
    values = list(getattr(options, name))
    check.require(all(v >= 0 for v in values), f'{field}.{name}',
                  f'must be >= 0, got {values}')
    check.require(len({v for v in values if v}) <= 1, f'{field}.{name}',
                  f'one value (the shorter or longer side), got {values}')
  min_resize = readers.single_resize_value(options.min_resize_value)
  max_resize = readers.single_resize_value(options.max_resize_value)
  check.require(not (min_resize and max_resize) or min_resize <= max_resize,
                f'{field}.max_resize_value',
                f'{max_resize} is smaller than min_resize_value {min_resize}')
  check.require(options.resize_factor >= 0, f'{field}.resize_factor',
                f'must be >= 0, got {options.resize_factor}')
  check.require(not options.resize_factor or min_resize or max_resize,
                f'{field}.resize_factor',
                'applies to a resize: set min_resize_value or '
                'max_resize_value too')


def _check_augmentations(
    check: checker_lib.Checker,
    aug: config_pb2.DatasetOptions.AugmentationOptions, field: str,
    split: str) -> None:
  for name in ('min_scale_factor', 'max_scale_factor'):
    check.require_positive(getattr(aug, name), f'{field}.{name}')
  check.require(aug.min_scale_factor <= aug.max_scale_factor,
                f'{field}.min_scale_factor',
                f'need 0 < min ({aug.min_scale_factor}) <= max '
                f'({aug.max_scale_factor})')
  check.require_non_negative(aug.scale_factor_step_size,
                             f'{field}.scale_factor_step_size')
  policies = sorted(autoaugment.POLICIES)
  check.require(
      not aug.autoaugment_policy_name or
      aug.autoaugment_policy_name in autoaugment.POLICIES,
      f'{field}.autoaugment_policy_name',
      f'unknown policy "{aug.autoaugment_policy_name}"; valid: '
      f'{", ".join(policies)}')
  if split == 'eval' and (
      aug.min_scale_factor != 1 or aug.max_scale_factor != 1 or
      aug.autoaugment_policy_name):
    check.warn(field, 'evaluation does not augment; ignored')
