"""Targets on hand-made panoptic labels."""

import numpy as np
import pytest

from deeplab2 import common
from deeplab2 import label_spec
from deeplab2.data import targets

DIVISOR = 1000
IGNORE = 255
STUFF, THING_A, THING_B = 0, 1, 2
VOID = IGNORE * DIVISOR


SPEC = label_spec.LabelSpec(num_classes=3, ignore_label=IGNORE,
                            label_divisor=DIVISOR,
                            thing_class_ids=(THING_A, THING_B))


def _options(**overrides):
  values = dict(label_spec=SPEC, sigma=2.0,
                small_instance_threshold=10, small_instance_weight=3.0,
                increase_small_instance_weights=True)
  values.update(overrides)
  return targets.TargetOptions(**values)


def _label():
  """20 x 24 label: stuff, a 4 x 5 instance, an L-shaped instance, a crowd
  region and a void band."""
  label = np.full((20, 24), STUFF * DIVISOR, np.int32)
  label[2:6, 3:8] = THING_A * DIVISOR + 1       # 20 px, center (3.5, 5) -> (4, 5)
  label[10:13, 14:15] = THING_B * DIVISOR + 1   # L: 3 px vertical ...
  label[12:13, 15:17] = THING_B * DIVISOR + 1   # ... + 2 px: 5 px, small
  label[15:18, 2:6] = THING_A * DIVISOR         # crowd: thing, instance 0
  label[:, 22:] = VOID                          # void band
  return label


def _targets(label, **overrides):
  result = targets.make_targets(label, _options(**overrides))
  return {k: v.numpy() for k, v in result.items()}


def test_semantic_is_label_over_divisor():
  t = _targets(_label())
  assert t[common.GT_SEMANTIC][3, 4] == THING_A
  assert t[common.GT_SEMANTIC][16, 3] == THING_A  # crowd keeps its class
  assert t[common.GT_SEMANTIC][0, 22] == IGNORE
  assert t[common.GT_SEMANTIC][0, 0] == STUFF


def test_center_position_and_gaussian_peak():
  t = _targets(_label())
  heatmap = t[common.GT_CENTER_HEATMAP]
  # Instance A: rows 2..5 (mean 3.5, rounds to even 4), cols 3..7 (mean 5).
  assert heatmap[4, 5] == pytest.approx(1.0)
  # Instance B: y mean (10+11+12+12+12)/5 = 11.4 -> 11, x mean
  # (14+14+14+15+16)/5 = 14.6 -> 15.
  assert heatmap[11, 15] == pytest.approx(1.0)
  assert np.count_nonzero(np.isclose(heatmap, 1.0)) == 2
  # Gaussian values at known distances from instance A's center.
  assert heatmap[4, 7] == pytest.approx(np.exp(-4 / 8.0), abs=1e-6)
  assert heatmap[6, 6] == pytest.approx(np.exp(-5 / 8.0), abs=1e-6)
  # Truncated outside the 6 * sigma + 3 = 15 px window (radius 7).
  assert heatmap[4, 5 + 7] > 0 and heatmap[0, 5 + 8] == 0


def test_offsets_point_to_center_in_y_x_order():
  t = _targets(_label())
  offset = t[common.GT_OFFSET]
  np.testing.assert_array_equal(offset[2, 3], [4 - 2, 5 - 3])
  np.testing.assert_array_equal(offset[12, 16], [11 - 12, 15 - 16])
  np.testing.assert_array_equal(offset[0, 0], [0, 0])     # stuff
  np.testing.assert_array_equal(offset[16, 3], [0, 0])    # crowd


def test_weights():
  label = _label()
  t = _targets(label)
  semantic_weight = t[common.SEMANTIC_WEIGHT]
  assert semantic_weight[3, 4] == 1.0          # 20 px instance, not small
  assert semantic_weight[12, 16] == 3.0        # 5 px instance: small
  assert semantic_weight[16, 3] == 1.0         # crowd
  assert semantic_weight[0, 22] == 1.0         # void: the loss drops it
  assert semantic_weight[0, 0] == 1.0
  center_weight = t[common.CENTER_WEIGHT]
  assert center_weight[0, 0] == 1.0            # stuff counts for centers
  assert center_weight[3, 4] == 1.0
  assert center_weight[16, 3] == 0.0           # crowd
  assert center_weight[0, 23] == 0.0           # void
  offset_weight = t[common.OFFSET_WEIGHT]
  expected = np.zeros(label.shape, np.float32)
  expected[(label // DIVISOR != IGNORE) & (label % DIVISOR > 0)] = 1.0
  np.testing.assert_array_equal(offset_weight, expected)


def test_small_instance_weight_off():
  t = _targets(_label(), increase_small_instance_weights=False)
  assert t[common.SEMANTIC_WEIGHT][12, 16] == 1.0


def test_label_without_instances():
  label = np.full((9, 9), STUFF * DIVISOR, np.int32)
  label[0] = VOID
  t = _targets(label)
  assert not t[common.GT_CENTER_HEATMAP].any()
  assert not t[common.GT_OFFSET].any()
  assert not t[common.OFFSET_WEIGHT].any()
  assert t[common.CENTER_WEIGHT].sum() == 72
