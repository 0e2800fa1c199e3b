"""Pictures of labels, targets and predictions, as uint8 RGB NumPy arrays.

No TensorFlow: everything takes and returns NumPy arrays, so it serves the
target viewer and prediction pictures alike.
"""

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont


def colorize_semantic(semantic, colormap, ignore_label=None):
  """int [H, W] class ids -> uint8 [H, W, 3]; ignore and unknown ids black."""
  table = np.zeros((max(len(colormap), 1) + 1, 3), np.uint8)
  table[:len(colormap)] = np.asarray(colormap, np.uint8).reshape(-1, 3)
  ids = np.where((semantic < 0) | (semantic >= len(colormap)),
                 len(colormap), semantic)
  if ignore_label is not None:
    ids = np.where(semantic == ignore_label, len(colormap), ids)
  return table[ids]


def colorize_scalar(values, low=0.0, high=1.0):
  """float [H, W] -> uint8 [H, W, 3] on a black-red-yellow-white ramp."""
  t = np.clip((np.asarray(values, np.float64) - low) / max(high - low, 1e-12),
              0.0, 1.0)
  red = np.clip(3 * t, 0, 1)
  green = np.clip(3 * t - 1, 0, 1)
  blue = np.clip(3 * t - 2, 0, 1)
  return (255 * np.stack([red, green, blue], -1)).astype(np.uint8)


def colorize_offsets(offsets, max_norm=None):
  """float [H, W, 2] (y, x) -> uint8 [H, W, 3] on the optical-flow wheel.

  Hue is the direction, brightness the length relative to `max_norm`
  (default: the largest length in the map).
  """
  dy, dx = offsets[..., 0], offsets[..., 1]
  norm = np.hypot(dy, dx)
  max_norm = max_norm or max(float(norm.max()), 1e-12)
  hue = (np.arctan2(-dy, -dx) / (2 * np.pi)) % 1.0
  value = np.clip(norm / max_norm, 0.0, 1.0)
  # HSV -> RGB at saturation 1, as colorsys.hsv_to_rgb, for whole arrays.
  sector = np.floor(hue * 6.0)
  fraction = hue * 6.0 - sector
  falling, rising = value * (1.0 - fraction), value * fraction
  zero = np.zeros_like(value)
  sector = sector.astype(np.int64) % 6
  choices = [(value, rising, zero), (falling, value, zero),
             (zero, value, rising), (zero, falling, value),
             (rising, zero, value), (value, zero, falling)]
  rgb = [np.choose(sector, [c[channel] for c in choices])
         for channel in range(3)]
  return (255 * np.stack(rgb, -1)).astype(np.uint8)


def colorize_panoptic(panoptic, label_spec):
  """Class colours, with each instance's shade shifted so instances differ.

  Args:
    panoptic: int [H, W] panoptic ids.
    label_spec: label_spec.LabelSpec (divisor, ignore label, colormap).

  Returns:
    uint8 [H, W, 3]; void and unknown classes black.
  """
  semantic, instance = label_spec.split(panoptic)
  rgb = colorize_semantic(semantic, label_spec.colormap,
                          label_spec.ignore_label).astype(np.int32)
  shift = (instance * 47) % 96 - 48
  shift = np.where((instance > 0) & ~label_spec.is_void(panoptic), shift, 0)
  return np.clip(rgb + shift[..., None], 0, 255).astype(np.uint8)


def panel(tiles, columns=4, caption_height=14):
  """Tiles [(title, uint8 [H, W, 3])] of one size -> one captioned grid."""
  height, width = tiles[0][1].shape[:2]
  rows = -(-len(tiles) // columns)
  canvas = Image.new('RGB', (columns * width,
                             rows * (height + caption_height)), (32, 32, 32))
  draw = ImageDraw.Draw(canvas)
  for index, (title, tile) in enumerate(tiles):
    x = (index % columns) * width
    y = (index // columns) * (height + caption_height)
    canvas.paste(Image.fromarray(np.asarray(tile, np.uint8)),
                 (x, y + caption_height))
    draw.text((x + 2, y + 1), title, fill=(255, 255, 255))
  return np.asarray(canvas)


def segment_borders(panoptic):
  """bool [H, W]: pixels whose right or lower neighbour is another segment
  (a one-pixel line between segments)."""
  panoptic = np.asarray(panoptic)
  border = np.zeros(panoptic.shape, bool)
  border[:, :-1] |= panoptic[:, :-1] != panoptic[:, 1:]
  border[:-1, :] |= panoptic[:-1, :] != panoptic[1:, :]
  return border


def label_font(height: int, width: int) -> ImageFont.FreeTypeFont:
  """PIL's bundled font at a size that follows the picture: about 1/40 of
  its shorter side, never under 10 px."""
  return ImageFont.load_default(size=max(10, round(min(height, width) / 40)))


def _text_box(draw, text, font):
  left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
  return left, top, right - left, bottom - top


def _draw_labels(canvas, labels, font):
  """Draws [(text, (y, x), area)] in the given order (most important first)
  as white text on black boxes. A label is left out where it would cover
  another label, or a segment smaller than twice its box (it would hide
  the segment it names)."""
  draw = ImageDraw.Draw(canvas)
  width, height = canvas.size
  taken = []
  for text, (y, x), area in labels:
    left, top, w, h = _text_box(draw, text, font)
    if area < 2 * (w + 2) * (h + 2):
      continue
    x0 = int(min(max(x - w / 2, 1), max(width - w - 1, 1)))
    y0 = int(min(max(y - h / 2, 1), max(height - h - 1, 1)))
    box = (x0 - 1, y0 - 1, x0 + w + 1, y0 + h + 1)
    if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and
           b[1] < box[3] for b in taken):
      continue
    taken.append(box)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text((x0 - left, y0 - top), text, fill=(255, 255, 255), font=font)


def legend_strip(entries, width, font):
  """uint8 [h, width, 3]: a dark strip of colour swatches and texts.

  Args:
    entries: [(text, (r, g, b))], wrapped onto as many rows as they need.
    width: the strip's width in pixels.
    font: a PIL font (label_font).
  """
  probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  line = _text_box(probe, 'Ag', font)[3] + 6
  pad = line // 3
  placed, x, row = [], pad, 0
  for text, colour in entries:
    item = line + _text_box(probe, text, font)[2] + 2 * pad
    if x + item > width and x > pad:
      x, row = pad, row + 1
    placed.append((x, row, text, colour))
    x += item
  strip = Image.new('RGB', (width, (row + 1) * line + pad), (24, 24, 24))
  draw = ImageDraw.Draw(strip)
  for x, row, text, colour in placed:
    y = pad + row * line
    draw.rectangle((x, y + 2, x + line - 6, y + line - 4),
                   fill=tuple(int(c) for c in colour), outline=(255, 255, 255))
    left, top, _, h = _text_box(draw, text, font)
    draw.text((x + line - left, y + (line - 4 - h) // 2 + 1 - top), text,
              fill=(255, 255, 255), font=font)
  return np.asarray(strip)


def overlay_panoptic(image, panoptic, label_spec, alpha=0.55, borders=True,
                     labels=None, legend=None):
  """The panoptic colours blended over the image.

  Stuff takes its class colour from the dataset palette, each instance a
  shade of its class colour (colorize_panoptic); void stays the image.

  Args:
    image: uint8 [H, W, 3].
    panoptic: int [H, W] panoptic ids of the same size.
    label_spec: label_spec.LabelSpec of the ids.
    alpha: weight of the colours.
    borders: draw a thin white line between segments.
    labels: optional [(text, (y, x), area)], most important first, drawn
      at those points in a font sized to the image; a label that would
      cover another one, or hide a segment of `area` pixels, is left out.
    legend: optional [(text, (r, g, b))]: a legend_strip below the image.

  Returns:
    uint8 [H, W, 3], or [H + strip height, W, 3] with a legend.
  """
  image = np.asarray(image, np.uint8)
  colours = colorize_panoptic(panoptic, label_spec).astype(np.float32)
  void = np.asarray(label_spec.is_void(panoptic))
  blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
  out = np.where(void[..., None], image.astype(np.float32), blended)
  if borders:
    out[segment_borders(panoptic)] = 255.0
  out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
  if labels or legend:
    font = label_font(*out.shape[:2])
  if labels:
    canvas = Image.fromarray(out)
    _draw_labels(canvas, labels, font)
    out = np.asarray(canvas)
  if legend:
    out = np.concatenate([out, legend_strip(legend, out.shape[1], font)])
  return out
