"""COCO panoptic layout, and any dataset in COCO panoptic format.

  <coco_root>/annotations/panoptic_<split>2017.json
  <coco_root>/annotations/panoptic_<split>2017/*.png
  <coco_root>/<split>2017/*.jpg

Each of the three paths can be given instead (`panoptic_json`,
`panoptic_dir`, `image_dir`), so custom data in this format converts as is.

The label divisor defaults to the built-in descriptor's when the dataset's
name is built in, else to COCO's (DEFAULT_LABEL_DIVISOR, read from the
built-in `coco_panoptic` descriptor).
"""

import json
import os

import numpy as np

from deeplab2.data import dataset_descriptor
from deeplab2.data import panoptic_format

COCO_NAME = 'coco_panoptic'
DEFAULT_LABEL_DIVISOR = dataset_descriptor.DATASETS.get(COCO_NAME).label_divisor


def default_label_divisor(name):
  """The built-in descriptor's divisor when `name` is one, else COCO's."""
  if name in dataset_descriptor.DATASETS:
    return dataset_descriptor.DATASETS.get(name).label_divisor
  return DEFAULT_LABEL_DIVISOR


def descriptor_from_categories(name, categories, ignore_label=0,
                               label_divisor=None):
  """A descriptor and CategoryMap from COCO-style `categories`.

  As deeplab2 numbers COCO: class 0 is void, then the categories in
  increasing id order get 1, 2, ...; `isthing` marks the thing classes.
  Colours come from the categories' `color` when present, else a fixed
  palette. `label_divisor` None is default_label_divisor(name). The
  descriptor keeps each class's category id (`original_category_ids`; void
  has none), for writing predictions in the dataset's own ids.

  Raises:
    ValueError: no categories, duplicate ids, or a missing name.
  """
  if not categories:
    raise ValueError(f'{name}: the annotation JSON lists no categories.')
  ordered = sorted(categories, key=lambda c: c['id'])
  ids = [c['id'] for c in ordered]
  if len(set(ids)) != len(ids):
    raise ValueError(f'{name}: duplicate category ids in the JSON.')
  for c in ordered:
    if 'name' not in c:
      raise ValueError(f'{name}: category {c["id"]} has no name.')
  if ignore_label != 0:
    raise ValueError('COCO-format datasets keep class 0 for void; '
                     f'ignore_label must be 0, got {ignore_label}.')
  rng = np.random.default_rng(0)
  colors = [tuple(int(v) for v in c['color']) if 'color' in c else
            tuple(int(v) for v in rng.integers(0, 256, 3)) for c in ordered]
  if label_divisor is None:
    label_divisor = default_label_divisor(name)
  descriptor = dataset_descriptor.DatasetDescriptor(
      name=name,
      num_classes=len(ordered) + 1,
      ignore_label=0,
      label_divisor=label_divisor,
      thing_class_ids=tuple(i + 1 for i, c in enumerate(ordered)
                            if c.get('isthing', 0)),
      class_names=('void',) + tuple(c['name'] for c in ordered),
      colormap=((0, 0, 0),) + tuple(colors),
      original_category_ids=(None,) + tuple(ids))
  category_map = panoptic_format.CategoryMap(
      {c['id']: i + 1 for i, c in enumerate(ordered)}, descriptor.label_spec)
  return descriptor, category_map


def read_json(path, hint=''):
  """The JSON object in `path`.

  Raises:
    FileNotFoundError: `path` is missing (the message ends with `hint`).
    ValueError: not UTF-8 JSON, or its top level is not an object.
  """
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f'{path} does not exist.{hint}') from None
  except ValueError as e:   # JSONDecodeError, UnicodeDecodeError
    raise ValueError(f'{path}: not valid JSON ({e}).') from None
  if not isinstance(data, dict):
    raise ValueError(f'{path}: the top level must be a JSON object (with '
                     '"annotations" and "categories"), got '
                     f'{_describe(data)}.')
  return data


def _describe(value):
  return dataset_descriptor.describe_json_value(value)


def checked_objects(data, key, where):
  """data[key], checked to be a list of JSON objects ([] when absent)."""
  entries = data.get(key, [])
  if not isinstance(entries, list):
    raise ValueError(f'{where}: "{key}" must be a list, got '
                     f'{_describe(entries)}.')
  for i, entry in enumerate(entries):
    if not isinstance(entry, dict):
      raise ValueError(f'{where}: {key}[{i}] must be an object, got '
                       f'{_describe(entry)}.')
  return entries


_KINDS = {int: 'an integer', str: 'a string'}


def checked_value(entry, key, kinds, where):
  """entry[key], checked to be one of `kinds` (int, str; a bool is no int)."""
  if key not in entry:
    raise ValueError(f'{where} lacks "{key}".')
  value = entry[key]
  if not isinstance(value, kinds) or isinstance(value, bool):
    what = ' or '.join(_KINDS[k] for k in kinds)
    raise ValueError(f'{where}: "{key}" must be {what}, got '
                     f'{_describe(value)}.')
  return value


def named_entry(where, entry, key):
  """`where` with entry[key] (a name or file name) when it is a string."""
  name = entry.get(key)
  return f'{where} ({name})' if isinstance(name, str) else where


def checked_categories(data, json_path):
  """The `categories` of a COCO panoptic JSON, each with an integer id.

  Raises:
    ValueError: naming the JSON, the category and the key.
  """
  categories = checked_objects(data, 'categories', json_path)
  for i, category in enumerate(categories):
    checked_value(
        category, 'id', (int,),
        named_entry(f'{json_path}: categories[{i}]', category, 'name'))
  return categories


def checked_segments(annotation, where):
  """The annotation's `segments_info`: objects with an integer id each."""
  if 'segments_info' not in annotation:
    raise ValueError(f'{where} lacks "segments_info".')
  segments = checked_objects(annotation, 'segments_info', where)
  for i, segment in enumerate(segments):
    checked_value(segment, 'id', (int,), f'{where}: segments_info[{i}]')
  return tuple(segments)


def samples_from_panoptic_json(data, json_path, panoptic_dir, image_dir):
  """Samples of a COCO panoptic JSON, in annotation order.

  Images listed without an annotation (a test split) become unlabeled
  samples.

  Raises:
    ValueError: naming the JSON, the entry (its index and file name) and
      the key that is missing or malformed.
  """
  images = {}
  for i, image in enumerate(checked_objects(data, 'images', json_path)):
    where = named_entry(f'{json_path}: images[{i}]', image, 'file_name')
    images[checked_value(image, 'id', (int, str), where)] = checked_value(
        image, 'file_name', (str,), where)
  samples, annotated = [], set()
  for i, annotation in enumerate(
      checked_objects(data, 'annotations', json_path)):
    where = named_entry(f'{json_path}: annotations[{i}]', annotation,
                        'file_name')
    label_name = checked_value(annotation, 'file_name', (str,), where)
    image_id = checked_value(annotation, 'image_id', (int, str), where)
    segments = checked_segments(annotation, where)
    if images and image_id not in images:
      raise ValueError(f'{where}: image_id {image_id} has no entry in '
                       '"images".')
    # Without an "images" list, the image is named after the PNG.
    file_name = images.get(image_id,
                           os.path.splitext(label_name)[0] + '.jpg')
    annotated.add(image_id)
    samples.append(panoptic_format.Sample(
        image_path=os.path.join(image_dir, file_name),
        label_path=os.path.join(panoptic_dir, label_name),
        segments=segments,
        name=os.path.basename(file_name)))
  for image_id, file_name in images.items():
    if image_id not in annotated:
      samples.append(panoptic_format.Sample(
          os.path.join(image_dir, file_name), None, (),
          os.path.basename(file_name)))
  return samples


def find_split(coco_root, split, panoptic_json=None, panoptic_dir=None,
               image_dir=None, name=COCO_NAME, label_divisor=None):
  """(samples, descriptor, category_map) of one split.

  `label_divisor` None is default_label_divisor(name).

  Raises:
    FileNotFoundError: the JSON is missing (the message gives the path).
    ValueError: a malformed JSON or categories.
  """
  root = coco_root or ''
  json_path = panoptic_json or os.path.join(
      root, 'annotations', f'panoptic_{split}2017.json')
  png_dir = panoptic_dir or os.path.join(root, 'annotations',
                                         f'panoptic_{split}2017')
  images_dir = image_dir or os.path.join(root, f'{split}2017')
  data = read_json(json_path)
  descriptor, category_map = descriptor_from_categories(
      name, checked_categories(data, json_path), label_divisor=label_divisor)
  samples = samples_from_panoptic_json(data, json_path, png_dir, images_dir)
  return samples, descriptor, category_map
