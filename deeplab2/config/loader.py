"""Loads an experiment textproto into an `ExperimentOptions` message."""

import re

from google.protobuf import descriptor_pool
from google.protobuf import text_format

from deeplab2.config import errors
from deeplab2.protos import config_pb2

_UNKNOWN_FIELD = re.compile(
    r'Message type "(?P<type>[\w.]+)" has no field named "(?P<field>\w+)"')
_LOCATION = re.compile(r'^\d+:\d+ : ')


def _field_names(full_type_name: str) -> list[str]:
  message = descriptor_pool.Default().FindMessageTypeByName(full_type_name)
  return sorted(f.name for f in message.fields)


def parse_error(error: text_format.ParseError,
                path: str | None) -> errors.ConfigError:
  """The ConfigError of a text-format ParseError in `path` (a file, or the
  origin of a command-line override): its line and, for an unknown field,
  the valid field names of its message."""
  reason = _LOCATION.sub('', str(error))
  unknown = _UNKNOWN_FIELD.search(reason)
  field = None
  if unknown:
    field = unknown.group('field')
    reason = (f'unknown field "{field}" in {unknown.group("type")}; valid '
              f'fields: {", ".join(_field_names(unknown.group("type")))}')
  return errors.ConfigError(reason, path=path, line=error.GetLine(),
                            field=field)


def parse_experiment_text(text: str, path: str | None = None
                          ) -> config_pb2.ExperimentOptions:
  """Parses textproto `text` into ExperimentOptions.

  Args:
    text: the textproto source.
    path: the file it came from, for error messages.

  Returns:
    config_pb2.ExperimentOptions.

  Raises:
    ConfigError: naming the file, line and field; an unknown field's error
      lists the valid field names of its message.
  """
  config = config_pb2.ExperimentOptions()
  try:
    text_format.Parse(text, config)
  except text_format.ParseError as e:
    raise parse_error(e, path) from None
  return config


def load_experiment_config(path: str
                           ) -> tuple[config_pb2.ExperimentOptions, str]:
  """Reads and parses the textproto at `path` (not yet validated).

  Returns:
    (the ExperimentOptions, the file's text).

  Raises:
    ConfigError: the file cannot be read, is not UTF-8 text, or cannot be
      parsed.
  """
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise errors.ConfigError(f'cannot read config: {e.strerror}',
                             path=path) from None
  try:
    # Newlines as open() in text mode gives them.
    text = data.decode('utf-8').replace('\r\n', '\n').replace('\r', '\n')
  except UnicodeDecodeError as e:
    raise errors.ConfigError(
        f'not UTF-8 text: byte 0x{data[e.start]:02x} ({e.reason}); save the '
        'config as UTF-8', path=path,
        line=data.count(b'\n', 0, e.start) + 1) from None
  return parse_experiment_text(text, path=path), text
