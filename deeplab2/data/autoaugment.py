"""Colour-only AutoAugment (Cubuk et al.) policies, by deeplab2's names.

A policy is a list of sub-policies of two (operation, probability, level)
steps; each image gets one sub-policy chosen uniformly, and each of its
steps runs with its probability. Operations follow PIL's definitions on
uint8 RGB images; none moves pixels, so labels are untouched. Levels run
0..10: enhancement factors are level / 10 * 1.8 + 0.1, the solarize
threshold level / 10 * 256, posterize bits level / 10 * 4.
"""

import tensorflow as tf

_MAX_LEVEL = 10.0
_PROBABILITIES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_OPERATIONS = ('AutoContrast', 'Equalize', 'Invert', 'Posterize', 'Solarize',
               'Color', 'Contrast', 'Brightness', 'Sharpness')
# deeplab2's "simple classification policy": (operation, probability index,
# level) twice per sub-policy.
_SIMPLE_CLASSIFICATION = ((8, 2, 7, 7, 1, 10), (1, 0, 9, 6, 1, 10),
                          (8, 1, 9, 5, 1, 9), (4, 1, 7, 1, 3, 9),
                          (8, 1, 1, 1, 1, 7))


def _decode(table, magnitude_scale):
  return tuple(
      tuple((_OPERATIONS[row[3 * i]], _PROBABILITIES[row[3 * i + 1]],
             row[3 * i + 2] * magnitude_scale) for i in range(2))
      for row in table)


POLICIES = {
    'simple_classification_policy': _decode(_SIMPLE_CLASSIFICATION, 1.0),
    'simple_classification_policy_magnitude_scale_0.2': _decode(
        _SIMPLE_CLASSIFICATION, 0.2),
}


def _blend(degenerate, image, factor):
  """degenerate + factor * (image - degenerate), clipped, as uint8."""
  mixed = tf.cast(degenerate, tf.float32) + factor * (
      tf.cast(image, tf.float32) - tf.cast(degenerate, tf.float32))
  return tf.cast(tf.clip_by_value(mixed, 0.0, 255.0), tf.uint8)


def _grey(image):
  return tf.image.rgb_to_grayscale(image)


def _per_channel(fn, image):
  return tf.stack([fn(image[..., c]) for c in range(3)], axis=-1)


def autocontrast(image):
  def channel(values):
    # float64 as PIL's Python arithmetic: float32 turns 255 into 254.99998.
    low = tf.cast(tf.reduce_min(values), tf.float64)
    high = tf.cast(tf.reduce_max(values), tf.float64)
    scale = 255.0 / tf.maximum(high - low, 1.0)
    stretched = tf.clip_by_value(
        tf.cast(values, tf.float64) * scale - low * scale, 0.0, 255.0)
    return tf.where(high > low, tf.cast(stretched, tf.uint8), values)
  return _per_channel(channel, image)


def equalize(image):
  def channel(values):
    values = tf.cast(values, tf.int32)
    histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256,
                                 maxlength=256)
    nonzero = tf.boolean_mask(histogram, histogram > 0)
    step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255
    safe_step = tf.maximum(step, 1)
    table = (tf.cumsum(histogram) + safe_step // 2) // safe_step
    table = tf.clip_by_value(tf.concat([[0], table[:-1]], 0), 0, 255)
    return tf.cast(tf.where(step > 0, tf.gather(table, values), values),
                   tf.uint8)
  return _per_channel(channel, image)


def invert(image):
  return 255 - image


def posterize(image, bits):
  shift = 8 - int(bits)
  return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def solarize(image, threshold):
  return tf.where(image < threshold, image, 255 - image)


def color(image, factor):
  return _blend(tf.image.grayscale_to_rgb(_grey(image)), image, factor)


def contrast(image, factor):
  mean = tf.reduce_mean(tf.cast(_grey(image), tf.float32))
  degenerate = tf.fill(tf.shape(image), tf.cast(mean, tf.uint8))
  return _blend(degenerate, image, factor)


def brightness(image, factor):
  return _blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
  """Blends with PIL's SMOOTH filter (borders keep the original pixels)."""
  kernel = tf.constant([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13.0
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
  smooth = tf.nn.depthwise_conv2d(tf.cast(image, tf.float32)[None], kernel,
                                  [1, 1, 1, 1], 'VALID')[0]
  smooth = tf.cast(tf.clip_by_value(smooth, 0.0, 255.0), tf.uint8)
  inner = tf.pad(tf.ones_like(smooth, tf.bool), [[1, 1], [1, 1], [0, 0]])
  degenerate = tf.where(inner, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]),
                        image)
  return _blend(degenerate, image, factor)


def _enhance(level):
  return level / _MAX_LEVEL * 1.8 + 0.1


def apply_operation(image, name, level):
  """One operation at `level` on uint8 [H, W, 3]."""
  if name == 'AutoContrast':
    return autocontrast(image)
  if name == 'Equalize':
    return equalize(image)
  if name == 'Invert':
    return invert(image)
  if name == 'Posterize':
    return posterize(image, int(level / _MAX_LEVEL * 4))
  if name == 'Solarize':
    return solarize(image, int(level / _MAX_LEVEL * 256))
  enhance = {'Color': color, 'Contrast': contrast, 'Brightness': brightness,
             'Sharpness': sharpness}
  return enhance[name](image, _enhance(level))


def distort(image, policy_name, seed):
  """Applies one random sub-policy of `policy_name` to uint8 [H, W, 3].

  Args:
    image: uint8 [H, W, 3].
    policy_name: a key of POLICIES.
    seed: int [2] tensor for the stateless random choices.

  Raises:
    ValueError: an unknown policy name (the message lists the valid ones).
  """
  if policy_name not in POLICIES:
    raise ValueError(f'Unknown autoaugment_policy_name "{policy_name}"; '
                     f'valid: {", ".join(sorted(POLICIES))}.')
  policy = POLICIES[policy_name]
  seeds = tf.random.split(seed, 1 + 2 * len(policy))
  chosen = tf.random.stateless_uniform([], seeds[0], 0, len(policy), tf.int32)
  for index, steps in enumerate(policy):
    def run(index=index, steps=steps, image=image):
      for step, (name, probability, level) in enumerate(steps):
        if probability <= 0:
          continue
        draw = tf.random.stateless_uniform([], seeds[1 + 2 * index + step])
        image = tf.cond(draw < probability,
                        lambda n=name, l=level, i=image: apply_operation(
                            i, n, l),
                        lambda i=image: i)
      return image
    image = tf.cond(tf.equal(chosen, index), run, lambda i=image: i)
  return image
