"""The model's outputs after the forward pass: cropped to the image,
deeplab2's extra maps, and every map brought back to the image's size."""

from collections.abc import Mapping, Sequence

import tensorflow as tf

from deeplab2 import common
from deeplab2.utils import resize

# deeplab2's names of the extra exported maps.
SEMANTIC_PROBS = 'semantic_probs'             # float32 [B, H, W, C]
INSTANCE_CENTER_PRED = 'instance_center_pred'  # float32 [B, H, W]
# Ours: the score of each instance (index k: instance k + 1), which the
# instance_scores map spreads over its pixels.
INSTANCE_SCORE_LIST = 'instance_score_list'   # float32 [B, K]

_NEAREST_KEYS = (common.PRED_PANOPTIC, common.PRED_SEMANTIC,
                 common.PRED_INSTANCE, INSTANCE_CENTER_PRED,
                 common.PRED_INSTANCE_SCORES)
_BILINEAR_KEYS = (SEMANTIC_PROBS, common.PRED_SEMANTIC_LOGITS,
                  common.PRED_CENTER_HEATMAP)


def crop(maps: Mapping[str, tf.Tensor],
         size: Sequence[int] | tf.Tensor) -> dict[str, tf.Tensor]:
  """{key: [B, H', W', ...]} -> the top left `size` (height, width), Python
  ints or an int32 [2] tensor."""
  if isinstance(size, (list, tuple)):
    height, width = size
  else:
    height, width = size[0], size[1]
  return {key: value[:, :height, :width] for key, value in maps.items()}


def deeplab2_maps(outputs: Mapping[str, tf.Tensor],
                  predictions: Mapping[str, tf.Tensor]
                  ) -> dict[str, tf.Tensor]:
  """deeplab2's per-pixel outputs from ours, at the post-processed size.

  Args:
    outputs: model outputs (semantic_logits float32 [B, H, W, C],
      center_heatmap [B, H, W], offset_map [B, H, W, 2]).
    predictions: the post-processor's outputs for them.

  Returns:
    dict: semantic_probs float32 [B, H, W, C]; with the instance branch
    instance_center_pred float32 [B, H, W] (each kept center's heatmap
    value at its pixel, 0 elsewhere), instance_scores float32 [B, H, W]
    (the score of each pixel's instance, 0 off instances) and
    instance_score_list float32 [B, K].
  """
  logits = outputs[common.PRED_SEMANTIC_LOGITS]
  maps = {SEMANTIC_PROBS: tf.nn.softmax(logits, axis=-1)}
  if common.PRED_CENTER_POINTS not in predictions:
    return maps
  shape = tf.shape(logits)
  points = predictions[common.PRED_CENTER_POINTS]
  center_scores = predictions[common.PRED_CENTER_SCORES]
  batch_index = tf.broadcast_to(tf.range(shape[0])[:, None],
                                tf.shape(center_scores))
  indices = tf.concat([batch_index[..., None], points], axis=-1)
  # Unused slots have score 0 at (0, 0): adding 0 leaves that pixel as is.
  maps[INSTANCE_CENTER_PRED] = tf.scatter_nd(
      tf.reshape(indices, [-1, 3]), tf.reshape(center_scores, [-1]),
      shape[:3])
  score_list = predictions[common.PRED_INSTANCE_SCORES]
  instance = predictions[common.PRED_INSTANCE]
  padded_list = tf.pad(score_list, [[0, 0], [1, 0]])     # index 0: none
  maps[common.PRED_INSTANCE_SCORES] = tf.gather(padded_list, instance,
                                                batch_dims=1)
  maps[INSTANCE_SCORE_LIST] = score_list
  return maps


def output_maps(outputs: Mapping[str, tf.Tensor],
                predictions: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """Every per-pixel map of one post-processed batch, as exported.

  Args:
    outputs: model outputs cropped to the image, [B, H, W, ...].
    predictions: the post-processor's outputs for them.

  Returns:
    dict of [B, H, W, ...] maps: panoptic_pred, semantic_pred,
    instance_pred (int32), center_heatmap, offset_map (float32), and
    deeplab2_maps.
  """
  maps = {k: predictions[k] for k in (common.PRED_PANOPTIC,
                                      common.PRED_SEMANTIC,
                                      common.PRED_INSTANCE)}
  for key in (common.PRED_CENTER_HEATMAP, common.PRED_OFFSET_MAP):
    if key in outputs:
      maps[key] = outputs[key]
  maps.update(deeplab2_maps(outputs, predictions))
  return maps


def to_size(maps: Mapping[str, tf.Tensor],
            size: Sequence[int] | tf.Tensor) -> dict[str, tf.Tensor]:
  """Brings per-pixel maps [B, h, w, ...] to `size` (height, width).

  Integer maps and the sparse float maps (instance_center_pred,
  instance_scores) are resized nearest, the dense float maps bilinear, and
  offset_map is resized and rescaled to the new pixel units; all with
  aligned corners, as the resize to a range. Other keys pass unchanged.
  """
  resized = {}
  for key, value in maps.items():
    if key in _NEAREST_KEYS:
      # tf.squeeze, not [..., 0]: TFLite copies a shrinking slice element
      # by element (16 ms for a 1025 x 2049 map).
      resized[key] = tf.squeeze(resize.resize_nearest(value[..., None], size),
                                -1)
    elif key in _BILINEAR_KEYS:
      channels = len(value.shape) == 4
      value = value if channels else value[..., None]
      value = resize.resize_bilinear(value, size)
      resized[key] = value if channels else tf.squeeze(value, -1)
    elif key == common.PRED_OFFSET_MAP:
      resized[key] = resize.resize_and_rescale_offsets(value, size)
    else:
      resized[key] = value
  return resized
