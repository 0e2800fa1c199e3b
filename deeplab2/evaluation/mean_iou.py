"""Mean intersection-over-union from a streaming confusion matrix."""

import numpy as np


class MeanIoU:
  """mIoU over the classes 0..num_classes-1, void pixels excluded."""

  def __init__(self, num_classes, ignore_label):
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.confusion = np.zeros((num_classes, num_classes), np.int64)

  def update(self, groundtruth, prediction):
    """Adds one image: int [H, W] semantic labels (gt may hold void)."""
    gt = np.asarray(groundtruth, np.int64).ravel()
    pred = np.asarray(prediction, np.int64).ravel()
    valid = (gt != self.ignore_label) & (gt >= 0) & (gt < self.num_classes)
    pred = np.clip(pred[valid], 0, self.num_classes - 1)
    self.confusion += np.bincount(
        gt[valid] * self.num_classes + pred,
        minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

  def state(self):
    """The confusion matrix (int64), summable across hosts; see add_state."""
    return {'confusion': self.confusion.copy()}

  def add_state(self, state):
    self.confusion += state['confusion']

  def result(self):
    """{'miou': mean over classes present in gt or prediction, 'per_class'}."""
    inter = np.diag(self.confusion).astype(np.float64)
    union = self.confusion.sum(0) + self.confusion.sum(1) - inter
    present = union > 0
    if self.ignore_label < self.num_classes:
      present[self.ignore_label] = False
    iou = np.where(present, inter / np.maximum(union, 1), 0.0)
    return {'miou': float(iou[present].mean()) if present.any() else 0.0,
            'per_class_iou': {int(c): float(iou[c])
                              for c in np.flatnonzero(present)}}
