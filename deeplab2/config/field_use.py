"""How this package treats each schema field that it does not simply read.

Every field of the schema is read by the config door, or refused while set
(it would change the results but is not implemented), or named in one
warning line (a deeplab2 implementation detail or side output with no
meaning here). tests/config/test_one_door.py checks that the door reads
every field not listed in FIELD_USE.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

from google.protobuf import message as message_lib

from deeplab2.config import checker as checker_lib

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
  active: Callable[[Any], bool] | None = None
  reason: str = ''


def _true(value: Any) -> bool:
  return bool(value)


def _always(value: Any) -> bool:
  del value
  return True


_E = 'deeplab2.EvaluatorOptions'
_D = 'deeplab2.DatasetOptions'
_NO_RAW_FILES = ('deeplab2\'s raw prediction files are not written; '
                 'save_predictions writes the official formats (COCO '
                 'panoptic, cityscapesScripts); ignored')

# Fields that are not simply read, by full name. Every other field of the
# schema is READ.
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


def check_field_use(check: checker_lib.Checker, message: message_lib.Message,
                    prefix: str = '') -> None:
  """Refuses NOT_IMPLEMENTED fields and warns on NO_MEANING_HERE ones.

  Args:
    check: the Checker of the config.
    message: the ExperimentOptions, or a message inside it (recursively).
    prefix: the dotted path of `message` with a trailing dot ('' at the
      top).

  Raises:
    ConfigError: a set NOT_IMPLEMENTED field that asks for something.
  """
  for field, value in message.ListFields():
    path = f'{prefix}{field.name}'
    use = FIELD_USE.get(field.full_name)
    if use is not None and use.active is not None and use.active(value):
      if use.kind == NOT_IMPLEMENTED:
        check.fail(path, use.reason)
      check.warn(path, use.reason)
    if field.message_type is None:
      continue
    for item in ([value] if hasattr(value, 'ListFields') else value):
      check_field_use(check, item, f'{path}.')
