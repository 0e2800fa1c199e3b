"""Panoptic quality (PQ = SQ x RQ) with the COCO panopticapi rules.

The rules live in PanopticQuality.update_segments, which scores one image
given as segment-id maps (the COCO panoptic format: 0 = void / unlabeled)
and each segment's class; update() converts the label-spec encoded panoptic
ids of a model's output onto it. The rules are those of panopticapi's
pq_compute (cityscapesScripts' evalPanopticSemanticLabeling applies the
same ones):

- A predicted and a ground-truth segment of the same class match when
  IoU > 0.5; the predicted segment's pixels on void ground truth are removed
  from the union.
- Ground-truth crowd segments are never matched, and are not false
  negatives.
- An unmatched prediction is not a false positive when more than half of it
  lies on void or on the crowd region of its own class.
"""

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

# A matched IoU lies in (0.5, 1]: as a float64 it is an exact multiple of
# 2**-53. Summing those multiples as integers makes the IoU sums exact and
# independent of the order of the images, so any split of the eval set
# across replicas and hosts gives the same bits as one device.
_IOU_UNIT = 2.0 ** 53
_LIMB_BITS = 31
_NUM_LIMBS = 3   # sums of up to 2**40 matches per class travel as int64s
VOID_SEGMENT = 0   # the segment id of void / unlabeled pixels


def _segment_map(ids, role):
  """ids as int64, checked non-negative."""
  ids = np.asarray(ids)
  if ids.dtype.kind not in 'iu':
    raise ValueError(f'{role} segment ids must be integers, got {ids.dtype}.')
  ids = ids.astype(np.int64, copy=False)
  if ids.size and ids.min() < 0:
    raise ValueError(f'{role} segment ids must be >= 0, got {ids.min()}.')
  return ids


def _unique(ids, with_index=True):
  """Distinct values of non-negative int64 ids, and their counts.

  Args:
    ids: int64 array, any shape, values >= 0.
    with_index: whether to return `index`.

  Returns:
    values: int64 [N], the distinct ids, ascending.
    index: int64 [ids.size], each element's position in values (None
      without with_index).
    counts: int64 [N], how many elements hold each value.
  """
  flat = ids.ravel()
  if flat.size and flat.max() < 4 * flat.size + 65536:
    # Small ids (segment indices, panoptic ids): counting beats sorting.
    counts = np.bincount(flat)
    values = np.flatnonzero(counts)
    index = None
    if with_index:
      position = np.zeros(counts.size, np.int64)
      position[values] = np.arange(values.size)
      index = position[flat]
    return values, index, counts[values]
  if not with_index:
    values, counts = np.unique(flat, return_counts=True)
    return values, None, counts
  values, index, counts = np.unique(flat, return_inverse=True,
                                    return_counts=True)
  return values, index.ravel(), counts


class PanopticQuality:
  """Accumulates per-class TP / FP / FN / IoU sums over images.

  Args:
    label_spec: label_spec.LabelSpec of the dataset: classes, ignore label,
      label divisor and thing classes. update() reads panoptic ids with it
      (a thing pixel with instance 0 is a crowd region); result() takes the
      thing classes from it and never reports the ignore label.
  """

  def __init__(self, label_spec):
    self.label_spec = label_spec
    self.num_classes = label_spec.num_classes
    self.reset()

  def reset(self):
    self._iou_units = [0] * self.num_classes     # Python ints, exact
    self.tp = np.zeros(self.num_classes, np.int64)
    self.fp = np.zeros(self.num_classes, np.int64)
    self.fn = np.zeros(self.num_classes, np.int64)

  @property
  def iou_sum(self):
    """float64 [num_classes]: each class's IoU sum, correctly rounded."""
    return np.array([float(units) / _IOU_UNIT for units in self._iou_units],
                    np.float64)

  def state(self):
    """The accumulated statistics as int64 arrays, to be summed elementwise
    with other instances' (e.g. across hosts) and loaded by add_state."""
    mask = (1 << _LIMB_BITS) - 1
    limbs = np.array([[(units >> (_LIMB_BITS * i)) & mask
                       for i in range(_NUM_LIMBS)]
                      for units in self._iou_units], np.int64)
    if any(units >> (_LIMB_BITS * _NUM_LIMBS) for units in self._iou_units):
      raise OverflowError('Too many matched segments to transport.')
    return {'tp': self.tp.copy(), 'fp': self.fp.copy(), 'fn': self.fn.copy(),
            'iou_limbs': limbs}

  def add_state(self, state):
    """Adds statistics given by state() (or sums of them)."""
    self.tp += state['tp']
    self.fp += state['fp']
    self.fn += state['fn']
    for c, limbs in enumerate(np.asarray(state['iou_limbs'])):
      self._iou_units[c] += sum(int(limb) << (_LIMB_BITS * i)
                                for i, limb in enumerate(limbs))

  def update(self, groundtruth: ArrayLike, prediction: ArrayLike) -> None:
    """Adds one image given as label-spec encoded panoptic ids.

    Each distinct non-void id is one segment; a thing id with instance 0 is
    a crowd segment of the ground truth. The scores are those of
    update_segments.

    All crowd pixels of a class share that one id, so they are one crowd
    segment here: where the original ground truth listed several crowd
    segments of a class, a prediction lying on any of them is absorbed,
    where the official tools absorb it only on the last one listed (and
    count a false positive otherwise). Stuff segments likewise: one per
    class. docs/evaluation.md states the difference.

    Args:
      groundtruth: int [H, W] panoptic ids (negative or ignore class = void).
      prediction: int [H, W] panoptic ids (ignore class = void).

    Raises:
      ValueError: the shapes differ, or a predicted class is outside
        0..num_classes-1.
    """
    gt = np.asarray(groundtruth, np.int64)
    pred = np.asarray(prediction, np.int64)
    if gt.shape != pred.shape:
      raise ValueError(f'Ground truth {gt.shape} and prediction {pred.shape} '
                       'differ in shape.')
    spec = self.label_spec
    pred_void = spec.is_void(pred)
    bad = np.unique(pred[~pred_void &
                         (spec.split(pred)[0] >= self.num_classes)])
    if bad.size:
      raise ValueError(f'Predicted ids {bad.tolist()} have classes outside '
                       f'0..{self.num_classes - 1}.')
    # Segment id = panoptic id + 1, void = 0.
    gt_ids = np.where(spec.is_void(gt), 0, gt + 1)
    pred_ids = np.where(pred_void, 0, pred + 1)
    gt_segments = {s: (spec.split(s - 1)[0], spec.is_crowd(s - 1))
                   for s in _unique(gt_ids, False)[0].tolist() if s}
    pred_segments = {s: spec.split(s - 1)[0]
                     for s in _unique(pred_ids, False)[0].tolist() if s}
    self.update_segments(gt_ids, gt_segments, pred_ids, pred_segments)

  def update_segments(self, gt_ids: ArrayLike, gt_segments: Mapping,
                      pred_ids: ArrayLike, pred_segments: Mapping) -> None:
    """Adds one image given as segment-id maps (the COCO panoptic format).

    Matching and counting follow panopticapi's pq_compute exactly, quirks
    included:
    - a ground-truth segment listed in gt_segments without a pixel is a
      false negative (unless crowd), as the official tools count it;
    - the crowd region of a class is ONE ground-truth crowd segment: with
      several crowd segments of one class, only the last in gt_segments'
      order absorbs predictions (panopticapi keeps one crowd id per
      category per image, the last of segments_info; cityscapesScripts
      does the same). A crowd segment is never matched nor a false
      negative, whether it absorbs or not;
    - two predicted segments of one class (stuff included) are scored
      apart.

    Args:
      gt_ids: int [H, W] ground-truth segment ids, 0 = void / unlabeled.
      gt_segments: {segment id: (class index, iscrowd bool)} of every
        non-zero id in gt_ids, in the order of the image's segments_info.
      pred_ids: int [H, W] predicted segment ids, 0 = no prediction.
      pred_segments: {segment id: class index} of every non-zero id in
        pred_ids.

    Raises:
      ValueError: the shapes differ; an id is negative; a non-zero id of a
        map is not in its segments, or a segment is id 0 or has a class
        outside 0..num_classes-1 or the ignore label; a predicted segment
        has no pixel (the official tools reject it).
    """
    gt = _segment_map(gt_ids, 'Ground-truth')
    pred = _segment_map(pred_ids, 'Predicted')
    if gt.shape != pred.shape:
      raise ValueError(f'Ground truth {gt.shape} and prediction {pred.shape} '
                       'differ in shape.')
    gt_class, gt_crowd, crowd_of_class = {}, set(), {}
    for segment, (class_id, is_crowd) in gt_segments.items():
      gt_class[segment] = self._check_class(segment, class_id, 'Ground-truth')
      if is_crowd:
        gt_crowd.add(segment)
        # Later crowd segments of a class replace earlier ones (see above).
        crowd_of_class[gt_class[segment]] = segment
    pred_class = {segment: self._check_class(segment, class_id, 'Predicted')
                  for segment, class_id in pred_segments.items()}

    gt_values, gt_index, gt_counts = _unique(gt)
    pred_values, pred_index, pred_counts = _unique(pred)
    for role, values, classes in (('Ground-truth', gt_values, gt_class),
                                  ('Predicted', pred_values, pred_class)):
      unknown = [v for v in values.tolist()
                 if v != VOID_SEGMENT and v not in classes]
      if unknown:
        raise ValueError(f'{role} segment ids {unknown[:10]} are in the map '
                         'but not in the segments.')
    gt_area = dict(zip(gt_values.tolist(), gt_counts.tolist()))
    pred_area = dict(zip(pred_values.tolist(), pred_counts.tolist()))
    empty = [p for p in pred_class if p not in pred_area]
    if empty:
      raise ValueError(f'Predicted segments {empty[:10]} have no pixel.')
    num_pred = max(pred_values.size, 1)
    pairs, _, pair_areas = _unique(gt_index * num_pred + pred_index,
                                   with_index=False)
    gt_of_pair, pred_of_pair = np.divmod(pairs, num_pred)
    intersections = dict(zip(zip(gt_values[gt_of_pair].tolist(),
                                 pred_values[pred_of_pair].tolist()),
                             pair_areas.tolist()))

    matched_gt, matched_pred = set(), set()
    for (g, p), inter in intersections.items():
      if (g == VOID_SEGMENT or p == VOID_SEGMENT or g in gt_crowd or
          gt_class[g] != pred_class[p]):
        continue
      union = (pred_area[p] + gt_area[g] - inter -
               intersections.get((VOID_SEGMENT, p), 0))
      iou = inter / union
      if iou > 0.5:
        c = gt_class[g]
        self.tp[c] += 1
        self._iou_units[c] += int(iou * _IOU_UNIT)
        matched_gt.add(g)
        matched_pred.add(p)

    for g, c in gt_class.items():
      if g not in gt_crowd and g not in matched_gt:
        self.fn[c] += 1
    for p, c in pred_class.items():
      if p in matched_pred:
        continue
      ignored = intersections.get((VOID_SEGMENT, p), 0)
      crowd = crowd_of_class.get(c)
      if crowd is not None:
        ignored += intersections.get((crowd, p), 0)
      if ignored / pred_area[p] > 0.5:
        continue
      self.fp[c] += 1

  def _check_class(self, segment, class_id, role):
    """class_id as an int, checked to be a scored class."""
    if segment == VOID_SEGMENT:
      raise ValueError(f'{role} segment id 0 is reserved for void pixels.')
    class_id = int(class_id)
    if (not 0 <= class_id < self.num_classes or
        class_id == self.label_spec.ignore_label):
      raise ValueError(f'{role} segment {segment} has class {class_id}, '
                       f'not a class in 0..{self.num_classes - 1} (nor the '
                       f'ignore label {self.label_spec.ignore_label}).')
    return class_id

  def result(self):
    """Returns a dict of PQ/SQ/RQ for all, things and stuff, and per class.

    Averages run over the classes that appear (TP + FP + FN > 0), as the
    official tools do; the ignore class never counts.
    """
    denominator = self.tp + 0.5 * self.fp + 0.5 * self.fn
    with np.errstate(divide='ignore', invalid='ignore'):
      iou_sum = self.iou_sum
      pq = np.where(denominator > 0, iou_sum / denominator, 0.0)
      sq = np.where(self.tp > 0, iou_sum / np.maximum(self.tp, 1), 0.0)
      rq = np.where(denominator > 0, self.tp / denominator, 0.0)
    present = denominator > 0
    classes = np.arange(self.num_classes)
    is_thing = self.label_spec.is_thing(classes)
    valid = classes != self.label_spec.ignore_label
    metrics = {}
    for group, mask in (('all', valid), ('things', valid & is_thing),
                        ('stuff', valid & ~is_thing)):
      selected = mask & present
      count = int(selected.sum())
      for name, values in (('pq', pq), ('sq', sq), ('rq', rq)):
        metrics[f'{name}_{group}'] = (float(values[selected].mean())
                                      if count else 0.0)
      metrics[f'num_classes_{group}'] = count
    metrics['per_class'] = {
        int(c): {'pq': float(pq[c]), 'sq': float(sq[c]), 'rq': float(rq[c]),
                 'tp': int(self.tp[c]), 'fp': int(self.fp[c]),
                 'fn': int(self.fn[c])}
        for c in classes[present & valid]}
    return metrics
