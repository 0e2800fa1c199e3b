"""Mean intersection-over-union from a streaming confusion matrix."""

import numpy as np


class MeanIoU:
  """mIoU over the classes 0..num_classes-1, void pixels excluded.

  `confusion` is int64 [num_classes, num_classes + 1]: rows are ground-truth
  classes, columns predicted ones, and the last column counts predictions
  outside 0..num_classes-1 (void): a miss of the true class and, as in
  cityscapesScripts, a false positive of no class.
  """

  def __init__(self, num_classes, ignore_label):
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.confusion = np.zeros((num_classes, num_classes + 1), np.int64)

  def update(self, groundtruth, prediction):
    """Adds one image: int [H, W] semantic labels (gt may hold void)."""
    gt = np.asarray(groundtruth, np.int64).ravel()
    pred = np.asarray(prediction, np.int64).ravel()
    valid = (gt != self.ignore_label) & (gt >= 0) & (gt < self.num_classes)
    pred = pred[valid]
    pred = np.where((pred >= 0) & (pred < self.num_classes), pred,
                    self.num_classes)
    columns = self.num_classes + 1
    self.confusion += np.bincount(
        gt[valid] * columns + pred,
        minlength=self.num_classes * columns).reshape(self.num_classes, -1)

  def state(self):
    """The confusion matrix (int64), summable across hosts; see add_state."""
    return {'confusion': self.confusion.copy()}

  def add_state(self, state):
    self.confusion += state['confusion']

  def result(self):
    """{'miou': mean over classes present in gt or prediction,
    'per_class_iou'}."""
    inter = np.diag(self.confusion).astype(np.float64)
    predicted = self.confusion[:, :self.num_classes].sum(0)
    union = predicted + self.confusion.sum(1) - inter
    present = union > 0
    if self.ignore_label < self.num_classes:
      present[self.ignore_label] = False
    iou = np.where(present, inter / np.maximum(union, 1), 0.0)
    return {'miou': float(iou[present].mean()) if present.any() else 0.0,
            'per_class_iou': {int(c): float(iou[c])
                              for c in np.flatnonzero(present)}}
