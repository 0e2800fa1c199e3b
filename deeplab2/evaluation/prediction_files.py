"""Predictions written in the official formats, in the dataset's own ids.

`CocoPanopticWriter` writes COCO panoptic results (one RGB PNG per image
and panoptic.json), as the COCO panopticapi reads them; `CityscapesWriter`
writes the files of cityscapesScripts' panoptic, semantic and instance
evaluations. The files of each format and the command line of each official
evaluation are in docs/evaluation.md ("Prediction files: formats and
official tools").

The writers take one image at a time and write its files at once; only the
panoptic JSON's annotation list (a few numbers per segment) stays in memory
until `close()`. Classes are written as `descriptor.original_category_ids`
(Cityscapes label ids, COCO category ids); void pixels, the ignore class and
classes without an original id are void (segment id 0, label id 0). Every
file is written whole or not at all (deeplab2/utils/atomic.py). The
segments of a map come from segments.py, the parts both writers share from
writer_base.py. NumPy and PIL only.
"""

from collections.abc import Iterable, Mapping, Sequence
import json
import os
import re
from typing import Any

import numpy as np

from deeplab2.evaluation import segments as segments_lib
from deeplab2.evaluation import writer_base
from deeplab2.utils import atomic

DatasetDescriptor = segments_lib.DatasetDescriptor

PANOPTIC = writer_base.PANOPTIC
SEMANTIC = 'semantic'
INSTANCE = 'instance'
CITYSCAPES_FORMATS = (PANOPTIC, SEMANTIC, INSTANCE)
MASK_DIR = 'masks'

# <city>_<seq>_<frame>, as cityscapesScripts' getCsFileInfo splits names.
_CITYSCAPES_NAME = re.compile(r'([^_\s/]+_\d+_\d+)(_[^\s/]*)?')


class CocoPanopticWriter(writer_base.Writer):
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
    folder: output folder (created); docs/evaluation.md lists its files.
    descriptor: DatasetDescriptor of the panoptic ids, with the dataset's
      original_category_ids.
    overwrite: allow a folder that already holds these outputs (files of the
      same name are replaced, others stay).

  Raises:
    FileExistsError: the outputs exist and overwrite is False.
  """

  def __init__(self, folder: str, descriptor: 'DatasetDescriptor',
               overwrite: bool = False) -> None:
    super().__init__()
    self.folder = folder
    self.descriptor = descriptor
    self.overwrite = overwrite
    writer_base.recover_outputs(folder, [PANOPTIC],
                                [writer_base.PANOPTIC_JSON])
    writer_base.check_free(
        [os.path.join(folder, PANOPTIC),
         os.path.join(folder, writer_base.PANOPTIC_JSON)], overwrite)
    self._table = segments_lib.category_table(descriptor)
    self._panoptic = writer_base.PanopticFiles(folder, descriptor,
                                               self._table)

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
    segments = segments_lib.Segments(panoptic, self.descriptor, self._table)
    self._claim(image_id)
    self._panoptic.add(image_id, stem, segments)

  def close(self) -> str:
    """Writes panoptic.json (once) and returns its path."""
    if not self._closed:
      self._panoptic.close()
      self._closed = True
    return self.json_path


class CityscapesWriter(writer_base.Writer):
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
    folder: output folder (created); docs/evaluation.md lists its files
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

  def __init__(self, folder: str, descriptor: 'DatasetDescriptor',
               formats: Sequence[str] = CITYSCAPES_FORMATS,
               overwrite: bool = False) -> None:
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
    self._table = segments_lib.category_table(descriptor)
    ids = self._table[self._table >= 0]
    if ids.size and not (ids.min() >= 1 and ids.max() <= 255):
      raise ValueError(f'Dataset "{descriptor.name}": Cityscapes label ids '
                       f'are 1..255 (0 is void), got {sorted(ids.tolist())}.')
    owned: list[str] = []
    if PANOPTIC in formats:
      owned += [os.path.join(folder, PANOPTIC),
                os.path.join(folder, writer_base.PANOPTIC_JSON)]
    owned += [os.path.join(folder, f) for f in (SEMANTIC, INSTANCE)
              if f in formats]
    subfolders = list(formats)
    if INSTANCE in formats:
      subfolders.append(os.path.join(INSTANCE, MASK_DIR))
    writer_base.recover_outputs(
        folder, subfolders,
        [writer_base.PANOPTIC_JSON] if PANOPTIC in formats else [])
    writer_base.check_free(owned, overwrite)
    self._panoptic = (
        writer_base.PanopticFiles(folder, descriptor, self._table)
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
          instance_scores: Mapping[int, float] | None = None) -> None:
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
    segments = segments_lib.Segments(panoptic, self.descriptor, self._table)
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

  def _write_semantic(self, image_id: str, segments: segments_lib.Segments,
                      semantic: np.ndarray | None) -> None:
    if semantic is None:    # The segments' ids, void 0.
      label_ids = np.append(0, segments.category_ids)[segments.index]
    else:
      semantic = semantic.astype(np.int64)
      inside = (semantic >= 0) & (semantic < self.descriptor.num_classes)
      label_ids = np.where(inside,
                           self._table[np.where(inside, semantic, 0)], -1)
    label_ids = np.where(label_ids < 0, 0, label_ids).astype(np.uint8)
    writer_base.save_png(label_ids, os.path.join(
        self.folder, SEMANTIC, f'{image_id}_pred_labelIds.png'),
                         recover=False)

  def _instances(self, image_id: str, segments: segments_lib.Segments,
                 scores: Mapping[int, float] | None
                 ) -> list[tuple[int, float]]:
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
      instances.append((int(k), score))
    return instances

  def _write_instances(self, image_id: str, segments: segments_lib.Segments,
                       instances: list[tuple[int, float]]) -> None:
    lines = []
    for n, (k, score) in enumerate(instances):
      mask_path = f'{MASK_DIR}/{image_id}_{n}.png'
      # A 1-bit PNG (bool array): read as 8 bits it is 0 / 255.
      writer_base.save_png(segments.index == k + 1,
                           os.path.join(self.folder, INSTANCE, mask_path),
                           recover=False)
      lines.append(f'{mask_path} {int(segments.category_ids[k])} '
                   f'{score!r}\n')
    atomic.write_file(os.path.join(self.folder, INSTANCE, f'{image_id}.txt'),
                      ''.join(lines), recover=False)

  def close(self) -> str | None:
    """Writes panoptic.json (once, with the panoptic format); its path."""
    if not self._closed:
      if self._panoptic is not None:
        self._panoptic.close()
      self._closed = True
    return self.json_path


def merge_folders(sources: Iterable[str], destination: str) -> None:
  """Moves the files of several writers' folders into one.

  Each source is a closed writer's folder (e.g. one per host, each with its
  own images). Files keep their paths relative to their folder; the
  `panoptic.json` files become one, their annotations in source order,
  written whole or not at all. The other files are complete already and are
  moved by rename, not rewritten; temporary files a killed writer left in a
  source stay there. A caller that must not show a partly merged folder
  merges into an atomic.StagedFolder (as training/prediction_staging.py
  does).

  Args:
    sources: folders, each written by a CocoPanopticWriter or a
      CityscapesWriter of the same descriptor.
    destination: the merged folder (created; must not hold these files).

  Raises:
    FileExistsError: two sources hold a file of the same path (an image
      written twice).
  """
  merged: dict[str, Any] | None = None
  os.makedirs(destination, exist_ok=True)
  json_name = writer_base.PANOPTIC_JSON
  for source in sources:
    for parent, _, names in os.walk(source):
      relative = os.path.relpath(parent, source)
      os.makedirs(os.path.join(destination, relative), exist_ok=True)
      for name in names:
        if atomic.is_temporary(name):
          continue
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
    atomic.write_file(os.path.join(destination, json_name),
                      json.dumps(merged))
