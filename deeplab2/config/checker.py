"""Raises and collects the located messages of one config's checks."""

import math
from typing import NoReturn

from deeplab2.config import errors
from deeplab2.config import text_locations


class Checker:
  """Locates fields of one config for its messages.

  Args:
    path: the config file, or None for a config built in code.
    text: its text, to find the line of a field (None: no lines).

  Attributes:
    warnings: the `file:line: field: message` lines of `warn`, in order.
  """

  def __init__(self, path: str | None, text: str | None):
    self.path = path
    self.text = text
    self.warnings: list[str] = []

  def _line(self, field: str, index: int = 0) -> int | None:
    return text_locations.first_line(self.text, field, index)

  def fail(self, field: str, reason: str, index: int = 0) -> NoReturn:
    """Raises ConfigError; `index` picks the item of a repeated message."""
    raise errors.ConfigError(reason, path=self.path,
                             line=self._line(field, index), field=field)

  def require(self, condition: object, field: str, reason: str,
              index: int = 0) -> None:
    """Raises ConfigError (as `fail`) unless `condition` holds."""
    if not condition:
      self.fail(field, reason, index)

  def require_positive(self, value: float, field: str,
                       index: int = 0) -> None:
    """Raises ConfigError unless `value` is finite and > 0 (NaN and inf
    are refused: `inf > 0` holds)."""
    self.require(math.isfinite(value) and value > 0, field,
                 f'must be finite and positive, got {value}', index)

  def require_non_negative(self, value: float, field: str,
                           index: int = 0) -> None:
    """Raises ConfigError unless `value` is finite and >= 0."""
    self.require(math.isfinite(value) and value >= 0, field,
                 f'must be finite and >= 0, got {value}', index)

  def warn(self, field: str, reason: str) -> None:
    """Adds one located warning line."""
    self.warnings.append(errors.located(reason, self.path, self._line(field),
                                        field))
