"""The TF post-processor against a straightforward NumPy implementation.

The reference below is written independently, with plain loops over
centers, instances and classes, from the rules in the README.
"""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2 import label_spec
from deeplab2.postprocessing import post_processor

NUM_CLASSES = 6
THINGS = (3, 4, 5)
DIVISOR = 1000


def _max_pool_same(x, kernel):
  height, width = x.shape
  half = kernel // 2
  out = np.empty_like(x)
  for y in range(height):
    for x_ in range(width):
      out[y, x_] = x[max(0, y - half):y + half + 1,
                     max(0, x_ - half):x_ + half + 1].max()
  return out


def reference(logits, heatmap, offsets, threshold, nms_kernel, keep_k,
              stuff_area_limit, ignore_label):
  """One image: returns panoptic, instance_pred, points, scores, inst scores."""
  height, width, _ = logits.shape
  semantic = logits.argmax(-1)
  heat = np.where(heatmap > threshold, heatmap, 0).astype(np.float32)
  pooled = _max_pool_same(heat, nms_kernel)
  candidates = [(-heat[y, x], y * width + x) for y in range(height)
                for x in range(width) if heat[y, x] > 0 and
                heat[y, x] == pooled[y, x]]
  candidates.sort()
  kept = sorted(candidates[:keep_k], key=lambda c: c[1])   # raster order
  points = [(i // width, i % width) for _, i in kept]
  scores = [-s for s, _ in kept]

  instance = np.zeros((height, width), np.int64)
  if points:
    for y in range(height):
      for x in range(width):
        vy = np.float32(y) + offsets[y, x, 0]
        vx = np.float32(x) + offsets[y, x, 1]
        best, best_k = None, 0
        for k, (cy, cx) in enumerate(points):
          d = np.float32((vy - np.float32(cy)) ** 2) + np.float32(
              (vx - np.float32(cx)) ** 2)
          if best is None or d < best:
            best, best_k = d, k
        instance[y, x] = best_k + 1
  is_thing = np.isin(semantic, THINGS)
  instance = np.where(is_thing, instance, 0)

  void = ignore_label * DIVISOR
  panoptic = np.full((height, width), void, np.int64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  next_id = {}
  instance_scores = np.zeros(len(points))
  # Instances numbered per class in the raster order of their first pixel.
  first_pixel = {}
  for index, k in enumerate(instance.ravel()):
    if k and k not in first_pixel:
      first_pixel[k] = index
  for k in sorted(range(len(points)), key=lambda k: first_pixel.get(k + 1,
                                                                   -1)):
    mask = instance == k + 1
    if not mask.any():
      continue
    votes = np.bincount(semantic[mask], minlength=NUM_CLASSES)
    cls = int(votes.argmax())        # first maximum: the lower class id
    next_id[cls] = next_id.get(cls, 0) + 1
    panoptic[mask] = cls * DIVISOR + next_id[cls]
    instance_scores[k] = scores[k] * probs[..., cls][mask].mean()
  for cls in range(NUM_CLASSES):
    if cls in THINGS or cls == ignore_label:
      continue
    mask = semantic == cls
    if mask.sum() >= stuff_area_limit:
      panoptic[mask] = cls * DIVISOR
  return panoptic, instance, points, scores, instance_scores


def _random_inputs(rng, height, width, num_centers):
  logits = rng.normal(size=(height, width, NUM_CLASSES)).astype(np.float32)
  # Blobs of classes so there are real segments.
  blob = rng.integers(0, NUM_CLASSES, size=(height // 8 + 1, width // 8 + 1))
  logits += 3.0 * np.eye(NUM_CLASSES, dtype=np.float32)[
      np.kron(blob, np.ones((8, 8), int))[:height, :width]]
  heatmap = rng.uniform(0, 0.09, size=(height, width)).astype(np.float32)
  slots = [(y, x) for y in range(1, height, 4) for x in range(1, width, 4)]
  chosen = rng.choice(len(slots), size=num_centers, replace=False)
  centers = [slots[i] for i in chosen]
  for y, x in centers:
    heatmap[y, x] = rng.uniform(0.15, 1.0)
  yy, xx = np.mgrid[0:height, 0:width]
  if centers:
    target = np.array(centers)[rng.integers(0, len(centers),
                                            size=(height, width))]
  else:
    target = np.stack([yy, xx], -1)
  offsets = (target - np.stack([yy, xx], -1) + rng.normal(
      0, 1.5, size=(height, width, 2))).astype(np.float32)
  return logits, heatmap, offsets


def _run_tf(logits, heatmap, offsets, ignore_label, jit=False, **options):
  spec = label_spec.LabelSpec(num_classes=NUM_CLASSES,
                              ignore_label=ignore_label,
                              label_divisor=DIVISOR, thing_class_ids=THINGS)
  processor = post_processor.PanopticDeepLabPostProcessor(
      post_processor.PostProcessorOptions(label_spec=spec, **options))
  fn = tf.function(processor.__call__, jit_compile=True) if jit else processor
  result = fn({common.PRED_SEMANTIC_LOGITS: tf.constant(logits[None]),
               common.PRED_CENTER_HEATMAP: tf.constant(heatmap[None]),
               common.PRED_OFFSET_MAP: tf.constant(offsets[None])})
  return {k: v.numpy()[0] for k, v in result.items()}


def _compare(logits, heatmap, offsets, jit=False, threshold=0.1, nms_kernel=3,
             keep_k=200, stuff_area_limit=20, ignore_label=255):
  panoptic, instance, points, scores, inst_scores = reference(
      logits, heatmap, offsets, threshold, nms_kernel, keep_k,
      stuff_area_limit, ignore_label)
  ours = _run_tf(logits, heatmap, offsets, jit=jit,
                 center_score_threshold=threshold, nms_kernel=nms_kernel,
                 keep_k_centers=keep_k, stuff_area_limit=stuff_area_limit,
                 ignore_label=ignore_label)
  np.testing.assert_array_equal(ours[common.PRED_PANOPTIC], panoptic)
  np.testing.assert_array_equal(ours[common.PRED_INSTANCE], instance)
  n = len(points)
  assert (ours[common.PRED_CENTER_SCORES] > 0).sum() == n
  np.testing.assert_array_equal(ours[common.PRED_CENTER_POINTS][:n],
                                np.array(points).reshape(n, 2))
  np.testing.assert_allclose(ours[common.PRED_CENTER_SCORES][:n], scores,
                             atol=1e-6)
  np.testing.assert_allclose(ours[common.PRED_INSTANCE_SCORES][:n],
                             inst_scores, atol=1e-6)
  return n


@pytest.mark.parametrize('num_centers', [0, 1, 20, 200])
def test_random_maps(num_centers):
  rng = np.random.default_rng(num_centers)
  size = (61, 65) if num_centers < 200 else (65, 129)
  n = _compare(*_random_inputs(rng, *size, num_centers))
  assert n == num_centers


def test_same_under_xla():
  rng = np.random.default_rng(7)
  assert _compare(*_random_inputs(rng, 33, 41, 12), jit=True) == 12


def test_more_candidates_than_k():
  rng = np.random.default_rng(1)
  assert _compare(*_random_inputs(rng, 33, 65, 40), keep_k=10) == 10


def test_ties():
  rng = np.random.default_rng(2)
  logits, heatmap, offsets = _random_inputs(rng, 17, 17, 0)
  heatmap[4, 4] = heatmap[4, 5] = 0.5       # a plateau: both are centers
  heatmap[12, 12] = 0.5                     # same score, later index
  offsets[:] = 0.0
  offsets[8, 8] = [0.0, 0.0]                # (8, 8) is equidistant-ish
  logits[...] = 0.0
  logits[:, :8, 3] = 1.0                    # class 3 left, 4 right: a pixel
  logits[:, 8:, 4] = 1.0                    # vote can tie between them
  assert _compare(logits, heatmap, offsets) == 3


def test_empty_all_stuff_and_all_void():
  rng = np.random.default_rng(3)
  logits, heatmap, offsets = _random_inputs(rng, 21, 23, 0)
  assert _compare(logits, heatmap, offsets) == 0           # no center
  logits[:] = 0.0
  logits[..., 1] = 5.0                                     # all stuff
  assert _compare(logits, heatmap, offsets) == 0
  heatmap[10, 10] = 0.9
  logits[:] = 0.0
  logits[..., 0] = 5.0                      # all class 0, the void class here
  assert _compare(logits, heatmap, offsets, ignore_label=0) == 1


def test_centers_on_the_border():
  rng = np.random.default_rng(4)
  logits, heatmap, offsets = _random_inputs(rng, 19, 27, 3)
  heatmap[0, 0] = 0.95
  heatmap[18, 26] = 0.97
  heatmap[0, 26] = 0.5
  assert _compare(logits, heatmap, offsets) >= 5
