"""Command-line overrides of an experiment config (`--config_override`).

An override is text format, merged over the file's config:

  --config_override='trainer_options { solver_options { base_learning_rate: 0.01 } }'

or a dotted field and a text-format value:

  --config_override=trainer_options.solver_options.training_number_of_steps=600
  --config_override='train_dataset_options.file_pattern="data/train-*.tfrecord"'
  --config_override=train_dataset_options.dataset=data/dataset_descriptor.json

In the dotted form a string field's value may go without quotes.

Singular fields take the override's value, messages merge field by field,
and a repeated field the override sets is replaced as a whole (not
appended to), so `file_pattern` or `crop_size` mean what they say.
"""

import dataclasses
import re

from google.protobuf import message as message_lib
from google.protobuf import text_format

from deeplab2.config import errors
from deeplab2.config import loader
from deeplab2.protos import config_pb2

# `a.b.c=value`: a dotted field path, then its text-format value.
_DOTTED = re.compile(r'^\s*(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*=\s*'
                     r'(?P<value>.*)$', re.S)


@dataclasses.dataclass(frozen=True)
class ConfigFile:
  """An experiment textproto with command-line overrides.

  Attributes:
    path: the textproto.
    overrides: override texts (module docstring), applied in order.
  """
  path: str
  overrides: tuple[str, ...] = ()

  def __str__(self) -> str:
    if not self.overrides:
      return self.path
    return f'{self.path} (+{len(self.overrides)} --config_override)'


def origin(index: int) -> str:
  """How messages name the index-th override."""
  return f'--config_override #{index + 1}'


def _as_text(override: str) -> str:
  """Text format of an override given either way."""
  dotted = _DOTTED.match(override)
  if not dotted:
    return override
  *parents, field = dotted.group('path').split('.')
  value = dotted.group('value')
  if _is_string_field(parents + [field]) and not value.lstrip().startswith(
      ('"', "'", '[')):
    value = '"' + value.replace('\\', '\\\\').replace('"', '\\"') + '"'
  text = f'{field}: {value}'
  for parent in reversed(parents):
    text = f'{parent} {{ {text} }}'
  return text


def _is_string_field(path: list[str]) -> bool:
  """Whether the dotted `path` names a string field of ExperimentOptions
  (False for a path that names no field: parsing then names it)."""
  descriptor = config_pb2.ExperimentOptions.DESCRIPTOR
  for i, name in enumerate(path):
    field = descriptor.fields_by_name.get(name)
    if field is None:
      return False
    if i == len(path) - 1:
      return field.type == field.TYPE_STRING
    if field.message_type is None:
      return False
    descriptor = field.message_type
  return False


def _set_fields(message: message_lib.Message, prefix: str = '') -> list[str]:
  """Dotted paths of every field set in `message` (leaves and repeated)."""
  paths = []
  for field, value in message.ListFields():
    path = f'{prefix}{field.name}'
    if field.type == field.TYPE_MESSAGE and not field.is_repeated:
      paths += _set_fields(value, path + '.')
    else:
      paths.append(path)
  return paths


def _clear_repeated(target: message_lib.Message,
                    override: message_lib.Message) -> None:
  """Clears the repeated fields of `target` that `override` sets."""
  for field, value in override.ListFields():
    if field.is_repeated:
      target.ClearField(field.name)
    elif field.type == field.TYPE_MESSAGE:
      _clear_repeated(getattr(target, field.name), value)


def apply(config: config_pb2.ExperimentOptions,
          overrides: tuple[str, ...]) -> dict[str, int]:
  """Merges `overrides` over `config` in place.

  Returns:
    {dotted field path: index of the last override that set it}.

  Raises:
    ConfigError: an override that does not parse (named by its origin,
      with the line inside it and, for an unknown field, the valid ones).
  """
  set_by = {}
  for index, override in enumerate(overrides):
    parsed = config_pb2.ExperimentOptions()
    try:
      text_format.Merge(_as_text(override), parsed)
    except text_format.ParseError as e:
      raise loader.parse_error(e, origin(index)) from None
    _clear_repeated(config, parsed)
    config.MergeFrom(parsed)
    for path in _set_fields(parsed):
      set_by[path] = index
  return set_by


def relocated(error: errors.ConfigError,
              set_by: dict[str, int]) -> errors.ConfigError:
  """`error` named by the override that set its field, if one did."""
  field = error.field or ''
  for path, index in set_by.items():
    if field == path or field.startswith(path + '.'):
      return errors.ConfigError(error.reason, path=origin(index),
                                field=error.field)
  return error
