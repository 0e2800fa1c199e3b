"""Losses against a NumPy transcription of deeplab2's rule and hand values.

deeplab2 (`model/loss/base_loss.py`, `compute_average_top_k_loss`): the
per-pixel loss times its weight (0 on ignore pixels); per sample keep the
k = round(fraction * all pixels) largest, ignore and padding pixels
included; divide their sum by how many of them are non-zero.
"""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2.losses import per_pixel

IGNORE = 255


def numpy_deeplab2_cross_entropy(labels, logits, weights, top_k_percent):
  """deeplab2's weighted top-k softmax cross-entropy, in float64 NumPy."""
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  valid = labels != IGNORE
  picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None],
                              -1)[..., 0]
  pixel_loss = (-picked * weights * valid).reshape(labels.shape[0], -1)
  k = int(np.round(top_k_percent * pixel_loss.shape[1]))   # half to even
  kept = -np.sort(-pixel_loss, axis=1)[:, :k]
  non_zero = (kept != 0).sum(axis=1)
  return np.where(non_zero > 0, kept.sum(axis=1) / np.maximum(non_zero, 1),
                  0.0), k


def _example(num_ignored, seed=0):
  """[1, 10, 10] labels of 5 classes, `num_ignored` of them void, weights 1
  or 3 (small instances), logits N(0, 2)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 5, size=(1, 10, 10)).astype(np.int32)
  labels.reshape(-1)[rng.permutation(100)[:num_ignored]] = IGNORE
  weights = np.where(rng.random((1, 10, 10)) < 0.3, 3.0, 1.0).astype(
      np.float32)
  logits = rng.normal(0.0, 2.0, size=(1, 10, 10, 5)).astype(np.float32)
  return labels, logits, weights


# Golden values of the NumPy transcription (so that it cannot drift with the
# implementation): (ignored pixels, k, loss).
_TABLE = [
    (75, 20, 4.2339247),
    (0, 20, 10.560969),
]


@pytest.mark.parametrize('num_ignored, k, expected', _TABLE)
def test_semantic_loss_equals_deeplab2s_rule(num_ignored, k, expected):
  labels, logits, weights = _example(num_ignored)
  reference, reference_k = numpy_deeplab2_cross_entropy(labels, logits,
                                                        weights, 0.2)
  assert reference_k == k      # 20 % of all 100 pixels, ignored or not
  assert reference[0] == pytest.approx(expected, rel=1e-6)
  ours = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 0.2,
                                              ignore_label=IGNORE)
  np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6)


def test_with_75_ignored_pixels_k_counts_them_too():
  # 25 valid pixels: deeplab2 keeps 20 of them (k = 0.2 * 100), not
  # 5 = 0.2 * 25; the mean of the 20 largest is below that of the 5.
  labels, logits, weights = _example(75)
  ours = float(per_pixel.bootstrapped_cross_entropy(
      labels, logits, weights, 0.2, ignore_label=IGNORE)[0])
  reference, _ = numpy_deeplab2_cross_entropy(labels, logits, weights, 0.2)
  valid_losses = np.sort(numpy_pixel_losses(labels, logits, weights))[::-1]
  assert ours == pytest.approx(valid_losses[:20].mean(), rel=1e-6)
  assert ours < valid_losses[:5].mean()
  assert ours == pytest.approx(reference[0], rel=1e-6)


def numpy_pixel_losses(labels, logits, weights):
  """The weighted cross-entropy of each valid pixel (float64)."""
  valid = labels != IGNORE
  logits = logits.astype(np.float64)[valid]
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return -log_probs[np.arange(len(logits)), labels[valid]] * weights[valid]


def test_fewer_non_zero_losses_than_k_divide_by_their_count():
  # 10 valid pixels, k = 20: ten zeros are kept and do not count.
  labels, logits, weights = _example(90)
  ours = float(per_pixel.bootstrapped_cross_entropy(
      labels, logits, weights, 0.2, ignore_label=IGNORE)[0])
  assert ours == pytest.approx(
      numpy_pixel_losses(labels, logits, weights).mean(), rel=1e-6)


def test_small_instance_weight_enlarges_the_numerator_only():
  logits = np.zeros((1, 1, 2, 2), np.float32)          # CE = log 2 each
  labels = np.zeros((1, 1, 2), np.int32)
  weights = np.array([[[3.0, 1.0]]], np.float32)
  loss = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 1.0)
  assert float(loss[0]) == pytest.approx(np.log(2) * (3 + 1) / 2, rel=1e-6)


def test_k_rounds_half_to_even():
  # 0.5 * 5 = 2.5 -> k = 2 (tf.round, as deeplab2); 0.5 * 7 = 3.5 -> 4.
  for width, k in ((5, 2), (7, 4)):
    losses = np.arange(width, 0, -1, dtype=np.float32).reshape(1, 1, width)
    got = float(per_pixel.average_top_k(losses, 0.5)[0])
    assert got == pytest.approx(np.mean(np.arange(width, width - k, -1)))


def test_ignore_label_and_empty_samples():
  logits = tf.zeros((2, 2, 2, 3))
  labels = tf.constant([[[255, 255], [255, 255]], [[0, 1], [2, 255]]])
  weights = tf.ones((2, 2, 2))
  loss = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 0.2,
                                              ignore_label=255).numpy()
  assert loss[0] == 0.0                       # no valid pixel: 0, not NaN
  # k = round(0.2 * 4) = 1 of the three log 3 values.
  assert loss[1] == pytest.approx(np.log(3), rel=1e-6)


def test_weighted_mse_and_l1_divide_by_non_zero_losses():
  target = np.zeros((1, 2, 3), np.float32)
  prediction = np.array([[[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]], np.float32)
  weights = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]], np.float32)
  # The weighted pixel with no error drops out of the denominator.
  mse = per_pixel.weighted_mse(target, prediction, weights)
  assert float(mse[0]) == pytest.approx((1 + 4) / 2)
  offsets = np.zeros((1, 2, 3, 2), np.float32)
  predicted = np.array([[[[1, 3], [2, 2], [0, 0]],
                         [[9, 9], [9, 9], [9, 9]]]], np.float32)
  l1 = per_pixel.weighted_l1(offsets, predicted, weights)
  assert float(l1[0]) == pytest.approx(((1 + 3) / 2 + (2 + 2) / 2) / 2)
  zero = per_pixel.weighted_l1(offsets, predicted, np.zeros((1, 2, 3)))
  assert float(zero[0]) == 0.0


def test_center_and_offset_losses_take_their_top_k_too():
  # deeplab2 applies compute_average_top_k_loss to every loss: a config's
  # center_loss / regression_loss top_k_percent keeps their hardest pixels.
  from deeplab2 import common  # pylint: disable=g-import-not-at-top
  from deeplab2.losses import panoptic_deeplab_loss  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  batch = {
      common.GT_SEMANTIC: np.zeros((1, 4, 5), np.int32),
      common.SEMANTIC_WEIGHT: np.ones((1, 4, 5), np.float32),
      common.GT_CENTER_HEATMAP: rng.random((1, 4, 5)).astype(np.float32),
      common.CENTER_WEIGHT: np.ones((1, 4, 5), np.float32),
      common.GT_OFFSET: rng.normal(size=(1, 4, 5, 2)).astype(np.float32),
      common.OFFSET_WEIGHT: np.ones((1, 4, 5), np.float32),
  }
  outputs = {
      common.PRED_SEMANTIC_LOGITS: np.zeros((1, 4, 5, 3), np.float32),
      common.PRED_CENTER_HEATMAP: np.zeros((1, 4, 5), np.float32),
      common.PRED_OFFSET_MAP: np.zeros((1, 4, 5, 2), np.float32),
  }
  loss = panoptic_deeplab_loss.PanopticDeepLabLoss(
      panoptic_deeplab_loss.LossOptions(
          ignore_label=IGNORE, center_weight=1.0, center_top_k_percent=0.25,
          regression_weight=1.0, regression_top_k_percent=0.5))(
              outputs, batch)
  squared = np.sort(np.square(batch[common.GT_CENTER_HEATMAP]).ravel())
  assert float(loss['center_loss'][0]) == pytest.approx(
      squared[-5:].mean(), rel=1e-6)              # round(0.25 * 20) = 5
  absolute = np.sort(np.abs(batch[common.GT_OFFSET]).mean(-1).ravel())
  assert float(loss['regression_loss'][0]) == pytest.approx(
      absolute[-10:].mean(), rel=1e-6)
