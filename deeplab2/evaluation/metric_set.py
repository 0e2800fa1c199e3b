"""The metrics of one evaluation: PQ, mIoU and, with instances, mask AP."""

import numpy as np

from deeplab2.evaluation import mask_ap as mask_ap_lib
from deeplab2.evaluation import mean_iou
from deeplab2.evaluation import panoptic_quality


class MetricSet:
  """Streams images into PQ / SQ / RQ, mIoU and (optionally) mask AP.

  Each metric keeps per-image statistics only (match counts, a confusion
  matrix, AP's per-detection rows), never the predictions.

  Args:
    label_spec: label_spec.LabelSpec of the dataset.
    with_mask_ap: also compute COCO mask AP (needs instance scores).
  """

  def __init__(self, label_spec, with_mask_ap):
    self.label_spec = label_spec
    self.panoptic_quality = panoptic_quality.PanopticQuality(label_spec)
    self.mean_iou = mean_iou.MeanIoU(label_spec.num_classes,
                                     label_spec.ignore_label)
    self.mask_ap = (mask_ap_lib.MaskAP(label_spec) if with_mask_ap
                    else None)

  def update(self, groundtruth, panoptic, semantic, instance_scores):
    """Adds one image.

    Args:
      groundtruth: int [H, W] panoptic label.
      panoptic: int [H, W] predicted panoptic ids.
      semantic: int [H, W] predicted classes.
      instance_scores: {predicted panoptic id: score} of the predicted
        thing segments (read only for mask AP).
    """
    self.panoptic_quality.update(groundtruth, panoptic)
    self.mean_iou.update(self.label_spec.semantic_label(groundtruth),
                         semantic)
    if self.mask_ap is not None:
      self.mask_ap.update(groundtruth, panoptic, instance_scores)

  def summable_state(self):
    """int64 arrays that add up elementwise across hosts (PQ, mIoU)."""
    return {**{f'pq/{k}': v
               for k, v in self.panoptic_quality.state().items()},
            **{f'miou/{k}': v for k, v in self.mean_iou.state().items()}}

  def set_summed_state(self, state):
    """Replaces PQ and mIoU by the statistics in `state` (summed)."""
    self.panoptic_quality.reset()
    self.panoptic_quality.add_state(
        {k[3:]: v for k, v in state.items() if k.startswith('pq/')})
    self.mean_iou.confusion = np.zeros_like(self.mean_iou.confusion)
    self.mean_iou.add_state(
        {k[5:]: v for k, v in state.items() if k.startswith('miou/')})

  def result(self):
    """The metrics as one flat dict (per-class values in sub-dicts)."""
    metrics = self.panoptic_quality.result()
    metrics.update(self.mean_iou.result())
    if self.mask_ap is not None:
      metrics.update(self.mask_ap.result())
    return metrics
