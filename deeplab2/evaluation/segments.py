"""The segments of a panoptic map, in a dataset's original category ids.

`Segments` splits one panoptic map into its non-void segments, numbered
1..K in increasing panoptic id order, with the COCO panoptic facts of each
(category id, area, bounding box). The prediction writers
(prediction_files.py) and the Predictor (serving/predictor.py) share it.
NumPy only.
"""

from typing import Any

import numpy as np

from deeplab2.evaluation import coco_panoptic_files

# data.dataset_descriptor.DatasetDescriptor; evaluation never imports data.
DatasetDescriptor = Any


def category_table(descriptor: 'DatasetDescriptor') -> np.ndarray:
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

  def __init__(self, panoptic: np.ndarray, descriptor: 'DatasetDescriptor',
               table: np.ndarray | None = None) -> None:
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
    self.index: np.ndarray = index.reshape(panoptic.shape)
    self.panoptic_ids: np.ndarray = values
    self.classes: np.ndarray = np.asarray(descriptor.split(values)[0])
    self.category_ids: np.ndarray = table[self.classes]
    self.areas: np.ndarray = np.diff(np.append(starts, keys.size)).astype(
        np.int64)
    rows, cols = np.divmod(order, panoptic.shape[1])
    self.bboxes: np.ndarray = np.zeros((values.size, 4), np.int64)
    if values.size:
      x0 = np.minimum.reduceat(cols, starts)
      y0 = np.minimum.reduceat(rows, starts)
      self.bboxes[:, 0] = x0
      self.bboxes[:, 1] = y0
      self.bboxes[:, 2] = np.maximum.reduceat(cols, starts) - x0 + 1
      self.bboxes[:, 3] = np.maximum.reduceat(rows, starts) - y0 + 1

  def __len__(self) -> int:
    return int(self.panoptic_ids.size)

  def rgb(self) -> np.ndarray:
    """uint8 [H, W, 3]: the segment numbers as R + 256 G + 256^2 B.

    Raises:
      ValueError: more segments than 24 bits hold.
    """
    if len(self) >= 256 ** 3:
      raise ValueError(f'{len(self)} segments do not fit an RGB PNG.')
    return coco_panoptic_files.ids_to_rgb(self.index)

  def segments_info(self) -> list[dict[str, Any]]:
    """The COCO `segments_info` list: id, category_id, iscrowd 0, area,
    bbox, for segments 1..K."""
    return [{'id': k + 1, 'category_id': int(self.category_ids[k]),
             'iscrowd': 0, 'area': int(self.areas[k]),
             'bbox': [int(v) for v in self.bboxes[k]]}
            for k in range(len(self))]
