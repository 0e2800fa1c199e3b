"""Images in, as uint8 RGB NumPy arrays: files (EXIF rotation applied) and
arrays of other channel counts and bit depths."""

from typing import Any

import numpy as np
from PIL import Image
from PIL import ImageOps

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')


class UnreadableImageError(ValueError):
  """A file that is not an image we can decode (the message names it)."""


def to_rgb_uint8(array: Any) -> np.ndarray:
  """A NumPy image -> uint8 [H, W, 3].

  Args:
    array: [H, W] or [H, W, C] with C in 1..4 (grey, grey + alpha, RGB,
      RGBA; alpha is dropped); uint8, uint16 (scaled by 255 / 65535), bool,
      or float in 0..1.

  Raises:
    ValueError: another shape or dtype (named), or an empty image.
  """
  array = np.asarray(array)
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3 or not 1 <= array.shape[-1] <= 4:
    raise ValueError('An image is [H, W] or [H, W, C] with C in 1..4, got '
                     f'shape {array.shape}.')
  if not array.shape[0] or not array.shape[1]:
    raise ValueError(f'An image has no pixels (shape {array.shape}).')
  if array.dtype == np.uint8:
    pass
  elif array.dtype == np.uint16:
    array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(
        np.uint8)
  elif array.dtype == bool:
    array = array.astype(np.uint8) * 255
  elif array.dtype.kind == 'f':
    if not np.isfinite(array).all():
      raise ValueError('A float image holds NaN or infinity.')
    array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
  else:
    raise ValueError(f'Image dtype {array.dtype} is not uint8, uint16, bool '
                     'or float.')
  if array.shape[-1] < 3:
    array = np.repeat(array[..., :1], 3, axis=-1)
  return np.ascontiguousarray(array[..., :3])


def read_image(path: str) -> np.ndarray:
  """A file -> uint8 [H, W, 3], upright as its EXIF orientation says.

  Grey, palette, CMYK, RGBA and 16-bit files are converted; alpha dropped.

  Raises:
    UnreadableImageError: the file cannot be opened or decoded.
  """
  try:
    with Image.open(path) as opened:
      image = ImageOps.exif_transpose(opened)
      if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        array = np.asarray(image)
        if array.dtype != np.uint16:
          array = np.clip(array, 0, 65535).astype(np.uint16)
        return to_rgb_uint8(array)
      return np.asarray(image.convert('RGB'))
  except (OSError, ValueError, SyntaxError,
          Image.DecompressionBombError) as e:
    raise UnreadableImageError(f'{path}: not a readable image ({e})') from e
