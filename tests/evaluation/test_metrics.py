"""PQ and mIoU on hand-made cases with known answers."""

import numpy as np
import pytest

from deeplab2 import label_spec
from deeplab2.evaluation import mean_iou
from deeplab2.evaluation import panoptic_quality

DIVISOR = 1000
IGNORE = 255
STUFF, THING = 0, 1
VOID = IGNORE * DIVISOR


def _pq():
  return panoptic_quality.PanopticQuality(label_spec.LabelSpec(
      num_classes=2, ignore_label=IGNORE, label_divisor=DIVISOR,
      thing_class_ids=(THING,)))


def test_perfect_prediction():
  gt = np.full((10, 10), STUFF * DIVISOR)
  gt[2:5, 2:5] = THING * DIVISOR + 1
  gt[6:9, 6:9] = THING * DIVISOR + 2
  metric = _pq()
  metric.update(gt, gt.copy())
  result = metric.result()
  assert result['pq_all'] == result['pq_things'] == result['pq_stuff'] == 1.0


def test_known_iou_fp_and_fn():
  gt = np.full((10, 10), STUFF * DIVISOR)
  gt[0:4, 0:5] = THING * DIVISOR + 1          # 20 px
  gt[6:8, 6:8] = THING * DIVISOR + 2          # 4 px, missed -> FN
  pred = np.full((10, 10), STUFF * DIVISOR)
  pred[0:4, 0:4] = THING * DIVISOR + 7        # 16 px inside: IoU 16/20
  pred[8:10, 0:3] = THING * DIVISOR + 8       # 6 px on stuff -> FP
  metric = _pq()
  metric.update(gt, pred)
  result = metric.result()
  thing = result['per_class'][THING]
  assert (thing['tp'], thing['fp'], thing['fn']) == (1, 1, 1)
  assert thing['sq'] == pytest.approx(0.8)
  assert thing['rq'] == pytest.approx(1 / (1 + 0.5 + 0.5))
  assert thing['pq'] == pytest.approx(0.8 * 0.5)
  # Stuff: gt 100-24 = 76 px; pred stuff 100-22 = 78 px; overlap 76 minus
  # the 6 gt-stuff pixels predicted as a thing = 70.
  stuff_iou = 70 / (76 + 78 - 70)
  assert result['per_class'][STUFF]['pq'] == pytest.approx(stuff_iou)
  assert result['pq_all'] == pytest.approx((0.4 + stuff_iou) / 2)


def test_iou_of_exactly_half_is_not_a_match():
  gt = np.full((4, 4), VOID)
  gt[0:2, :] = THING * DIVISOR + 1            # 8 px
  pred = np.full((4, 4), VOID)
  pred[0:1, :] = THING * DIVISOR + 1          # 4 px: IoU 0.5
  metric = _pq()
  metric.update(gt, pred)
  thing = metric.result()['per_class'][THING]
  assert (thing['tp'], thing['fp'], thing['fn']) == (0, 1, 1)


def test_void_pixels_leave_the_union_and_mostly_void_predictions_are_free():
  gt = np.full((10, 10), VOID)
  gt[0:5, 0:4] = THING * DIVISOR + 1          # 20 px
  pred = np.full((10, 10), VOID)
  pred[0:5, 0:6] = THING * DIVISOR + 3        # 30 px, 10 of them on void
  pred[7:10, 7:10] = THING * DIVISOR + 4      # 9 px all on void: not an FP
  metric = _pq()
  metric.update(gt, pred)
  thing = metric.result()['per_class'][THING]
  assert (thing['tp'], thing['fp'], thing['fn']) == (1, 0, 0)
  assert thing['sq'] == pytest.approx(20 / (20 + 30 - 20 - 10))


def test_crowd_regions_absorb_unmatched_predictions():
  gt = np.full((10, 10), STUFF * DIVISOR)
  gt[0:5, 0:5] = THING * DIVISOR              # crowd: thing, instance 0
  pred = np.full((10, 10), STUFF * DIVISOR)
  pred[0:3, 0:3] = THING * DIVISOR + 1        # inside the crowd: ignored
  metric = _pq()
  metric.update(gt, pred)
  result = metric.result()
  assert THING not in result['per_class']     # no TP, FP or FN for things
  assert result['num_classes_things'] == 0


def test_streaming_over_images_accumulates():
  gt = np.full((4, 4), STUFF * DIVISOR)
  metric = _pq()
  metric.update(gt, gt)
  pred = np.full((4, 4), THING * DIVISOR + 1)
  metric.update(gt, pred)
  stuff = metric.result()['per_class'][STUFF]
  assert (stuff['tp'], stuff['fn']) == (1, 1)
  assert stuff['pq'] == pytest.approx(1 / 1.5)


def test_prediction_with_unknown_class_is_an_error():
  metric = _pq()
  with pytest.raises(ValueError, match=r'Predicted ids \[7001\] have classes '
                     r'outside 0..1'):
    metric.update(np.zeros((2, 2)), np.full((2, 2), 7001))


def test_mean_iou():
  gt = np.array([[0, 0, 1, 1], [0, 0, 1, IGNORE]])
  pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])
  metric = mean_iou.MeanIoU(num_classes=2, ignore_label=IGNORE)
  metric.update(gt, pred)
  result = metric.result()
  assert result['per_class_iou'][0] == pytest.approx(3 / 4)
  assert result['per_class_iou'][1] == pytest.approx(3 / 4)
  assert result['miou'] == pytest.approx(0.75)


def test_a_void_prediction_misses_the_true_class_and_adds_no_false_positive():
  """As cityscapesScripts counts it: no class's IoU gains a false positive."""
  gt = np.array([[0, 0, 1, 1]])
  pred = np.array([[0, IGNORE, 1, 1]])
  metric = mean_iou.MeanIoU(num_classes=2, ignore_label=IGNORE)
  metric.update(gt, pred)
  result = metric.result()
  assert result['per_class_iou'] == {0: pytest.approx(1 / 2), 1: 1.0}
