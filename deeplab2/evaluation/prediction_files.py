"""Predictions written in the official formats, in the dataset's own ids.

The writers take one image at a time and write its files at once; only the
panoptic JSON's annotation list (a few numbers per segment) stays in memory
until `close()`. Classes are written as `descriptor.original_category_ids`
(Cityscapes label ids, COCO category ids); void pixels, the ignore class and
classes without an original id are void (segment id 0, label id 0).
NumPy and PIL only.

COCO panoptic (`CocoPanopticWriter`), as the COCO panopticapi reads it:

  <folder>/panoptic/<stem>.png   RGB, segment id = R + 256 G + 256^2 B
  <folder>/panoptic.json         {"annotations": [...], "categories": [...]}

  python panopticapi/evaluation.py --gt_json_file panoptic_val2017.json
      --gt_folder panoptic_val2017 --pred_json_file <folder>/panoptic.json
  (the prediction PNG folder defaults to the JSON path without `.json`).
  pq_compute pairs images by `image_id`, COCO's ints: the writer makes
  all-digit stems ints.

Cityscapes (`CityscapesWriter`), for the three cityscapesScripts
evaluations. Each looks its predictions up by the `<city>_<seq>_<frame>`
prefix of the ground-truth file names, so images are named by that prefix
(`image_id`):

- Panoptic, `csEvalPanopticSemanticLabeling` (evaluatePanoptic):
    <folder>/panoptic/<image_id>.png  RGB segment ids, as for COCO;
    <folder>/panoptic.json            annotations by image_id, category ids
                                      = Cityscapes label ids.
  csEvalPanopticSemanticLabeling
      --gt-json-file $CITYSCAPES_DATASET/gtFine/cityscapes_panoptic_val.json
      --prediction-json-file <folder>/panoptic.json
  The PNG folders default to the JSON paths without `.json`. The ground
  truth must use label ids too: `csCreatePanopticImgs` WITHOUT
  `--use-train-id` (the `_trainId` files deeplab2 trains on give no match).
  Only the ground truth's categories count; a predicted category outside
  them is an error.
- Semantic, `csEvalPixelLevelSemanticLabeling`:
    <folder>/semantic/<image_id>_pred_labelIds.png  uint8 label ids, void 0.
  CITYSCAPES_DATASET=<root> CITYSCAPES_RESULTS=<folder>/semantic
  csEvalPixelLevelSemanticLabeling
  It reads <root>/gtFine/val/*/*_gtFine_labelIds.png and, for the instance
  IoU, the `_gtFine_instanceIds.png` beside each; for each it searches
  CITYSCAPES_RESULTS recursively for exactly one `<image_id>*.png`, so point
  it at `semantic/`, not at <folder> (the panoptic PNGs match too). Results
  go to <root>/evaluationResults/ or $CITYSCAPES_EXPORT_DIR.
- Instance, `csEvalInstanceLevelSemanticLabeling`:
    <folder>/instance/<image_id>.txt  one line per instance:
                                      `masks/<image_id>_<n>.png <label id>
                                      <score>`;
    <folder>/instance/masks/*.png     1-bit masks (0 / 255 as 8 bits), one
                                      per instance, full image size.
  CITYSCAPES_DATASET=<root> CITYSCAPES_RESULTS=<folder>/instance
  csEvalInstanceLevelSemanticLabeling
  It reads <root>/gtFine/val/*/*_gtFine_instanceIds.png and one
  `<image_id>*.txt` under CITYSCAPES_RESULTS per image; mask paths are
  relative to the txt and must lie under CITYSCAPES_RESULTS. It caches the
  ground-truth instances in `gtInstances.json` beside its own source (delete
  it when the ground truth changes) and writes `matches.json` into the
  working directory.

The environment variables are read when the evaluation modules are
imported; from Python, set the fields of each module's `args` object (see
tests/evaluation/test_prediction_files.py) or call `evaluatePanoptic` with
the paths. cityscapesScripts 2.3.0 calls np.in1d, which NumPy 2.4 removed:
the semantic and instance evaluations need an older NumPy or a stand-in
(`np.in1d = lambda a, b, **kw: np.isin(np.ravel(a), b, **kw)`), and under
NumPy 2 the instance evaluation's JSON dump of its matches fails on np.int64
counts (its module-level `writeDict2JSON` needs a NumPy-aware stand-in).
"""

import json
import os
import re

import numpy as np
from PIL import Image

from deeplab2.evaluation import coco_panoptic_files

PANOPTIC = 'panoptic'
SEMANTIC = 'semantic'
INSTANCE = 'instance'
CITYSCAPES_FORMATS = (PANOPTIC, SEMANTIC, INSTANCE)
MASK_DIR = 'masks'

# <city>_<seq>_<frame>, as cityscapesScripts' getCsFileInfo splits names.
_CITYSCAPES_NAME = re.compile(r'([^_\s/]+_\d+_\d+)(_[^\s/]*)?')


def category_table(descriptor) -> np.ndarray:
  """int64 [num_classes]: each class's original id, -1 for void.

  Void: the ignore class and classes whose original id is None.
  """
  ids = [descriptor.original_category_id(c)
         for c in range(descriptor.num_classes)]
  table = np.array([-1 if i is None else i for i in ids], np.int64)
  if descriptor.ignore_label < descriptor.num_classes:
    table[descriptor.ignore_label] = -1
  return table


class Segments:
  """The non-void segments of one panoptic map.

  Attributes:
    index: int32 [H, W]: 0 on void, else 1..K, the segments in increasing
      panoptic id order.
    panoptic_ids: int64 [K]: the panoptic id of each segment.
    classes: int64 [K]: the class of each segment.
    category_ids: int64 [K]: the original id of each segment's class.
    areas: int64 [K]: pixels per segment.
    bboxes: int64 [K, 4]: [x, y, width, height] of each segment.
  """

  def __init__(self, panoptic, descriptor, table=None):
    """Splits `panoptic` into segments.

    Args:
      panoptic: int [H, W] panoptic ids (class * label_divisor + instance;
        negative or ignore class = void).
      descriptor: DatasetDescriptor of the ids.
      table: category_table(descriptor), when the caller has it.

    Raises:
      ValueError: not a 2-D integer map, or a class outside the descriptor's.
    """
    panoptic = np.asarray(panoptic)
    if (panoptic.ndim != 2 or panoptic.dtype.kind not in 'iu' or
        not panoptic.size):
      raise ValueError('A panoptic map is a non-empty 2-D integer array, got '
                       f'shape {panoptic.shape} and dtype {panoptic.dtype}.')
    panoptic = panoptic.astype(np.int64)
    table = category_table(descriptor) if table is None else table
    semantic = descriptor.split(panoptic)[0]
    void = (panoptic < 0) | (semantic == descriptor.ignore_label)
    outside = ~void & ((semantic < 0) | (semantic >= descriptor.num_classes))
    if outside.any():
      raise ValueError(f'Panoptic ids {np.unique(panoptic[outside])[:5]} '
                       'have classes outside 0..'
                       f'{descriptor.num_classes - 1}.')
    void |= table[np.where(void, 0, semantic)] < 0
    # One sort of the pixels by panoptic id (void = -1 first; ids fit int32)
    # gives the segments, their numbering and, per run, the bounding boxes.
    keys = np.where(void, -1, panoptic).astype(np.int32).ravel()
    order = np.argsort(keys, kind='stable')
    sorted_keys = keys[order]
    new_run = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
    starts = np.flatnonzero(new_run)
    run = np.cumsum(new_run, dtype=np.int32) - 1
    index = np.empty(keys.size, np.int32)
    index[order] = run
    values = sorted_keys[starts].astype(np.int64)
    if values[0] == -1:                      # Void: run 0, segment 0.
      values, starts = values[1:], starts[1:]
    else:
      index += 1
    self.index = index.reshape(panoptic.shape)
    self.panoptic_ids = values
    self.classes = descriptor.split(values)[0]
    self.category_ids = table[self.classes]
    self.areas = np.diff(np.append(starts, keys.size)).astype(np.int64)
    rows, cols = np.divmod(order, panoptic.shape[1])
    self.bboxes = np.zeros((values.size, 4), np.int64)
    if values.size:
      x0 = np.minimum.reduceat(cols, starts)
      y0 = np.minimum.reduceat(rows, starts)
      self.bboxes[:, 0] = x0
      self.bboxes[:, 1] = y0
      self.bboxes[:, 2] = np.maximum.reduceat(cols, starts) - x0 + 1
      self.bboxes[:, 3] = np.maximum.reduceat(rows, starts) - y0 + 1

  def __len__(self):
    return int(self.panoptic_ids.size)

  def rgb(self) -> np.ndarray:
    """uint8 [H, W, 3]: the segment numbers as R + 256 G + 256^2 B.

    Raises:
      ValueError: more segments than 24 bits hold.
    """
    if len(self) >= 256 ** 3:
      raise ValueError(f'{len(self)} segments do not fit an RGB PNG.')
    return coco_panoptic_files.ids_to_rgb(self.index)

  def segments_info(self) -> list:
    """The COCO `segments_info` list: id, category_id, iscrowd 0, area,
    bbox, for segments 1..K."""
    return [{'id': k + 1, 'category_id': int(self.category_ids[k]),
             'iscrowd': 0, 'area': int(self.areas[k]),
             'bbox': [int(v) for v in self.bboxes[k]]}
            for k in range(len(self))]


def _replace_into(path, write):
  """Calls write(temporary path), then renames the file to `path`."""
  tmp_path = path + '.tmp'
  write(tmp_path)
  os.replace(tmp_path, path)


def save_png(array, path):
  """Writes uint8 [H, W] or [H, W, 3] as a PNG (temporary name, rename)."""
  _replace_into(path, lambda p: Image.fromarray(array).save(p, format='PNG'))


def _save_text(text, path):
  def write(p):
    with open(p, 'w') as f:
      f.write(text)
  _replace_into(path, write)


def _check_free(paths, overwrite):
  """Raises FileExistsError for an existing file or non-empty folder."""
  if overwrite:
    return
  for path in paths:
    if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
      raise FileExistsError(f'{path} exists: write predictions to a new '
                            'folder, or pass overwrite=True.')


class _PanopticFiles:
  """The panoptic PNGs of a folder and the JSON that lists them."""

  def __init__(self, folder, descriptor, table):
    self.png_dir = os.path.join(folder, PANOPTIC)
    self.json_path = os.path.join(folder, PANOPTIC + '.json')
    self.annotations = []
    self.categories = [
        {'id': int(table[c]), 'name': descriptor.class_names[c],
         'isthing': int(descriptor.is_thing(c)),
         'color': list(descriptor.colormap[c])}
        for c in np.argsort(table, kind='stable') if table[c] >= 0]
    os.makedirs(self.png_dir, exist_ok=True)

  def add(self, image_id, stem, segments):
    file_name = stem + '.png'
    save_png(segments.rgb(), os.path.join(self.png_dir, file_name))
    self.annotations.append({'image_id': image_id, 'file_name': file_name,
                             'segments_info': segments.segments_info()})

  def close(self):
    _save_text(json.dumps({'annotations': self.annotations,
                           'categories': self.categories}), self.json_path)


class _Writer:
  """Shared bookkeeping: unique images, close once, context manager."""

  def __init__(self):
    self._image_ids = set()
    self._closed = False

  def _claim(self, image_id):
    if self._closed:
      raise ValueError(f'{type(self).__name__} is closed.')
    if image_id in self._image_ids:
      raise ValueError(f'Image {image_id!r} was added twice.')
    self._image_ids.add(image_id)

  @property
  def num_images(self) -> int:
    """How many images were added."""
    return len(self._image_ids)

  def close(self):
    raise NotImplementedError

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, traceback):
    # After an error the JSON is not written: a partial set of predictions
    # should not look complete.
    if exc_type is None:
      self.close()


class CocoPanopticWriter(_Writer):
  """COCO panoptic results: one PNG per image and panoptic.json.

  Segment ids are 1.. per image in increasing panoptic id order, 0 is void;
  every segment has iscrowd 0 (a thing class with instance 0 is written as
  one segment). `image_id` is the image's stem, as an int when it is all
  digits (COCO's file names are the zero-padded image ids, and the
  panopticapi matches ids by equality).

  Usage:
    with CocoPanopticWriter(folder, descriptor) as writer:
      writer.add('000000142238.jpg', panoptic)

  Args:
    folder: output folder (created); see the module docstring for its files.
    descriptor: DatasetDescriptor of the panoptic ids, with the dataset's
      original_category_ids.
    overwrite: allow a folder that already holds these outputs (files of the
      same name are replaced, others stay).

  Raises:
    FileExistsError: the outputs exist and overwrite is False.
  """

  def __init__(self, folder: str, descriptor, overwrite: bool = False):
    super().__init__()
    self.folder = folder
    self.descriptor = descriptor
    self.overwrite = overwrite
    _check_free([os.path.join(folder, PANOPTIC),
                 os.path.join(folder, PANOPTIC + '.json')], overwrite)
    self._table = category_table(descriptor)
    self._panoptic = _PanopticFiles(folder, descriptor, self._table)

  @property
  def json_path(self) -> str:
    return self._panoptic.json_path

  @property
  def png_dir(self) -> str:
    return self._panoptic.png_dir

  def add(self, image_name: str, panoptic: np.ndarray,
          image_id: int | str | None = None) -> None:
    """Writes the PNG of one image and keeps its annotation.

    Args:
      image_name: the image's file name (a directory and extension are
        dropped: the PNG is <stem>.png).
      panoptic: int [H, W] panoptic ids of the descriptor.
      image_id: the annotation's image_id; None: the stem (an int if all
        digits).

    Raises:
      ValueError: a malformed map, an image added twice, or after close().
    """
    stem = os.path.splitext(os.path.basename(image_name))[0]
    if image_id is None:
      image_id = int(stem) if stem.isdigit() else stem
    segments = Segments(panoptic, self.descriptor, self._table)
    self._claim(image_id)
    self._panoptic.add(image_id, stem, segments)

  def close(self) -> str:
    """Writes panoptic.json (once) and returns its path."""
    if not self._closed:
      self._panoptic.close()
      self._closed = True
    return self.json_path


class CityscapesWriter(_Writer):
  """Cityscapes results for cityscapesScripts: panoptic, semantic, instance.

  Images are named by `<city>_<seq>_<frame>` (the `image_id`, taken from
  the start of `image_name`); classes are written as Cityscapes label ids
  (descriptor.original_category_ids), void as 0 ('unlabeled', ignored by
  all three evaluations). The instances are the thing segments of the
  panoptic map with an instance number > 0, one full-size mask each; thing
  pixels with instance 0 are in the panoptic and semantic files only.

  Usage:
    with CityscapesWriter(folder, descriptor) as writer:
      writer.add('frankfurt_000000_000294_leftImg8bit.png', panoptic,
                 semantic, instance_scores={13001: 0.93, ...})

  Args:
    folder: output folder (created); see the module docstring for its files
      and the evaluation that reads each.
    descriptor: DatasetDescriptor of the panoptic ids (`cityscapes_panoptic`
      or a converted Cityscapes descriptor), with label ids in
      original_category_ids, all in 1..255.
    formats: which of 'panoptic', 'semantic', 'instance' to write.
    overwrite: allow a folder that already holds these outputs (files of the
      same name are replaced, others stay).

  Raises:
    ValueError: an unknown format, or label ids outside 1..255.
    FileExistsError: the outputs exist and overwrite is False.
  """

  def __init__(self, folder: str, descriptor,
               formats: tuple = CITYSCAPES_FORMATS, overwrite: bool = False):
    super().__init__()
    formats = tuple(formats)
    unknown = sorted(set(formats) - set(CITYSCAPES_FORMATS))
    if unknown or not formats:
      raise ValueError(f'Cityscapes formats {list(formats)}: choose from '
                       f'{", ".join(CITYSCAPES_FORMATS)}.')
    self.folder = folder
    self.descriptor = descriptor
    self.formats = formats
    self.overwrite = overwrite
    self._table = category_table(descriptor)
    ids = self._table[self._table >= 0]
    if ids.size and not (ids.min() >= 1 and ids.max() <= 255):
      raise ValueError(f'Dataset "{descriptor.name}": Cityscapes label ids '
                       f'are 1..255 (0 is void), got {sorted(ids.tolist())}.')
    owned = []
    if PANOPTIC in formats:
      owned += [os.path.join(folder, PANOPTIC),
                os.path.join(folder, PANOPTIC + '.json')]
    owned += [os.path.join(folder, f) for f in (SEMANTIC, INSTANCE)
              if f in formats]
    _check_free(owned, overwrite)
    self._panoptic = (_PanopticFiles(folder, descriptor, self._table)
                      if PANOPTIC in formats else None)
    for name in (SEMANTIC, INSTANCE):
      if name in formats:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    if INSTANCE in formats:
      os.makedirs(os.path.join(folder, INSTANCE, MASK_DIR), exist_ok=True)

  @property
  def json_path(self) -> str | None:
    """The panoptic JSON (None without the panoptic format)."""
    return self._panoptic.json_path if self._panoptic else None

  @staticmethod
  def image_id(image_name: str) -> str:
    """`<city>_<seq>_<frame>` of a Cityscapes file name.

    Raises:
      ValueError: a name that does not start that way.
    """
    stem = os.path.splitext(os.path.basename(image_name))[0]
    match = _CITYSCAPES_NAME.fullmatch(stem)
    if not match:
      raise ValueError(f'"{image_name}" is not a Cityscapes name '
                       '<city>_<seq>_<frame>[_...]: cityscapesScripts finds '
                       'predictions by that prefix.')
    return match.group(1)

  def add(self, image_name: str, panoptic: np.ndarray,
          semantic: np.ndarray | None = None,
          instance_scores: dict | None = None) -> None:
    """Writes the files of one image.

    Args:
      image_name: a Cityscapes file name or id, e.g.
        'frankfurt_000000_000294_leftImg8bit.png'.
      panoptic: int [H, W] panoptic ids of the descriptor (train ids).
      semantic: int [H, W] train ids for the semantic file (e.g. the
        semantic head's argmax); None: the panoptic map's classes. Ids
        outside 0..num_classes-1 and the ignore label are void.
      instance_scores: {panoptic id: confidence} of the thing segments;
        None: 1.0 each (AP then cannot rank the instances).

    Raises:
      ValueError: a malformed or mis-sized map, a thing segment without a
        score, an image added twice, or after close().
    """
    image_id = self.image_id(image_name)
    segments = Segments(panoptic, self.descriptor, self._table)
    if semantic is not None:
      semantic = np.asarray(semantic)
      if (semantic.shape != segments.index.shape or
          semantic.dtype.kind not in 'iu'):
        raise ValueError(f'The semantic map (shape {semantic.shape}, '
                         f'{semantic.dtype}) must be integers shaped like '
                         f'the panoptic map {segments.index.shape}.')
    instances = (self._instances(image_id, segments, instance_scores)
                 if INSTANCE in self.formats else None)
    self._claim(image_id)
    if self._panoptic is not None:
      self._panoptic.add(image_id, image_id, segments)
    if SEMANTIC in self.formats:
      self._write_semantic(image_id, segments, semantic)
    if instances is not None:
      self._write_instances(image_id, segments, instances)

  def _write_semantic(self, image_id, segments, semantic):
    if semantic is None:    # The segments' ids, void 0.
      label_ids = np.append(0, segments.category_ids)[segments.index]
    else:
      semantic = semantic.astype(np.int64)
      inside = (semantic >= 0) & (semantic < self.descriptor.num_classes)
      label_ids = np.where(inside,
                           self._table[np.where(inside, semantic, 0)], -1)
    label_ids = np.where(label_ids < 0, 0, label_ids).astype(np.uint8)
    save_png(label_ids, os.path.join(
        self.folder, SEMANTIC, f'{image_id}_pred_labelIds.png'))

  def _instances(self, image_id, segments, scores):
    """[(segment index k, score)] of the thing segments with instance > 0."""
    instance = self.descriptor.split(segments.panoptic_ids)[1]
    things = self.descriptor.is_thing(segments.classes) & (instance > 0)
    instances = []
    for k in np.flatnonzero(things):
      panoptic_id = int(segments.panoptic_ids[k])
      if scores is None:
        score = 1.0
      elif panoptic_id in scores:
        score = float(scores[panoptic_id])
      else:
        raise ValueError(f'Image {image_id}: no score for the instance of '
                         f'panoptic id {panoptic_id}.')
      instances.append((k, score))
    return instances

  def _write_instances(self, image_id, segments, instances):
    lines = []
    for n, (k, score) in enumerate(instances):
      mask_path = f'{MASK_DIR}/{image_id}_{n}.png'
      # A 1-bit PNG (bool array): read as 8 bits it is 0 / 255.
      save_png(segments.index == k + 1,
                os.path.join(self.folder, INSTANCE, mask_path))
      lines.append(f'{mask_path} {int(segments.category_ids[k])} '
                   f'{score!r}\n')
    _save_text(''.join(lines),
               os.path.join(self.folder, INSTANCE, f'{image_id}.txt'))

  def close(self) -> str | None:
    """Writes panoptic.json (once, with the panoptic format); its path."""
    if not self._closed:
      if self._panoptic is not None:
        self._panoptic.close()
      self._closed = True
    return self.json_path


def merge_folders(sources, destination):
  """Moves the files of several writers' folders into one.

  Each source is a closed writer's folder (e.g. one per host, each with its
  own images). Files keep their paths relative to their folder; the
  `panoptic.json` files become one, their annotations in source order.

  Args:
    sources: folders, each written by a CocoPanopticWriter or a
      CityscapesWriter of the same descriptor.
    destination: the merged folder (created; must not hold these files).

  Raises:
    FileExistsError: two sources hold a file of the same path (an image
      written twice).
  """
  merged = None
  os.makedirs(destination, exist_ok=True)
  json_name = PANOPTIC + '.json'
  for source in sources:
    for parent, _, names in os.walk(source):
      relative = os.path.relpath(parent, source)
      os.makedirs(os.path.join(destination, relative), exist_ok=True)
      for name in names:
        path = os.path.join(parent, name)
        if relative == '.' and name == json_name:
          with open(path) as f:
            data = json.load(f)
          if merged is None:
            merged = data
          else:
            merged['annotations'].extend(data['annotations'])
          continue
        target = os.path.join(destination, relative, name)
        if os.path.exists(target):
          raise FileExistsError(f'{target} is written by two folders.')
        os.replace(path, target)
  if merged is not None:
    _save_text(json.dumps(merged), os.path.join(destination, json_name))
