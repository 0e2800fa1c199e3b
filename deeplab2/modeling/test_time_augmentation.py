"""Test-time augmentation: several input scales and left-right flips,
averaged before post-processing (deeplab2's definition).

For each scale s the input of size (H, W) is resized (bilinear, align
corners) to ((H - 1) s + 1, (W - 1) s + 1), as deeplab2 scales its inputs,
and the ASPP pooling window is scaled alike. Each pass's outputs are brought
straight from the decoder's resolution to (H, W) (offsets rescaled with
the size); a flipped pass is flipped back and its x offsets negated. The
semantic probabilities (softmax of each pass), center heatmaps and offsets
are averaged over the passes.
"""

import tensorflow as tf

from deeplab2 import common


def is_plain(scales, flip):
  """True when the options ask for one pass at the input's own scale."""
  return tuple(scales) in ((), (1.0,)) and not flip


def scaled_size(size, scale):
  """deeplab2's scaled input size: int((size - 1) * scale + 1) per side.

  Args:
    size: (height, width) Python ints, or an int32 [2] tensor.
    scale: Python float.

  Returns:
    A list of two Python ints, or an int32 [2] tensor.
  """
  if isinstance(size, tf.Tensor):
    # float64, as Python computes the static case.
    return tf.cast((tf.cast(size, tf.float64) - 1.0) * scale + 1.0, tf.int32)
  return [int((float(side) - 1.0) * scale + 1.0) for side in size]


def _flip_back(outputs):
  """Mirrors a flipped pass's outputs back; x offsets change sign."""
  flipped = {}
  for key, value in outputs.items():
    value = tf.reverse(value, axis=[2])
    if key == common.PRED_OFFSET_MAP:
      value = value * tf.constant([1.0, -1.0], value.dtype)
    flipped[key] = value
  return flipped


def predict(model, images, scales=(1.0,), flip=False):
  """Runs `model` over the scaled (and flipped) images and averages.

  With one scale of 1.0 and no flip this is exactly `model(images)`.

  Args:
    model: a PanopticDeepLab (its call takes `output_size`).
    images: float [B, H, W, 3] in 0..255.
    scales: the input scales (EvaluatorOptions.eval_scales).
    flip: also run each scale's mirror image (add_flipped_images).

  Returns:
    dict of float32 maps at [B, H, W]: semantic_logits [.., C] holds the
    log of the averaged probabilities (so argmax and softmax give the
    averaged prediction and probabilities back), center_heatmap and
    offset_map [.., 2] the averaged ones.
  """
  scales = tuple(scales) or (1.0,)
  if is_plain(scales, flip):
    return model(images, training=False)
  static = images.shape[1:3]
  size = (list(static) if static.is_fully_defined() else
          tf.shape(images)[1:3])
  totals = {}
  num_passes = 0
  for scale in scales:
    scaled = images
    if scale != 1.0:
      scaled = tf.raw_ops.ResizeBilinear(
          images=tf.cast(images, tf.float32), size=scaled_size(size, scale),
          align_corners=True)
    passes = [(scaled, False)]
    if flip:
      passes.append((tf.reverse(scaled, axis=[2]), True))
    for pass_images, flipped in passes:
      outputs = model(pass_images, training=False, output_size=size,
                      pool_scale=scale)
      if flipped:
        outputs = _flip_back(outputs)
      outputs = dict(outputs)
      outputs[common.PRED_SEMANTIC_LOGITS] = tf.nn.softmax(
          outputs[common.PRED_SEMANTIC_LOGITS], axis=-1)
      for key, value in outputs.items():
        totals[key] = value if key not in totals else totals[key] + value
      num_passes += 1
  averaged = {key: value / num_passes for key, value in totals.items()}
  averaged[common.PRED_SEMANTIC_LOGITS] = tf.math.log(
      averaged[common.PRED_SEMANTIC_LOGITS])
  return averaged
