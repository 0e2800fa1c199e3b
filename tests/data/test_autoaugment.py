"""Colour AutoAugment: each operation against PIL's own, the policy table,
and its place in the training pipeline."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

from deeplab2.data import autoaugment


def _image(seed=0, shape=(23, 31)):
  rng = np.random.default_rng(seed)
  base = rng.integers(40, 200, shape + (3,))
  noise = rng.integers(-40, 40, shape + (3,))
  return np.clip(base + noise, 0, 255).astype(np.uint8)


def _ours(fn, image, *args):
  return fn(tf.constant(image), *args).numpy().astype(np.int32)


@pytest.mark.parametrize('name,ours,pil', [
    ('autocontrast', autoaugment.autocontrast, ImageOps.autocontrast),
    ('equalize', autoaugment.equalize, ImageOps.equalize),
    ('invert', autoaugment.invert, ImageOps.invert),
])
def test_parameterless_operations_equal_pil(name, ours, pil):
  image = _image(1)
  expected = np.asarray(pil(Image.fromarray(image)), np.int32)
  np.testing.assert_array_equal(_ours(ours, image), expected, err_msg=name)


def test_posterize_and_solarize_equal_pil():
  image = _image(2)
  for bits in (1, 2, 4):
    np.testing.assert_array_equal(
        _ours(autoaugment.posterize, image, bits),
        np.asarray(ImageOps.posterize(Image.fromarray(image), bits)))
  for threshold in (35, 128, 230):
    np.testing.assert_array_equal(
        _ours(autoaugment.solarize, image, threshold),
        np.asarray(ImageOps.solarize(Image.fromarray(image), threshold)))


@pytest.mark.parametrize('name,ours,pil', [
    ('color', autoaugment.color, ImageEnhance.Color),
    ('contrast', autoaugment.contrast, ImageEnhance.Contrast),
    ('brightness', autoaugment.brightness, ImageEnhance.Brightness),
    ('sharpness', autoaugment.sharpness, ImageEnhance.Sharpness),
])
@pytest.mark.parametrize('factor', [0.1, 0.46, 1.3, 1.9])
def test_enhancements_match_pil_within_rounding(name, ours, pil, factor):
  image = _image(3)
  expected = np.asarray(pil(Image.fromarray(image)).enhance(factor), np.int32)
  got = _ours(ours, image, factor)
  # PIL rounds where TF truncates: one grey level apart at most, plus one
  # more where the grey reference itself rounds differently.
  assert np.abs(got - expected).max() <= 2, name
  assert np.mean(np.abs(got - expected)) < 0.8, name


def test_policy_table_is_deeplab2s():
  policy = autoaugment.POLICIES[
      'simple_classification_policy_magnitude_scale_0.2']
  assert len(policy) == 5
  assert policy[0] == (('Sharpness', 0.4, pytest.approx(1.4)),
                       ('Brightness', 0.2, pytest.approx(2.0)))
  assert policy[3][0][0] == 'Solarize' and policy[3][1] == (
      'Equalize', 0.6, pytest.approx(1.8))
  with pytest.raises(ValueError, match='Unknown autoaugment_policy_name "x"'):
    autoaugment.distort(tf.constant(_image()), 'x', tf.constant([1, 2]))


def test_distort_changes_colours_only_and_keeps_uint8():
  image = tf.constant(_image(4))
  outputs = [autoaugment.distort(image, 'simple_classification_policy',
                                 tf.constant([seed, 7]))
             for seed in range(30)]
  assert all(o.dtype == tf.uint8 and o.shape == image.shape for o in outputs)
  changed = [not np.array_equal(o.numpy(), image.numpy()) for o in outputs]
  assert any(changed) and not all(changed)  # some steps have p < 1


def test_the_same_seed_gives_the_same_distortion():
  image = tf.constant(_image(5))
  first = autoaugment.distort(image, 'simple_classification_policy',
                              tf.constant([3, 4]))
  again = autoaugment.distort(image, 'simple_classification_policy',
                              tf.constant([3, 4]))
  np.testing.assert_array_equal(first.numpy(), again.numpy())
