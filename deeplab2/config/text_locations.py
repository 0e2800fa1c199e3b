"""Finds the line on which a textproto sets a field, for error messages."""

import re

# Tokens that matter for nesting: `name {`, `name: {`, `name:` and `}`.
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*'
    r'|(?P<open>[A-Za-z_]\w*)\s*:?\s*[{<]|(?P<close>[}>])'
    r'|(?P<field>[A-Za-z_]\w*)\s*:')


def field_lines(text: str) -> dict[str, list[int]]:
  """Maps each dotted field path set in `text` to the lines that set it.

  Repeated fields and repeated messages map to every line, in order. Paths
  name messages by field name only (no indices): "model_options.backbone.name".

  Args:
    text: textproto source.

  Returns:
    dict str -> list of 1-based line numbers.
  """
  lines: dict[str, list[int]] = {}
  stack: list[str] = []
  for match in _TOKEN.finditer(text):
    line = text.count('\n', 0, match.start()) + 1
    if match.group('open'):
      stack.append(match.group('open'))
      lines.setdefault('.'.join(stack), []).append(line)
    elif match.group('close'):
      if stack:
        stack.pop()
    elif match.group('field'):
      path = '.'.join(stack + [match.group('field')])
      lines.setdefault(path, []).append(line)
  return lines


def first_line(text: str | None, field_path: str,
               index: int = 0) -> int | None:
  """Returns the line setting `field_path`, or of its closest parent.

  Args:
    text: textproto source, or None.
    field_path: dotted path, e.g. "model_options.decoder.feature_key".
    index: which occurrence, for a field of a repeated message (the
      `index`-th low_level's feature_key); the first when there are fewer.

  Returns:
    1-based line, or None when neither the field nor any parent appears in
    `text`.
  """
  if text is None:
    return None
  lines = field_lines(text)
  parts = field_path.split('.')
  while parts:
    found = lines.get('.'.join(parts))
    if found:
      return found[index] if index < len(found) else found[0]
    parts.pop()
  return None
