"""The synthetic dataset written as a labelling tool exports it: images plus
COCO panoptic PNGs and JSON, to practise the custom-data path
(docs/custom_data.md) on data made in seconds.

  <output_dir>/images/<split>/<name>.jpg
  <output_dir>/annotations/panoptic_<split>.json
  <output_dir>/annotations/panoptic_<split>/<name>.png

Category ids are not the class indices (EXPORT_CATEGORY_IDS), as in most
exports: the converter must renumber them.
"""

import json
import os
from typing import Callable

import numpy as np
from PIL import Image

from deeplab2.data import build_synthetic
from deeplab2.data import synthetic
from deeplab2.utils import atomic
from deeplab2.utils import segment_ids as segment_ids_lib

# The category id of each synthetic class (wall, floor, disc, box, triangle).
EXPORT_CATEGORY_IDS = (1, 2, 11, 12, 13)
JPEG_QUALITY = 95


def categories() -> list[dict]:
  """The export's COCO `categories`: id, name, isthing, color."""
  descriptor = synthetic.DESCRIPTOR
  return [{'id': EXPORT_CATEGORY_IDS[c], 'name': name,
           'isthing': int(c in descriptor.thing_class_ids),
           'color': list(descriptor.colormap[c])}
          for c, name in enumerate(descriptor.class_names)]


def coco_panoptic_segments(panoptic: np.ndarray
                           ) -> tuple[np.ndarray, list[dict]]:
  """A synthetic panoptic map as COCO panoptic segments.

  Args:
    panoptic: int [H, W] synthetic panoptic ids (class * label_divisor +
      instance; void: the ignore class).

  Returns:
    (int32 [H, W] segment ids, 0 unlabelled and 1..K in increasing panoptic
    id order; the K `segments_info` entries). A thing class with instance 0
    is a crowd segment (iscrowd 1).
  """
  descriptor = synthetic.DESCRIPTOR
  classes = panoptic // descriptor.label_divisor
  labelled = (panoptic >= 0) & (classes != descriptor.ignore_label)
  panoptic_ids, index = np.unique(np.where(labelled, panoptic, -1),
                                  return_inverse=True)
  index = index.reshape(panoptic.shape)
  if panoptic_ids[0] != -1:        # no unlabelled pixel: ids start at 1
    index = index + 1
    panoptic_ids = np.concatenate([[-1], panoptic_ids])
  segments_info = []
  for k, panoptic_id in enumerate(panoptic_ids[1:], 1):
    class_id, instance = divmod(int(panoptic_id), descriptor.label_divisor)
    ys, xs = np.nonzero(index == k)
    is_thing = class_id in descriptor.thing_class_ids
    segments_info.append({
        'id': k, 'category_id': EXPORT_CATEGORY_IDS[class_id],
        'iscrowd': int(is_thing and instance == 0), 'area': int(ys.size),
        'bbox': [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                 int(ys.max() - ys.min() + 1)]})
  return index.astype(np.int32), segments_info


def write_coco_panoptic_export(output_dir: str, num_train: int = 600,
                               num_val: int = 100, seed: int = 0,
                               image_size: int = synthetic.DEFAULT_IMAGE_SIZE,
                               overwrite: bool = False,
                               progress_factory: Callable[
                                   [str], Callable[[int, int], None]] | None = None
                               ) -> dict[str, str]:
  """Writes the train and val splits in the layout of the module docstring.

  The samples are those of write_synthetic_dataset with the same seed; the
  folder appears whole or not at all (atomic.StagedFolder).

  Args:
    output_dir: the folder to write.
    num_train, num_val, seed, image_size: see build_synthetic.
    overwrite: replace an existing output_dir.
    progress_factory: optional callable(split) -> callable(done, total).

  Returns:
    {split: its annotation JSON path}, for the splits with images.

  Raises:
    FileExistsError: output_dir exists and not overwrite.
    ValueError: see build_synthetic.check_arguments.
  """
  build_synthetic.check_arguments(num_train, num_val, seed, image_size)
  if os.path.exists(output_dir) and not overwrite:
    raise FileExistsError(f'{output_dir} exists; pass --overwrite to replace '
                          'it (the whole folder).')
  written = {}
  with atomic.StagedFolder(output_dir, 'build_synthetic_data.py') as staged:
    assert staged.path is not None
    for split, count in (('train', num_train), ('val', num_val)):
      if not count:
        continue
      image_dir = os.path.join(staged.path, 'images', split)
      png_dir = os.path.join(staged.path, 'annotations', f'panoptic_{split}')
      os.makedirs(image_dir)
      os.makedirs(png_dir)
      images, annotations = [], []
      progress = progress_factory(split) if progress_factory else None
      for index, (name, image, panoptic, _) in enumerate(
          synthetic.generate_split(seed, split, count, image_size), 1):
        Image.fromarray(image).save(os.path.join(image_dir, name + '.jpg'),
                                    quality=JPEG_QUALITY)
        segment_ids, segments_info = coco_panoptic_segments(
            np.asarray(panoptic))
        Image.fromarray(segment_ids_lib.ids_to_rgb(segment_ids)).save(
            os.path.join(png_dir, name + '.png'))
        images.append({'id': index, 'file_name': name + '.jpg',
                       'height': image_size, 'width': image_size})
        annotations.append({'image_id': index, 'file_name': name + '.png',
                            'segments_info': segments_info})
        if progress is not None:
          progress(index, count)
      json_name = f'panoptic_{split}.json'
      with open(os.path.join(staged.path, 'annotations', json_name), 'w',
                encoding='utf-8') as f:
        json.dump({'images': images, 'annotations': annotations,
                   'categories': categories()}, f)
      written[split] = os.path.join(output_dir, 'annotations', json_name)
  return written
