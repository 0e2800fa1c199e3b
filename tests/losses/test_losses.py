"""Losses on hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2.losses import per_pixel


def test_bootstrapped_cross_entropy_keeps_the_hardest_weighted_pixels():
  # Two classes; logits chosen so per-pixel CE is log(1 + e^-m) for margin m.
  margins = np.array([[[4.0, 2.0, 0.0, -2.0, 1.0]]], np.float32)
  logits = np.stack([margins, np.zeros_like(margins)], -1)
  labels = np.zeros((1, 1, 5), np.int32)
  weights = np.array([[[1.0, 1.0, 1.0, 1.0, 0.0]]], np.float32)
  ce = np.log1p(np.exp(-margins[0, 0]))
  # 4 weighted pixels, top 50 % -> k = 2: the margins -2 and 0.
  loss = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 0.5)
  assert float(loss[0]) == pytest.approx((ce[3] + ce[2]) / 2, rel=1e-6)
  full = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 1.0)
  assert float(full[0]) == pytest.approx(ce[:4].mean(), rel=1e-6)


def test_cross_entropy_weights_scale_and_k_rounds_up():
  logits = np.zeros((1, 1, 3, 2), np.float32)          # CE = log 2 each
  labels = np.zeros((1, 1, 3), np.int32)
  weights = np.array([[[3.0, 1.0, 1.0]]], np.float32)
  # k = ceil(0.5 * 3) = 2: the weight-3 pixel and one weight-1 pixel.
  loss = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 0.5)
  assert float(loss[0]) == pytest.approx(np.log(2) * (3 + 1) / 2, rel=1e-6)


def test_ignore_label_and_zero_weight_guard():
  logits = tf.zeros((2, 2, 2, 3))
  labels = tf.constant([[[255, 255], [255, 255]], [[0, 1], [2, 255]]])
  weights = tf.ones((2, 2, 2))
  loss = per_pixel.bootstrapped_cross_entropy(labels, logits, weights, 0.2,
                                              ignore_label=255).numpy()
  assert loss[0] == 0.0                       # no valid pixel: 0, not NaN
  assert loss[1] == pytest.approx(np.log(3), rel=1e-6)


def test_weighted_mse_and_l1():
  target = np.zeros((1, 2, 2), np.float32)
  prediction = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)
  weights = np.array([[[1.0, 1.0, ], [0.0, 0.0]]], np.float32)
  mse = per_pixel.weighted_mse(target, prediction, weights)
  assert float(mse[0]) == pytest.approx((1 + 4) / 2)
  offsets = np.zeros((1, 2, 2, 2), np.float32)
  predicted = np.array([[[[1, 3], [2, 2]], [[9, 9], [9, 9]]]], np.float32)
  l1 = per_pixel.weighted_l1(offsets, predicted, weights)
  assert float(l1[0]) == pytest.approx(((1 + 3) / 2 + (2 + 2) / 2) / 2)
  zero = per_pixel.weighted_l1(offsets, predicted, np.zeros((1, 2, 2)))
  assert float(zero[0]) == 0.0
