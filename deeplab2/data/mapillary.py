"""Mapillary Vistas panoptic, v1.2 and v2.0 layouts.

  v1.2: <root>/<training|validation>/panoptic/panoptic_2018.json (+ PNGs)
  v2.0: <root>/<training|validation>/v2.0/panoptic/panoptic_2020.json
  images: <root>/<training|validation>/images/*.jpg

Classes, thing flags, names and colours come from the JSON (COCO-style
numbering: 0 is void). Mapillary images often hold hundreds of instances of
a class, so the label divisor defaults to DEFAULT_LABEL_DIVISOR (1000). The
paper's pre-augmentation resize of the longest side (2177 px) is
`min_resize_value` / `max_resize_value` in the config, not a conversion
step.
"""

import os

from deeplab2.data import coco

DEFAULT_LABEL_DIVISOR = 1000

_SPLIT_DIRS = {'train': 'training', 'val': 'validation'}
_LAYOUTS = {'v2.0': ('v2.0/panoptic', 'panoptic_2020.json'),
            'v1.2': ('panoptic', 'panoptic_2018.json')}


def find_split(mapillary_root, split, version='auto', label_divisor=None):
  """(samples, descriptor, category_map) of one split ('train' or 'val').

  `label_divisor` None is DEFAULT_LABEL_DIVISOR.

  Raises:
    FileNotFoundError: no panoptic JSON of the requested (or any) version.
    ValueError: an unknown split or version.
  """
  if split not in _SPLIT_DIRS:
    raise ValueError(f'Mapillary split "{split}": use train or val.')
  if version not in ('auto',) + tuple(_LAYOUTS):
    raise ValueError(f'Mapillary version "{version}": use auto, v1.2 or '
                     'v2.0.')
  split_dir = os.path.join(mapillary_root, _SPLIT_DIRS[split])
  versions = list(_LAYOUTS) if version == 'auto' else [version]
  candidates = [(v, os.path.join(split_dir, _LAYOUTS[v][0],
                                 _LAYOUTS[v][1])) for v in versions]
  found = [(v, p) for v, p in candidates if os.path.exists(p)]
  if not found:
    raise FileNotFoundError(
        f'No Mapillary Vistas panoptic JSON: looked for '
        f'{", ".join(p for _, p in candidates)}.')
  found_version, json_path = found[0]
  if label_divisor is None:
    label_divisor = DEFAULT_LABEL_DIVISOR
  return coco.find_split(
      None, split, panoptic_json=json_path,
      panoptic_dir=os.path.join(split_dir, _LAYOUTS[found_version][0]),
      image_dir=os.path.join(split_dir, 'images'),
      name=f'mapillary_vistas_{found_version}', label_divisor=label_divisor)
