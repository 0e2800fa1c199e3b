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

from collections.abc import Callable, Sequence
import dataclasses

import tensorflow as tf

from deeplab2 import common

# The scales of one pass at the input's own size.
NO_SCALING = (1.0,)


@dataclasses.dataclass(frozen=True)
class TestTimeAugmentation:
  """The test-time augmentation of evaluation, export and inference.

  Built once by the config door (deeplab2.config) from
  evaluator_options.eval_scales and add_flipped_images, which it checks
  and normalises (no scales: NO_SCALING).

  Attributes:
    scales: input scales, one pass (two with flip) each; never empty.
    flip: each scale also runs on the mirrored input.
  """
  __test__ = False    # not a pytest test class, whatever its name

  scales: tuple[float, ...] = NO_SCALING
  flip: bool = False

  def __post_init__(self):
    object.__setattr__(self, 'scales', tuple(float(s) for s in self.scales))
    object.__setattr__(self, 'flip', bool(self.flip))
    if not self.scales:
      raise ValueError(f'TestTimeAugmentation needs at least one scale; '
                       f'{NO_SCALING} is none.')

  @property
  def enabled(self) -> bool:
    """False when it asks for one pass at the input's own scale."""
    return tuple(self.scales) != NO_SCALING or self.flip


def scaled_size(size: Sequence[int] | tf.Tensor,
                scale: float) -> list[int] | tf.Tensor:
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


def _flip_back(outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """Mirrors a flipped pass's outputs back; x offsets change sign."""
  flipped = {}
  for key, value in outputs.items():
    value = tf.reverse(value, axis=[2])
    if key == common.PRED_OFFSET_MAP:
      value = value * tf.constant([1.0, -1.0], value.dtype)
    flipped[key] = value
  return flipped


def predict(model: Callable[..., dict[str, tf.Tensor]], images: tf.Tensor,
            tta: TestTimeAugmentation = TestTimeAugmentation()
            ) -> dict[str, tf.Tensor]:
  """Runs `model` over the scaled (and flipped) images and averages.

  Without augmentation (`tta.enabled` False) this is exactly
  `model(images, training=False)`.

  Args:
    model: a PanopticDeepLab (its call takes `output_size` and
      `pool_scale`).
    images: float [B, H, W, 3] in 0..255 (padded as evaluation pads them).
    tta: the scales and flip.

  Returns:
    dict of float32 maps at [B, H, W]: semantic_logits [.., C] holds the
    log of the averaged probabilities (so argmax and softmax give the
    averaged prediction and probabilities back), and with the instance
    branch center_heatmap and offset_map [.., 2] the averaged ones.
  """
  if not tta.enabled:
    return model(images, training=False)
  static = images.shape[1:3]
  size = (list(static) if static.is_fully_defined() else
          tf.shape(images)[1:3])
  totals: dict[str, tf.Tensor] = {}
  num_passes = 0
  for scale in tta.scales:
    scaled = images
    if scale != 1.0:
      scaled = tf.raw_ops.ResizeBilinear(
          images=tf.cast(images, tf.float32), size=scaled_size(size, scale),
          align_corners=True)
    if tta.flip:
      # The mirrored images ride in the same batch: one model call per
      # scale (half the graph to trace, fewer and larger kernels to run);
      # every layer treats each image on its own at inference. Memory
      # grows a little (ResNet-50 at 1025 x 2049: +0.1 to 0.2 GiB).
      scaled = tf.concat([scaled, tf.reverse(scaled, axis=[2])], axis=0)
    outputs = model(scaled, training=False, output_size=size,
                    pool_scale=scale)
    passes = [outputs]
    if tta.flip:
      halves = {key: tf.split(value, 2, axis=0)
                for key, value in outputs.items()}
      passes = [{key: pair[0] for key, pair in halves.items()},
                _flip_back({key: pair[1] for key, pair in halves.items()})]
    for outputs in passes:
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
