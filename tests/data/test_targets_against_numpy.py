"""TF targets against an independent NumPy implementation, written here from
SPEC, on random panoptic labels with crowd, void and padding regions."""

import numpy as np
import pytest

from deeplab2 import common
from deeplab2 import label_spec
from deeplab2.data import targets

DIVISOR = 1000
IGNORE = 255
THINGS = (3, 4, 5)


def numpy_targets(label, sigma, threshold, small_weight):
  """SPEC's targets, one instance at a time, in float64 then float32."""
  height, width = label.shape
  semantic = np.where(label < 0, IGNORE, label // DIVISOR)
  instance = np.where(label < 0, 0, label % DIVISOR)
  is_thing = np.isin(semantic, THINGS)
  void = (semantic == IGNORE) | (label < 0)
  crowd = is_thing & (instance == 0)
  radius = int(round(3 * sigma + 1))
  heatmap = np.zeros((height, width), np.float32)
  offset = np.zeros((height, width, 2), np.float32)
  semantic_weight = np.ones((height, width), np.float32)
  offset_weight = np.zeros((height, width), np.float32)
  for value in np.unique(label[is_thing & (instance > 0) & (label >= 0)]):
    mask = label == value
    ys, xs = np.nonzero(mask)
    cy, cx = np.round(ys.mean()), np.round(xs.mean())   # half to even
    for y in range(max(0, int(cy) - radius), min(height, int(cy) + radius + 1)):
      for x in range(max(0, int(cx) - radius),
                     min(width, int(cx) + radius + 1)):
        gaussian = np.float32(np.exp(-((y - cy) ** 2 + (x - cx) ** 2) /
                                     (2 * sigma ** 2)))
        heatmap[y, x] = max(heatmap[y, x], gaussian)
    offset[mask, 0] = cy - ys
    offset[mask, 1] = cx - xs
    offset_weight[mask] = 1.0
    if mask.sum() < threshold:
      semantic_weight[mask] = small_weight
  center_weight = np.where(void | crowd, 0.0, 1.0).astype(np.float32)
  return {common.GT_SEMANTIC: semantic, common.GT_CENTER_HEATMAP: heatmap,
          common.GT_OFFSET: offset, common.SEMANTIC_WEIGHT: semantic_weight,
          common.CENTER_WEIGHT: center_weight,
          common.OFFSET_WEIGHT: offset_weight}


def random_label(rng, height, width):
  """Stuff background, thing blobs (some crowd), void and padding."""
  label = np.full((height, width), rng.choice([0, 1, 2]) * DIVISOR, np.int64)
  label[:, : width // 3] = 1 * DIVISOR
  counters = {}
  for _ in range(rng.integers(0, 12)):
    cls = int(rng.choice(THINGS))
    crowd = rng.uniform() < 0.2
    if not crowd:
      counters[cls] = counters.get(cls, 0) + 1
    value = cls * DIVISOR + (0 if crowd else counters[cls])
    y0, x0 = rng.integers(0, height), rng.integers(0, width)
    h, w = rng.integers(1, height // 2 + 2), rng.integers(1, width // 2 + 2)
    yy, xx = np.mgrid[0:height, 0:width]
    if rng.uniform() < 0.5:
      blob = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
    else:
      blob = ((yy - y0) / h) ** 2 + ((xx - x0) / w) ** 2 < 1
    label[blob] = value
  label[rng.uniform(size=label.shape) < 0.02] = IGNORE * DIVISOR
  pad = rng.integers(0, 4)
  if pad:
    label[-pad:, :] = IGNORE * DIVISOR          # padding, as after a crop
  return label.astype(np.int32)


@pytest.mark.parametrize('seed', range(6))
def test_tf_targets_equal_numpy(seed):
  rng = np.random.default_rng(seed)
  height, width = (33, 65) if seed % 2 else (40, 29)
  sigma = [8.0, 3.0, 1.5][seed % 3]
  label = random_label(rng, height, width)
  options = targets.TargetOptions(
      label_spec=label_spec.LabelSpec(
          num_classes=6, ignore_label=IGNORE, label_divisor=DIVISOR,
          thing_class_ids=THINGS),
      sigma=sigma, small_instance_threshold=60, small_instance_weight=3.0)
  ours = {k: v.numpy() for k, v in targets.make_targets(label,
                                                         options).items()}
  expected = numpy_targets(label, sigma, 60, 3.0)
  for key in (common.GT_SEMANTIC, common.SEMANTIC_WEIGHT,
              common.CENTER_WEIGHT, common.OFFSET_WEIGHT, common.GT_OFFSET):
    np.testing.assert_array_equal(ours[key], expected[key], err_msg=key)
  np.testing.assert_allclose(ours[common.GT_CENTER_HEATMAP],
                             expected[common.GT_CENTER_HEATMAP], rtol=0,
                             atol=1e-5)


def test_the_random_labels_have_instances_crowd_and_void():
  labels = [random_label(np.random.default_rng(seed), 40, 40)
            for seed in range(6)]
  stacked = np.stack(labels)
  semantic, instance = stacked // DIVISOR, stacked % DIVISOR
  things = np.isin(semantic, THINGS)
  assert (things & (instance > 0)).any()          # instances
  assert (things & (instance == 0)).any()         # crowd
  assert (semantic == IGNORE).any()               # void and padding
