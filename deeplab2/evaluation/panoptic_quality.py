"""Panoptic quality (PQ = SQ x RQ) with the COCO panopticapi rules.

- A predicted and a ground-truth segment of the same class match when
  IoU > 0.5; void pixels of the ground truth are removed from the union.
- Ground-truth crowd segments (thing class, instance 0) are never matched.
- An unmatched prediction is not a false positive when more than half of it
  lies on void or on a crowd region of its own class.
"""

import numpy as np

_OFFSET = 2 ** 31  # > any panoptic id; keys gt * offset + pred stay in int64.
# A matched IoU lies in (0.5, 1]: as a float64 it is an exact multiple of
# 2**-53. Summing those multiples as integers makes the IoU sums exact and
# independent of the order of the images, so any split of the eval set
# across replicas and hosts gives the same bits as one device.
_IOU_UNIT = 2.0 ** 53
_LIMB_BITS = 31
_NUM_LIMBS = 3   # sums of up to 2**40 matches per class travel as int64s


class PanopticQuality:
  """Accumulates per-class TP / FP / FN / IoU sums over images.

  Args:
    label_spec: label_spec.LabelSpec of the dataset: classes, ignore label,
      label divisor and thing classes (instance 0 of a thing class is a
      crowd region in the ground truth).
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

  def update(self, groundtruth, prediction):
    """Adds one image.

    Args:
      groundtruth: int [H, W] panoptic ids (negative or ignore class = void).
      prediction: int [H, W] panoptic ids (ignore class = void).
    """
    gt = np.asarray(groundtruth, np.int64)
    pred = np.asarray(prediction, np.int64)
    if gt.shape != pred.shape:
      raise ValueError(f'Ground truth {gt.shape} and prediction {pred.shape} '
                       'differ in shape.')
    spec = self.label_spec
    void_id = -1
    gt = np.where(spec.is_void(gt), void_id, gt)
    pred = np.where(spec.is_void(pred), void_id, pred)
    bad = np.unique(pred[(pred >= 0) &
                         (spec.split(pred)[0] >= self.num_classes)])
    if bad.size:
      raise ValueError(f'Predicted ids {bad.tolist()} have classes outside '
                       f'0..{self.num_classes - 1}.')

    gt_ids, gt_areas = np.unique(gt, return_counts=True)
    pred_ids, pred_areas = np.unique(pred, return_counts=True)
    gt_area = dict(zip(gt_ids.tolist(), gt_areas.tolist()))
    pred_area = dict(zip(pred_ids.tolist(), pred_areas.tolist()))
    pairs, pair_areas = np.unique((gt + 1) * _OFFSET + (pred + 1),
                                  return_counts=True)
    intersections = {
        (int(k // _OFFSET) - 1, int(k % _OFFSET) - 1): int(a)
        for k, a in zip(pairs.tolist(), pair_areas.tolist())}

    def semantic(segment_id):
      return spec.split(segment_id)[0]

    is_crowd = spec.is_crowd
    matched_gt, matched_pred = set(), set()
    for (g, p), inter in intersections.items():
      if (g == void_id or p == void_id or is_crowd(g) or
          semantic(g) != semantic(p)):
        continue
      union = (pred_area[p] + gt_area[g] - inter -
               intersections.get((void_id, p), 0))
      iou = inter / union
      if iou > 0.5:
        c = semantic(g)
        self.tp[c] += 1
        self._iou_units[c] += int(iou * _IOU_UNIT)
        matched_gt.add(g)
        matched_pred.add(p)

    crowd_by_class = {semantic(g): g for g in gt_area if g != void_id and
                      is_crowd(g)}
    for g in gt_area:
      if g == void_id or is_crowd(g) or g in matched_gt:
        continue
      self.fn[semantic(g)] += 1
    for p in pred_area:
      if p == void_id or p in matched_pred:
        continue
      ignored = intersections.get((void_id, p), 0)
      crowd = crowd_by_class.get(semantic(p))
      if crowd is not None:
        ignored += intersections.get((crowd, p), 0)
      if ignored / pred_area[p] > 0.5:
        continue
      self.fp[semantic(p)] += 1

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
