"""Pictures of a run for those who do not open TensorBoard: a confusion
matrix and curves over steps, drawn with PIL alone (no plotting library)."""

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

_CELL = 24          # pixels per confusion-matrix cell
_MARGIN = 110       # room for class names
_PANEL = (360, 200)  # one curve panel's plot area (width, height)
_BLACK, _GREY, _WHITE = (0, 0, 0), (200, 200, 200), (255, 255, 255)
_LINE_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44),
                 (148, 103, 189), (255, 127, 14), (23, 190, 207))


def confusion_matrix(confusion: np.ndarray,
                     class_names: Sequence[str]) -> np.ndarray:
  """The row-normalised confusion matrix as a picture.

  Args:
    confusion: int [C, C] or [C, C + 1] counts, rows ground truth, columns
      prediction (a last column: predictions outside the classes).
    class_names: C names.

  Returns:
    uint8 [H, W, 3]: white (0) to dark blue (1) per cell, the fraction in
    each cell of at least 1 %, class names on both axes.
  """
  counts = np.asarray(confusion, np.float64)[:, :len(class_names)]
  rows = counts.sum(1, keepdims=True)
  fractions = np.divide(counts, rows, out=np.zeros_like(counts),
                        where=rows > 0)
  size = len(class_names)
  width = height = _MARGIN + size * _CELL + 10
  picture = Image.new('RGB', (width, height), _WHITE)
  draw = ImageDraw.Draw(picture)
  for row in range(size):
    for column in range(size):
      value = fractions[row, column]
      shade = tuple(int(255 - value * (255 - c)) for c in (8, 48, 107))
      left, top = _MARGIN + column * _CELL, _MARGIN + row * _CELL
      draw.rectangle([left, top, left + _CELL - 1, top + _CELL - 1],
                     fill=shade, outline=_GREY)
      if value >= 0.01:
        draw.text((left + 2, top + 6), f'{int(round(value * 100))}',
                  fill=_WHITE if value > 0.5 else _BLACK)
  for index, name in enumerate(class_names):
    draw.text((4, _MARGIN + index * _CELL + 6), name[:16], fill=_BLACK)
    label = Image.new('RGB', (_MARGIN - 8, _CELL), _WHITE)
    ImageDraw.Draw(label).text((2, 6), name[:16], fill=_BLACK)
    picture.paste(label.rotate(90, expand=True),
                  (_MARGIN + index * _CELL, 4))
  draw.text((4, 4), 'rows: truth\ncolumns: prediction\n% of row',
            fill=_BLACK)
  return np.asarray(picture)


def curves(panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]]
           ) -> np.ndarray:
  """Line charts, one panel per entry, side by side in rows of two.

  Args:
    panels: {panel title: {series name: [(step, value), ...]}}.

  Returns:
    uint8 [H, W, 3]: each panel with its title, axes ranges and a legend.
  """
  titles = list(panels)
  columns = 2
  rows = max(1, -(-len(titles) // columns))
  panel_w, panel_h = _PANEL[0] + 70, _PANEL[1] + 60
  picture = Image.new('RGB', (columns * panel_w, rows * panel_h), _WHITE)
  draw = ImageDraw.Draw(picture)
  for index, title in enumerate(titles):
    left = (index % columns) * panel_w + 55
    top = (index // columns) * panel_h + 20
    _panel(draw, left, top, title, panels[title])
  return np.asarray(picture)


def _panel(draw, left, top, title, series):
  """One line chart with its plot area at (left, top)."""
  width, height = _PANEL
  draw.text((left, top - 16), title, fill=_BLACK)
  draw.rectangle([left, top, left + width, top + height], outline=_BLACK)
  points = [p for values in series.values() for p in values
            if np.isfinite(p[1])]
  if not points:
    draw.text((left + 10, top + 10), 'no values yet', fill=_BLACK)
    return
  steps = [p[0] for p in points]
  values = [p[1] for p in points]
  low_step, high_step = min(steps), max(max(steps), min(steps) + 1)
  low, high = min(values), max(values)
  if high - low < 1e-12:
    low, high = low - 0.5, high + 0.5
  draw.text((left - 52, top - 4), f'{high:.3g}', fill=_BLACK)
  draw.text((left - 52, top + height - 8), f'{low:.3g}', fill=_BLACK)
  draw.text((left, top + height + 4), f'{low_step:g}', fill=_BLACK)
  draw.text((left + width - 40, top + height + 4), f'{high_step:g}',
            fill=_BLACK)
  for number, (name, values_of) in enumerate(series.items()):
    colour = _LINE_COLOURS[number % len(_LINE_COLOURS)]
    xy = [(left + (step - low_step) / (high_step - low_step) * width,
           top + height - (value - low) / (high - low) * height)
          for step, value in values_of if np.isfinite(value)]
    if len(xy) == 1:
      x, y = xy[0]
      draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    elif xy:
      draw.line(xy, fill=colour, width=2)
    draw.text((left + 6, top + 4 + 12 * number), name, fill=colour)
