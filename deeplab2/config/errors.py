"""The error raised for a bad experiment config, and its one-line format."""


def located(reason: str, path: str | None = None, line: int | None = None,
            field: str | None = None) -> str:
  """`file:line: field: reason`, leaving out the parts that are unknown."""
  location = path or '<config>'
  if line is not None:
    location = f'{location}:{line}'
  return f'{location}: {field}: {reason}' if field else f'{location}: {reason}'


class ConfigError(ValueError):
  """A config problem, located as `file:line: field: message`.

  Attributes:
    path: the config file, or None for a config built in code.
    line: 1-based line of the offending field, or None when it is not set.
    field: dotted field path, e.g. "train_dataset_options.crop_size".
    reason: the message without the location.
  """

  def __init__(self, reason: str, path: str | None = None,
               line: int | None = None, field: str | None = None):
    self.path = path
    self.line = line
    self.field = field
    self.reason = reason
    super().__init__(located(reason, path, line, field))
