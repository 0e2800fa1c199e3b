"""COCO panoptic segment ids as RGB colors: id = R + 256 G + 256^2 B.

The one encoding of the COCO panoptic PNGs, shared by the converters (which
read them), the synthetic COCO export and evaluation (which write them).
"""

import numpy as np

# Segment ids run 0..MAX_ID (three 8-bit channels).
MAX_ID = 256**3 - 1


def ids_to_rgb(ids) -> np.ndarray:
  """uint8 [H, W, 3] R, G, B of int [H, W] segment ids in 0..MAX_ID."""
  ids = np.asarray(ids, np.int64)
  return np.stack([ids % 256, ids // 256 % 256, ids // 65536],
                  axis=-1).astype(np.uint8)


def rgb_to_ids(rgb) -> np.ndarray:
  """uint32 [H, W] segment ids of uint8 [H, W, 3] R, G, B colors."""
  rgb = np.asarray(rgb, np.uint32)
  return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
