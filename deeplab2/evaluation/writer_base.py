"""What the prediction writers share (prediction_files.py).

Atomic PNG writes with one stale-file recovery per folder, the check that
the outputs are free, the image bookkeeping of a writer (`Writer`) and the
panoptic PNG + JSON pair that the COCO and Cityscapes writers both write
(`PanopticFiles`). Every file is written whole or not at all
(deeplab2/utils/atomic.py). NumPy and PIL only.
"""

from collections.abc import Iterable
import json
import os
import re
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from deeplab2.evaluation import segments as segments_lib
from deeplab2.utils import atomic

DatasetDescriptor = segments_lib.DatasetDescriptor

PANOPTIC = 'panoptic'
PANOPTIC_JSON = PANOPTIC + '.json'

# atomic.py's temporary names, `.<name>.<kind>-<host>-<pid>-<tag>`.
_TEMPORARY = re.compile(rf'\.(?P<name>.+)\.(?:{atomic.STAGING}|'
                        rf'{atomic.BACKUP})-.+-\d+-[0-9a-f]+')
_WRITER = 'a prediction writer'
_W = TypeVar('_W', bound='Writer')


def recover_folder(folder: str) -> None:
  """Cleans up after killed writers of the files in `folder`, in one listing.

  Writers of many files into one folder write each with
  `save_png(..., recover=False)` and call this once when they start:
  atomic.recover_stale for every file that has a temporary name beside it.
  A missing folder is left alone.
  """
  try:
    entries = os.listdir(folder)
  except OSError:
    return
  names = {m['name'] for m in map(_TEMPORARY.fullmatch, entries) if m}
  for name in sorted(names):
    atomic.recover_stale(os.path.join(folder, name), _WRITER)


def save_png(array: np.ndarray, path: str, recover: bool = True) -> None:
  """Writes uint8 [H, W] or [H, W, 3] (or bool [H, W], 1 bit) as a PNG.

  Whole or not at all: see atomic.staged_file.

  Args:
    array: the pixels.
    path: the file to write (its folder must exist).
    recover: first clean up after killed writers of `path` (one folder
      listing; see recover_folder for writers of many files).
  """
  with atomic.staged_file(path, recover=recover) as temporary:
    Image.fromarray(array).save(temporary, format='PNG')


def _holds_files(folder: str) -> bool:
  """Whether `folder` or a folder under it holds a file (stops at one)."""
  return any(names for _, _, names in os.walk(folder))


def check_free(paths: Iterable[str], overwrite: bool) -> None:
  """Raises FileExistsError for an existing file or a folder with files.

  A folder of empty folders (a killed writer's instance/masks/) is free.
  """
  if overwrite:
    return
  for path in paths:
    if os.path.isfile(path) or (os.path.isdir(path) and _holds_files(path)):
      raise FileExistsError(f'{path} exists: write predictions to a new '
                            'folder, or pass overwrite=True.')


def recover_outputs(folder: str, subfolders: Iterable[str],
                    files: Iterable[str] = ()) -> None:
  """Cleans up after killed writers of a writer's outputs, once per folder.

  A writer runs it when it starts, before check_free: a folder that holds
  only what a killed writer left is free again.

  Args:
    folder: the writer's output folder.
    subfolders: its folders of many files, relative to `folder`.
    files: its single files directly in `folder` (panoptic.json).
  """
  for name in files:
    atomic.recover_stale(os.path.join(folder, name), _WRITER)
  for name in subfolders:
    recover_folder(os.path.join(folder, name))


class PanopticFiles:
  """The panoptic PNGs of a folder and the JSON that lists them."""

  def __init__(self, folder: str, descriptor: 'DatasetDescriptor',
               table: np.ndarray) -> None:
    self.png_dir = os.path.join(folder, PANOPTIC)
    self.json_path = os.path.join(folder, PANOPTIC_JSON)
    self.annotations: list[dict[str, Any]] = []
    self.categories = [
        {'id': int(table[c]), 'name': descriptor.class_names[c],
         'isthing': int(descriptor.is_thing(c)),
         'color': list(descriptor.colormap[c])}
        for c in np.argsort(table, kind='stable') if table[c] >= 0]
    os.makedirs(self.png_dir, exist_ok=True)

  def add(self, image_id: int | str, stem: str,
          segments: segments_lib.Segments) -> None:
    file_name = stem + '.png'
    save_png(segments.rgb(), os.path.join(self.png_dir, file_name),
             recover=False)
    self.annotations.append({'image_id': image_id, 'file_name': file_name,
                             'segments_info': segments.segments_info()})

  def close(self) -> None:
    atomic.write_file(self.json_path, json.dumps(
        {'annotations': self.annotations, 'categories': self.categories}),
                      recover=False)


class Writer:
  """Shared bookkeeping: unique images, close once, context manager."""

  def __init__(self) -> None:
    self._image_ids: set[int | str] = set()
    self._closed = False

  def _claim(self, image_id: int | str) -> None:
    if self._closed:
      raise ValueError(f'{type(self).__name__} is closed.')
    if image_id in self._image_ids:
      raise ValueError(f'Image {image_id!r} was added twice.')
    self._image_ids.add(image_id)

  @property
  def num_images(self) -> int:
    """How many images were added."""
    return len(self._image_ids)

  def close(self) -> str | None:
    raise NotImplementedError

  def __enter__(self: _W) -> _W:
    return self

  def __exit__(self, exc_type: type[BaseException] | None,
               exc: BaseException | None,
               traceback: TracebackType | None) -> None:
    # After an error the JSON is not written: a partial set of predictions
    # should not look complete.
    if exc_type is None:
      self.close()
