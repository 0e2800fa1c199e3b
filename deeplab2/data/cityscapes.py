"""Cityscapes in cityscapesScripts' panoptic format (train ids).

  <root>/gtFine/cityscapes_panoptic_<split>_trainId.json
  <root>/gtFine/cityscapes_panoptic_<split>_trainId/*_gtFine_panoptic.png
  <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png

`category_id` in the JSON is the train id (0..18, things 11..18); segment
ids in the PNG use label ids and are only matched against the JSON.
"""

import os

from deeplab2.data import coco
from deeplab2.data import dataset_descriptor
from deeplab2.data import panoptic_format

# The converter names a split's shards <split>_fine-*, as deeplab2 does (the
# zoo configs read train_fine-* and val_fine-*).
SHARD_SUFFIX = '_fine'

_MAKE_PANOPTIC = (
    ' Make it with cityscapesScripts: CITYSCAPES_DATASET={root} '
    'csCreatePanopticImgs --use-train-id (pip install cityscapesscripts).')


def find_split(cityscapes_root, split):
  """(samples, descriptor, category_map) of one split.

  Raises:
    FileNotFoundError: the panoptic JSON is missing; the message says which
      cityscapesScripts command makes it.
  """
  gt_dir = os.path.join(cityscapes_root, 'gtFine')
  json_path = os.path.join(gt_dir, f'cityscapes_panoptic_{split}_trainId.json')
  data = coco.read_json(json_path, _MAKE_PANOPTIC.format(root=cityscapes_root))
  png_dir = os.path.join(gt_dir, f'cityscapes_panoptic_{split}_trainId')
  samples = []
  for i, annotation in enumerate(
      coco.checked_objects(data, 'annotations', json_path)):
    where = coco.named_entry(f'{json_path}: annotations[{i}]', annotation,
                             'file_name')
    image_id = coco.checked_value(annotation, 'image_id', (str,), where)
    label_name = coco.checked_value(annotation, 'file_name', (str,), where)
    segments = coco.checked_segments(annotation, where)
    city = image_id.split('_')[0]
    image_name = f'{image_id}_leftImg8bit.png'
    samples.append(panoptic_format.Sample(
        image_path=os.path.join(cityscapes_root, 'leftImg8bit', split, city,
                                image_name),
        label_path=os.path.join(png_dir, label_name),
        segments=segments,
        name=image_name))
  descriptor = _descriptor(coco.checked_categories(data, json_path),
                           json_path)
  category_map = panoptic_format.CategoryMap(
      {c: c for c in range(descriptor.num_classes)}, descriptor.label_spec)
  return samples, descriptor, category_map


def _descriptor(categories, json_path):
  """Names, colours and thing flags from the JSON's categories when it has
  them (cityscapesScripts writes them, with train ids as ids); the built-in
  Cityscapes table otherwise.

  The label id of each train id (`original_category_ids`, what the official
  evaluations read) is the built-in table's when the JSON names its 19
  classes in its order; other class lists have no known label ids and get
  none.

  Raises:
    ValueError: categories whose ids are not the train ids 0..N-1.
  """
  builtin = dataset_descriptor.get_descriptor('cityscapes_panoptic')
  if not categories:
    return builtin
  ordered = sorted(categories, key=lambda c: c['id'])
  ids = [c['id'] for c in ordered]
  if ids != list(range(len(ids))):
    raise ValueError(f'{json_path}: category ids {ids} are not train ids '
                     f'0..{len(ids) - 1}.')
  return dataset_descriptor.DatasetDescriptor(
      name=builtin.name,
      num_classes=len(ordered),
      ignore_label=builtin.ignore_label,
      label_divisor=builtin.label_divisor,
      thing_class_ids=tuple(c['id'] for c in ordered if c.get('isthing')),
      class_names=tuple(c.get('name', str(c['id'])) for c in ordered),
      colormap=tuple(tuple(c['color']) if 'color' in c else
                     builtin.colormap[c['id']] if c['id'] < builtin.num_classes
                     else (0, 0, 0) for c in ordered),
      original_category_ids=(
          builtin.original_category_ids
          if [c.get('name') for c in ordered] == list(builtin.class_names)
          else ()))
