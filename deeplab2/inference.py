"""The one inference path of evaluation, export and the predictor.

image -> evaluation's preprocessing (resize to a range, pad with 127.5 to
the eval crop) -> the model, with test-time augmentation -> outputs cropped
to the (resized) image -> post-processing -> every map back at the image's
own size. The evaluator and the exported SavedModel both call these
functions, so a deployed model predicts what evaluation scored.

An input larger than the crop (after the resize) is padded on each side to
the next output_stride * k + 1 instead: evaluation never sees one (its
pipeline refuses it), and this is what evaluating with that larger crop
would do.
"""

import dataclasses

import tensorflow as tf

from deeplab2 import common
from deeplab2.modeling import test_time_augmentation
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


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
  """Plain values of evaluation's preprocessing and test-time augmentation.

  Attributes:
    crop_size: (height, width) of eval_dataset_options.crop_size; inputs are
      padded to it (ASPP image pooling then averages over the same map as
      in evaluation).
    output_stride: the backbone's; larger inputs pad to output_stride * k
      + 1.
    min_resize_value, max_resize_value, resize_factor: the eval dataset's
      resize to a range (0: off).
    eval_scales: input scales of test-time augmentation.
    add_flipped_images: test-time augmentation also runs mirrored inputs.
  """
  crop_size: tuple
  output_stride: int
  min_resize_value: int = 0
  max_resize_value: int = 0
  resize_factor: int = 0
  eval_scales: tuple = (1.0,)
  add_flipped_images: bool = False

  @property
  def resizes(self):
    return bool(self.min_resize_value or self.max_resize_value)


def _size_list(size):
  """int32 [2] tensor -> [height, width] of Python ints when it is a
  constant computed in eager mode, else of scalar tensors."""
  if isinstance(size, (list, tuple)):
    return list(size)
  return [size[0], size[1]]


def processed_size(image_size, options):
  """The size the model sees the image at, before padding.

  Args:
    image_size: (height, width), Python ints or an int32 [2] tensor.
    options: InferenceOptions.

  Returns:
    The same kind as `image_size`: the resized size with a resize to a
    range, else `image_size`. Python ints go in and come out when the size
    is known (a fixed-size export): the resize is computed eagerly then, by
    the same TF ops as the input pipeline's.
  """
  if not options.resizes:
    return image_size
  if isinstance(image_size, (list, tuple)):
    with tf.init_scope():
      size = resize.resize_to_range_size(
          tf.constant(image_size, tf.int32), options.min_resize_value,
          options.max_resize_value, options.resize_factor)
      return [int(v) for v in size.numpy()]
  return resize.resize_to_range_size(image_size, options.min_resize_value,
                                     options.max_resize_value,
                                     options.resize_factor)


def padded_size(size, options):
  """Per side: the crop when the side fits in it, else the next
  output_stride * k + 1. Python ints in, Python ints out; else int32 [2]."""
  stride = options.output_stride
  if isinstance(size, (list, tuple)):
    return [crop if side <= crop else (side - 1 + stride - 1) // stride *
            stride + 1 for side, crop in zip(size, options.crop_size)]
  crop = tf.constant(options.crop_size, tf.int32)
  stretched = (size - 1 + stride - 1) // stride * stride + 1
  return tf.where(size <= crop, crop, stretched)


def _static_size(images):
  static = images.shape[1:3]
  if static.is_fully_defined():
    return [int(v) for v in static]
  return tf.shape(images)[1:3]


def preprocess(images, options):
  """Evaluation's preprocessing of a batch of same-size images.

  Args:
    images: uint8 or float [B, H, W, 3], 0..255.
    options: InferenceOptions.

  Returns:
    padded: float32 [B, H', W', 3], the model's input.
    size: (height, width) of the image inside `padded` (top left); Python
      ints when H and W are static, else an int32 [2] tensor.
  """
  images = tf.cast(images, tf.float32)
  original = _static_size(images)
  size = processed_size(original, options)
  if options.resizes:
    images = resize.resize_bilinear(images, size)
  target = padded_size(size, options)
  height, width = _size_list(size)
  target_height, target_width = _size_list(target)
  padded = resize.pad_image(images, [[0, target_height - height],
                                     [0, target_width - width]])
  if isinstance(target, list) and not padded.shape[1:3].is_fully_defined():
    padded = tf.ensure_shape(padded, [None] + target + [3])
  return padded, size


def predict(model, padded, options):
  """The model (with the options' test-time augmentation) on padded images.

  Returns:
    dict of float32 maps at the padded size: semantic_logits
    [B, H', W', C], and with the instance branch center_heatmap [B, H', W']
    and offset_map [B, H', W', 2]; see test_time_augmentation.predict.
  """
  return test_time_augmentation.predict(model, padded, options.eval_scales,
                                        options.add_flipped_images)


def crop(maps, size):
  """{key: [B, H', W', ...]} -> the top left `size` (height, width)."""
  height, width = _size_list(size)
  return {key: value[:, :height, :width] for key, value in maps.items()}


def deeplab2_maps(outputs, predictions):
  """deeplab2's per-pixel outputs from ours, at the post-processed size.

  Args:
    outputs: model outputs (semantic_logits [B, H, W, C], center_heatmap
      [B, H, W], offset_map [B, H, W, 2]).
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


def output_maps(outputs, predictions):
  """Every per-pixel map of one post-processed batch, as exported.

  Args:
    outputs: model outputs cropped to the image, [B, H, W, ...].
    predictions: the post-processor's outputs for them.

  Returns:
    dict of [B, H, W, ...] maps: panoptic_pred, semantic_pred,
    instance_pred, center_heatmap, offset_map, and deeplab2_maps.
  """
  maps = {k: predictions[k] for k in (common.PRED_PANOPTIC,
                                      common.PRED_SEMANTIC,
                                      common.PRED_INSTANCE)}
  for key in (common.PRED_CENTER_HEATMAP, common.PRED_OFFSET_MAP):
    if key in outputs:
      maps[key] = outputs[key]
  maps.update(deeplab2_maps(outputs, predictions))
  return maps


def to_size(maps, size):
  """Brings per-pixel maps [B, h, w, ...] to `size` (height, width).

  Integer maps and the sparse float maps (instance_center_pred,
  instance_scores) are resized nearest, the dense float maps bilinear, and
  offset_map is resized and rescaled to the new pixel units; all with
  aligned corners, as the resize to a range. Other keys pass unchanged.
  """
  resized = {}
  for key, value in maps.items():
    if key in _NEAREST_KEYS:
      resized[key] = resize.resize_nearest(value[..., None], size)[..., 0]
    elif key in _BILINEAR_KEYS:
      channels = len(value.shape) == 4
      value = value if channels else value[..., None]
      value = resize.resize_bilinear(value, size)
      resized[key] = value if channels else value[..., 0]
    elif key == common.PRED_OFFSET_MAP:
      resized[key] = resize.resize_and_rescale_offsets(value, size)
    else:
      resized[key] = value
  return resized
