"""Checks an ExperimentOptions for values that cannot work.

The one home of config checks, one module per part of the message:
model_checks, dataset_checks, trainer_checks, evaluator_checks, and
field_use (fields refused or warned about). Valid values come from the code
they govern: the registries of backbones, datasets and optimizers, each
backbone's strides and endpoints, the convolution types, the dtype
policies, the AutoAugment policies, the learning policies and the loss
names. Numbers must also be finite: NaN and inf are refused wherever a
bound applies. Every problem is a ConfigError naming the file, the line
(when the field is set in the text) and the dotted field path.
"""

from deeplab2.config import checker as checker_lib
from deeplab2.config import dataset_checks
from deeplab2.config import evaluator_checks
from deeplab2.config import field_use
from deeplab2.config import model_checks
from deeplab2.config import trainer_checks
from deeplab2.data import dataset_descriptor
from deeplab2.protos import config_pb2

def validate_experiment(
    config: config_pb2.ExperimentOptions, path: str | None = None,
    text: str | None = None, num_replicas: int = 1,
    descriptor_base_dir: str | None = None
) -> tuple[dict[str, dataset_descriptor.DatasetDescriptor], list[str]]:
  """Validates `config` (it is not modified).

  Args:
    config: the experiment.
    path: the config file, for messages.
    text: the config's text, to locate fields.
    num_replicas: replicas of the distribution strategy; train batch sizes
      must be divisible by it.
    descriptor_base_dir: where relative descriptor paths are looked up.

  Returns:
    (descriptors, warnings): a dict mapping 'train' / 'eval' to the
    DatasetDescriptor of each dataset option that is set, and a list of
    one-line warnings (`file:line: field: message`) for set fields with no
    meaning here.

  Raises:
    ConfigError: the first problem found.
  """
  check = checker_lib.Checker(path, text)
  field_use.check_field_use(check, config)
  check.require(not config.HasField('seed') or 0 <= config.seed < 2 ** 32,
                'seed', f'must be in [0, 2**32), got {config.seed}')
  model_checks.check_model(check, config.model_options)
  descriptors = _check_datasets(check, config, num_replicas,
                                descriptor_base_dir)
  trainer_checks.check_trainer(
      check, config.trainer_options,
      with_mask_ap=config.model_options.panoptic_deeplab.instance.enable)
  evaluator_checks.check_evaluator(check, config.evaluator_options)
  if descriptors:
    # Both splits label pixels alike (checked above); eval is what is
    # post-processed.
    split = 'eval' if 'eval' in descriptors else 'train'
    evaluator_checks.check_instance_ids_fit(
        check, config.evaluator_options, descriptors[split],
        f'{split}_dataset_options',
        getattr(config, f'{split}_dataset_options'))
  return descriptors, check.warnings


def _check_datasets(check, config, num_replicas, base_dir):
  """Checks each dataset option that is set against the model and the
  other; returns {split: DatasetDescriptor}."""
  semantic_head = config.model_options.panoptic_deeplab.semantic_head
  descriptors = {}
  for split, field in (('train', 'train_dataset_options'),
                       ('eval', 'eval_dataset_options')):
    if not config.HasField(field):
      continue
    options = getattr(config, field)
    descriptor = dataset_checks.check_dataset(
        check, options, field, split,
        config.model_options.backbone.output_stride, num_replicas, base_dir)
    check.require(
        semantic_head.output_channels == descriptor.num_classes,
        'model_options.panoptic_deeplab.semantic_head.output_channels',
        f'{semantic_head.output_channels} classes, but {field}.dataset '
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
  return descriptors
