"""Cityscapes in cityscapesScripts' panoptic format (train ids).

  <root>/gtFine/cityscapes_panoptic_<split>_trainId.json
  <root>/gtFine/cityscapes_panoptic_<split>_trainId/*_gtFine_panoptic.png
  <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png

`category_id` in the JSON is the train id (0..18, things 11..18); segment
ids in the PNG use label ids and are only matched against the JSON.
"""

import os

from deeplab2.data import coco
from deeplab2.data import conversion
from deeplab2.data import dataset_descriptor
from deeplab2.data import panoptic_format

_MAKE_PANOPTIC = (
    ' Make it with cityscapesScripts: CITYSCAPES_DATASET={root} '
    'csCreatePanopticImgs --use-train-id (pip install cityscapesscripts).')


def find_split(cityscapes_root, split):
  """(samples, descriptor, spec) of one split.

  Raises:
    FileNotFoundError: the panoptic JSON is missing; the message says which
      cityscapesScripts command makes it.
  """
  gt_dir = os.path.join(cityscapes_root, 'gtFine')
  json_path = os.path.join(gt_dir, f'cityscapes_panoptic_{split}_trainId.json')
  data = coco.read_json(json_path, _MAKE_PANOPTIC.format(root=cityscapes_root))
  png_dir = os.path.join(gt_dir, f'cityscapes_panoptic_{split}_trainId')
  samples = []
  for annotation in data.get('annotations', []):
    for key in ('image_id', 'file_name', 'segments_info'):
      if key not in annotation:
        raise ValueError(f'{json_path}: an annotation lacks "{key}".')
    image_id = annotation['image_id']
    city = image_id.split('_')[0]
    image_name = f'{image_id}_leftImg8bit.png'
    samples.append(panoptic_format.Sample(
        image_path=os.path.join(cityscapes_root, 'leftImg8bit', split, city,
                                image_name),
        label_path=os.path.join(png_dir, annotation['file_name']),
        segments=tuple(annotation['segments_info']),
        name=image_name))
  descriptor = dataset_descriptor.get_descriptor('cityscapes_panoptic')
  spec = conversion.label_spec(
      descriptor, {c: c for c in range(descriptor.num_classes)})
  return samples, descriptor, spec
