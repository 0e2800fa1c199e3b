"""Panoptic quality of COCO-panoptic-format folders, as the official tools.

The format (http://cocodataset.org/#format-data): a JSON file with
`annotations`, one per image: {image_id, file_name, segments_info: [{id,
category_id, iscrowd, area, bbox}]}, and `categories` [{id, name,
isthing}]; and a folder of RGB PNGs whose pixels hold segment ids
R + 256 G + 256^2 B (0 = void / unlabeled).

evaluate_folders scores every ground-truth image against the prediction of
the same image_id (panopticapi's pq_compute pairs them the same way) with
PanopticQuality.update_segments, one image in memory at a time. The classes
are the ground-truth JSON's categories, in its order; results are keyed by
the original category ids.

Where the official tools would crash with a KeyError or silently read
inconsistent input, this module raises FormatError naming the file and the
image, segment or category.
"""

import dataclasses
import json
import os

import numpy as np
from PIL import Image

from deeplab2 import label_spec as label_spec_lib
from deeplab2.evaluation import panoptic_quality
from deeplab2.utils import segment_ids

_MAX_SEGMENT_ID = 256 ** 3 - 1


class FormatError(ValueError):
  """A COCO panoptic JSON or PNG that cannot be scored; names the file."""


@dataclasses.dataclass(frozen=True)
class Category:
  """One entry of a ground-truth JSON's `categories`."""
  id: int
  name: str
  isthing: bool


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


def _one_line(error):
  return ' '.join(str(error).split())


def read_json(path: str) -> dict:
  """The JSON object of a COCO panoptic file, with an `annotations` list.

  Raises:
    FormatError: the file is missing, unreadable, not JSON, or its top level
      is not an object with an `annotations` list.
  """
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except FileNotFoundError:
    raise FormatError(f'{path}: file not found.') from None
  except (OSError, UnicodeDecodeError) as e:
    raise FormatError(f'{path}: cannot read: {_one_line(e)}') from None
  except json.JSONDecodeError as e:
    raise FormatError(f'{path}: not valid JSON: {_one_line(e)}') from None
  if not isinstance(data, dict) or not isinstance(data.get('annotations'),
                                                  list):
    raise FormatError(f'{path}: no "annotations" list at the top level.')
  return data


def read_categories(data: dict, path: str) -> dict[int, Category]:
  """{category id: Category} of a ground-truth JSON, in the file's order.

  Args:
    data: the JSON object (read_json).
    path: its file, for messages.

  Raises:
    FormatError: no `categories` list, a category without an integer id or
      a 0/1 isthing, or an id listed twice.
  """
  entries = data.get('categories')
  if not isinstance(entries, list) or not entries:
    raise FormatError(f'{path}: no "categories" list (the ground truth names '
                      'the classes).')
  categories = {}
  for entry in entries:
    category_id = entry.get('id') if isinstance(entry, dict) else None
    if not _is_int(category_id):
      raise FormatError(f'{path}: category {entry!r} has no integer "id".')
    if category_id in categories:
      raise FormatError(f'{path}: category id {category_id} is listed '
                        'twice.')
    isthing = entry.get('isthing')
    if isthing not in (0, 1):   # True and False compare equal to 1 and 0
      raise FormatError(f'{path}: category id {category_id} has isthing '
                        f'{isthing!r}, not 0 or 1.')
    categories[category_id] = Category(
        id=category_id, name=str(entry.get('name', category_id)),
        isthing=bool(isthing))
  return categories


def read_id_png(path: str, context: str = '') -> np.ndarray:
  """int64 [H, W] segment ids R + 256 G + 256^2 B of an RGB(A) PNG.

  An alpha channel is ignored, as the official tools do.

  Args:
    path: the PNG file.
    context: words after the path in messages, e.g. ' (image_id 3 of F)'.

  Raises:
    FormatError: the file is missing or unreadable, or not RGB.
  """
  try:
    with Image.open(path) as image:
      mode = image.mode
      if mode in ('RGB', 'RGBA'):
        rgb = np.asarray(image, np.int64)[:, :, :3]
  except FileNotFoundError:
    raise FormatError(f'{path}{context}: file not found.') from None
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise FormatError(f'{path}{context}: cannot read the PNG: '
                      f'{_one_line(e)}') from None
  if mode not in ('RGB', 'RGBA'):
    raise FormatError(f'{path}{context}: a PNG of mode {mode}; COCO panoptic '
                      'PNGs are RGB.')
  return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 256 * 256 * rgb[:, :, 2]


# id = R + 256 G + 256^2 B (utils/segment_ids.py).
ids_to_rgb = segment_ids.ids_to_rgb


def write_id_png(path: str, ids) -> None:
  """Writes segment ids as an RGB PNG (R + 256 G + 256^2 B), read_id_png's
  inverse.

  Args:
    path: the PNG file to write.
    ids: int [H, W] segment ids in 0..256^3-1.

  Raises:
    ValueError: an id outside 0..256^3-1.
  """
  ids = np.asarray(ids, np.int64)
  if ids.size and (ids.min() < 0 or ids.max() > _MAX_SEGMENT_ID):
    raise ValueError(f'{path}: segment ids must be in 0..{_MAX_SEGMENT_ID}, '
                     f'got {ids.min()}..{ids.max()}.')
  Image.fromarray(ids_to_rgb(ids), 'RGB').save(path)


def _label_spec(categories):
  """The LabelSpec of PanopticQuality over the categories' indices.

  Class i is the i-th category; the ignore label is one past the classes
  (void pixels are segment 0 of the PNGs, never a class). update() is not
  used, so the label divisor plays no part.
  """
  things = tuple(i for i, c in enumerate(categories.values()) if c.isthing)
  return label_spec_lib.LabelSpec(
      num_classes=len(categories), ignore_label=len(categories),
      label_divisor=1, thing_class_ids=things,
      class_names=tuple(c.name for c in categories.values()))


class _Image:
  """One annotation of one JSON file: the messages' context and checks."""

  def __init__(self, annotation, json_path, folder):
    self.json_path = json_path
    self.image_id = annotation['image_id']
    file_name = annotation.get('file_name')
    if not isinstance(file_name, str):
      raise FormatError(f'{json_path}: image_id {self.image_id!r} has no '
                        '"file_name".')
    self.png_path = os.path.join(folder, file_name)
    self.segments = annotation.get('segments_info')
    if not isinstance(self.segments, list):
      raise FormatError(f'{json_path}: image_id {self.image_id!r} has no '
                        '"segments_info" list.')

  def error(self, message):
    return FormatError(f'{self.json_path}: image_id {self.image_id!r}: '
                       f'{message}')

  def read(self, categories, groundtruth):
    """(ids int64 [H, W], {segment id: its segments_info dict}).

    Checks every segment against the PNG and the categories; a missing
    iscrowd is 0 (the official tools require the key in the ground truth).
    """
    segments = {}
    for segment in self.segments:
      segment_id = segment.get('id') if isinstance(segment, dict) else None
      if not _is_int(segment_id):
        raise self.error(f'segment {segment!r} has no integer "id".')
      if not 1 <= segment_id <= _MAX_SEGMENT_ID:
        raise self.error(f'segment id {segment_id} is outside 1..'
                         f'{_MAX_SEGMENT_ID} (0 is for unlabeled pixels).')
      if segment_id in segments:
        raise self.error(f'segment id {segment_id} is listed twice in '
                         'segments_info.')
      category_id = segment.get('category_id')
      if not _is_int(category_id) or category_id not in categories:
        raise self.error(f'segment id {segment_id} has category_id '
                         f'{category_id!r}, not one of the ground truth\'s '
                         'categories.')
      if groundtruth and segment.get('iscrowd', 0) not in (0, 1):
        raise self.error(f'segment id {segment_id} has iscrowd '
                         f'{segment["iscrowd"]!r}, not 0 or 1.')
      segments[segment_id] = segment
    ids = read_id_png(self.png_path, f' (image_id {self.image_id!r} of '
                                     f'{self.json_path})')
    values, counts = np.unique(ids, return_counts=True)
    areas = dict(zip(values.tolist(), counts.tolist()))
    areas.pop(panoptic_quality.VOID_SEGMENT, None)
    for segment_id in areas:
      if segment_id not in segments:
        raise FormatError(f'{self.png_path}: segment id {segment_id} is in '
                          'the PNG but not in segments_info of image_id '
                          f'{self.image_id!r} in {self.json_path}.')
    for segment_id, segment in segments.items():
      if segment_id not in areas:
        raise self.error(f'segment id {segment_id} is in segments_info but '
                         f'not in the PNG {self.png_path}.')
      area = segment.get('area')
      # The official tools take the ground truth's areas from the JSON.
      if groundtruth and area is not None and area != areas[segment_id]:
        raise self.error(f'segment id {segment_id} has area {area!r} but '
                         f'{areas[segment_id]} pixels in the PNG '
                         f'{self.png_path}.')
    return ids, segments


def _annotations_by_image(data, path):
  """{image_id: annotation} of a JSON file; each image_id once."""
  annotations = {}
  for annotation in data['annotations']:
    if not isinstance(annotation, dict) or 'image_id' not in annotation:
      raise FormatError(f'{path}: an annotation has no "image_id".')
    image_id = annotation['image_id']
    try:
      if image_id in annotations:
        raise FormatError(f'{path}: image_id {image_id!r} has two '
                          'annotations.')
    except TypeError:   # unhashable
      raise FormatError(f'{path}: image_id {image_id!r} is not a number or '
                        'a string.') from None
    annotations[image_id] = annotation
  return annotations


def evaluate_folders(gt_json: str, gt_folder: str, pred_json: str,
                     pred_folder: str) -> tuple[dict, dict[int, Category]]:
  """PQ, SQ and RQ of a prediction folder against a ground-truth folder.

  Args:
    gt_json: ground-truth JSON file (annotations and categories).
    gt_folder: folder of its PNGs.
    pred_json: prediction JSON file (annotations; categories are the
      ground truth's). Predictions of images absent from the ground truth
      are not read.
    pred_folder: folder of its PNGs.

  Returns:
    metrics: the keys of PanopticQuality.result(): pq_all, sq_all, rq_all,
      pq_things, ..., num_classes_all / _things / _stuff (averages over the
      categories with TP + FP + FN > 0), per_class {category id: {pq, sq,
      rq, tp, fp, fn}} of those categories; plus num_images.
    categories: {category id: Category} of the ground truth, in its order.

  Raises:
    FormatError (a ValueError): a file missing or malformed; a ground-truth
      image without a prediction; PNGs of different sizes; a segment id in
      a PNG but not its segments_info or the reverse; an unknown category;
      a segment id listed twice. The message names the file and the image,
      segment or category.
  """
  for folder in (gt_folder, pred_folder):
    if not os.path.isdir(folder):
      raise FormatError(f'{folder}: folder not found.')
  gt_data = read_json(gt_json)
  categories = read_categories(gt_data, gt_json)
  gt_annotations = _annotations_by_image(gt_data, gt_json)
  pred_annotations = _annotations_by_image(read_json(pred_json), pred_json)
  index_of = {category_id: i for i, category_id in enumerate(categories)}
  metric = panoptic_quality.PanopticQuality(_label_spec(categories))
  for image_id, gt_annotation in gt_annotations.items():
    if image_id not in pred_annotations:
      raise FormatError(f'{pred_json}: no prediction for image_id '
                        f'{image_id!r} of {gt_json}.')
    gt_image = _Image(gt_annotation, gt_json, gt_folder)
    pred_image = _Image(pred_annotations[image_id], pred_json, pred_folder)
    gt_ids, gt_segments = gt_image.read(categories, groundtruth=True)
    pred_ids, pred_segments = pred_image.read(categories, groundtruth=False)
    if gt_ids.shape != pred_ids.shape:
      raise FormatError(
          f'{pred_image.png_path}: {pred_ids.shape[1]}x{pred_ids.shape[0]} '
          f'pixels, but the ground truth {gt_image.png_path} of image_id '
          f'{image_id!r} has {gt_ids.shape[1]}x{gt_ids.shape[0]}.')
    metric.update_segments(
        gt_ids,
        {s: (index_of[g['category_id']], bool(g.get('iscrowd', 0)))
         for s, g in gt_segments.items()},
        pred_ids,
        {s: index_of[p['category_id']] for s, p in pred_segments.items()})
  metrics = metric.result()
  category_ids = list(categories)
  metrics['per_class'] = {category_ids[i]: scores
                          for i, scores in metrics['per_class'].items()}
  metrics['num_images'] = len(gt_annotations)
  return metrics, categories
