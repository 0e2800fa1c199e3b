"""Test-time augmentation: scales, flips and their averaging."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2.inference import tta
from deeplab2.utils import resize

from conftest import tiny_model


class _ConstantOffsets:
  """A stand-in model: offsets (dy, dx) per pixel of its own input grid,
  brought to `output_size` as PanopticDeepLab brings its decoder's."""

  def __init__(self, dy, dx, num_classes=3):
    self.offset = (dy, dx)
    self.num_classes = num_classes
    self.calls = []
    self.pool_scales = []

  def __call__(self, images, training=None, output_size=None,
               pool_scale=1.0):
    del training
    self.pool_scales.append(pool_scale)
    size = tf.shape(images)[1:3]
    self.calls.append((int(tf.shape(images)[0]),
                       tuple(int(v) for v in size.numpy()),
                       None if output_size is None else tuple(output_size)))
    batch = tf.shape(images)[0]
    offsets = tf.ones(tf.concat([[batch], size, [2]], 0)) * self.offset
    # Logits that prefer class 1 on the left half of the input.
    columns = tf.cast(tf.range(size[1]), tf.float32)
    left = tf.cast(columns < tf.cast(size[1], tf.float32) / 2, tf.float32)
    logits = tf.stack([tf.zeros_like(left), 2.0 * left,
                       tf.ones_like(left)], -1)
    logits = tf.tile(logits[None, None], tf.concat([[batch, size[0]], [1, 1]],
                                                   0))
    target = size if output_size is None else output_size
    return {
        common.PRED_SEMANTIC_LOGITS: resize.resize_bilinear(logits, target),
        common.PRED_CENTER_HEATMAP: resize.resize_bilinear(
            tf.reduce_mean(images, -1, keepdims=True), target)[..., 0],
        common.PRED_OFFSET_MAP: resize.resize_and_rescale_offsets(
            offsets, target),
    }


def test_the_carrier_is_plain_by_default_and_never_without_scales():
  assert tta.TestTimeAugmentation() == tta.TestTimeAugmentation((1.0,), False)
  assert not tta.TestTimeAugmentation().enabled
  assert tta.TestTimeAugmentation(flip=True).enabled
  assert tta.TestTimeAugmentation((0.5, 1.0)).enabled
  assert tta.TestTimeAugmentation([1, 2]).scales == (1.0, 2.0)
  with pytest.raises(ValueError, match='at least one scale'):
    tta.TestTimeAugmentation(())


def test_scaled_size_is_deeplab2s():
  assert tta.scaled_size((1025, 2049), 0.75) == [769, 1537]
  assert tta.scaled_size((33, 65), 1.25) == [41, 81]
  assert tta.scaled_size(tf.constant([33, 65]), 0.5).numpy().tolist() == [17,
                                                                          33]


def test_offsets_are_rescaled_and_flipped_x_offsets_negated():
  model = _ConstantOffsets(dy=2.0, dx=3.0)
  images = tf.random.uniform([1, 33, 49, 3], 0, 255, seed=1)
  outputs = tta.predict(model, images,
                        tta.TestTimeAugmentation((0.5, 1.0), flip=True))
  # Inputs: 17 x 25 and 33 x 49, each with its mirror image in the same
  # batch (one call per scale); all back at 33 x 49.
  assert model.calls == [(2, (17, 25), (33, 49)), (2, (33, 49), (33, 49))]
  # Each pass scales the ASPP pooling window with its input, as deeplab2.
  assert model.pool_scales == [0.5, 1.0]
  offsets = outputs[common.PRED_OFFSET_MAP].numpy()
  # dy: 2 x 2 (half scale) and 2 (full), averaged over 4 passes -> 3;
  # dx: the mirrored passes cancel the plain ones -> 0.
  np.testing.assert_allclose(offsets[..., 0], 3.0, rtol=1e-6)
  np.testing.assert_allclose(offsets[..., 1], 0.0, atol=1e-5)
  # Averaged probabilities: softmax(log p) gives them back, summing to 1.
  probs = tf.nn.softmax(outputs[common.PRED_SEMANTIC_LOGITS]).numpy()
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
  # The plain passes favour class 1 on the left half, the mirrored ones on
  # the right: away from the middle the average is the two halves' mean.
  plain = tta.predict(model, images, tta.TestTimeAugmentation())
  plain_probs = tf.nn.softmax(plain[common.PRED_SEMANTIC_LOGITS]).numpy()
  expected = (plain_probs + plain_probs[:, :, ::-1]) / 2
  away = np.r_[0:20, 29:49]
  np.testing.assert_allclose(probs[:, :, away], expected[:, :, away],
                             atol=1e-6)


def test_one_scale_without_flip_is_the_plain_model_exactly():
  model = tiny_model()
  images = tf.random.uniform([2, 33, 33, 3], 0, 255, seed=2)
  plain = model(images, training=False)
  outputs = tta.predict(model, images, tta.TestTimeAugmentation())
  for key, value in plain.items():
    np.testing.assert_array_equal(outputs[key].numpy(), value.numpy())


def test_the_mirrored_images_in_the_batch_are_separate_passes():
  # deeplab2 runs the mirrored input as a call of its own; in one batch
  # each image is still computed on its own (inference batch norm).
  model = tiny_model()
  images = tf.random.uniform([2, 33, 49, 3], 0, 255, seed=4)
  outputs = tta.predict(model, images, tta.TestTimeAugmentation(flip=True))
  plain = model(images, training=False)
  mirrored = model(tf.reverse(images, [2]), training=False)
  for key, value in outputs.items():
    a, b = plain[key], tf.reverse(mirrored[key], [2])
    if key == common.PRED_OFFSET_MAP:
      b = b * tf.constant([1.0, -1.0])
    if key == common.PRED_SEMANTIC_LOGITS:
      a, b = tf.nn.softmax(a), tf.nn.softmax(b)
      value = tf.exp(value)
    np.testing.assert_allclose(value.numpy(), ((a + b) / 2).numpy(),
                               rtol=0, atol=1e-5, err_msg=key)


def test_flip_augmented_maps_of_a_mirror_image_are_mirror_images():
  model = tiny_model()
  images = tf.random.uniform([1, 33, 49, 3], 0, 255, seed=3)
  mirrored = tf.reverse(images, [2])
  # 1.0: the same passes in another order (a few float32 ulps from the
  # vectorised softmax); other scales: also the resizes' rounding.
  for scales, tolerance in (((1.0,), 1e-6), ((0.75, 1.25), 1e-4)):
    augmentation = tta.TestTimeAugmentation(scales, flip=True)
    outputs = tta.predict(model, images, augmentation)
    mirror = tta.predict(model, mirrored, augmentation)
    for key in outputs:
      expected = outputs[key].numpy()[:, :, ::-1]
      if key == common.PRED_OFFSET_MAP:
        expected = expected * np.array([1.0, -1.0], np.float32)
      got = mirror[key].numpy()
      if key == common.PRED_SEMANTIC_LOGITS:
        expected, got = np.exp(expected), np.exp(got)
      np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance,
                                 err_msg=f'{key} at scales {scales}')
