"""The names of the scalar quality metrics an evaluation reports.

The keys of metric_set.MetricSet.result() that score the predictions (not
counts such as num_classes_all or num_images); every one is
higher-is-better. Kept apart from the metrics themselves so that config
validation can name them without importing pycocotools.
"""

# PanopticQuality.result(): PQ, SQ and RQ of all classes, things and stuff.
PANOPTIC = tuple(f'{name}_{group}' for name in ('pq', 'sq', 'rq')
                 for group in ('all', 'things', 'stuff'))
# MeanIoU.result().
SEMANTIC = ('miou',)
# MaskAP.result(), computed with the instance branch only; COCO's -1 marks
# a value no ground truth defines.
MASK_AP = ('ap', 'ap50', 'ap75', 'ap_small', 'ap_medium', 'ap_large')


def quality_metrics(with_mask_ap: bool) -> tuple[str, ...]:
  """The scalar quality metrics of an evaluation, all higher-is-better.

  Args:
    with_mask_ap: whether mask AP is computed (the model has the instance
      branch).
  """
  return PANOPTIC + SEMANTIC + (MASK_AP if with_mask_ap else ())
