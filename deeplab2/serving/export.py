"""Exports a trained model plus post-processing as a self-contained SavedModel.

The `serving_default` signature takes one uint8 image [H, W, 3] of any size
and returns (int32 [H, W]) panoptic_pred, semantic_pred, instance_pred,
(float32) center_heatmap [H, W] and offset_map [H, W, 2], plus center_points int32 [K, 2], center_scores
and instance_scores float32 [K]. Loading it needs TensorFlow only.
"""

import os

import tensorflow as tf

from deeplab2 import common

SIGNATURE_OUTPUT_KEYS = (
    common.PRED_PANOPTIC, common.PRED_SEMANTIC, common.PRED_INSTANCE,
    common.PRED_CENTER_HEATMAP, common.PRED_OFFSET_MAP,
    common.PRED_CENTER_POINTS,
    common.PRED_CENTER_SCORES, common.PRED_INSTANCE_SCORES)


class PanopticDeepLabModule(tf.Module):
  """Pads the image to output_stride * k + 1, runs the model, crops back,
  then post-processes: the same steps as evaluation."""

  def __init__(self, model, post_processor, output_stride):
    super().__init__(name='panoptic_deeplab_serving')
    self.model = model
    self.post_processor = post_processor
    self.output_stride = output_stride

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name='image')])
  def serve(self, image):
    """uint8 [H, W, 3] -> dict of predictions for that image (no batch)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    stride = self.output_stride
    padded_height = (height - 1 + stride - 1) // stride * stride + 1
    padded_width = (width - 1 + stride - 1) // stride * stride + 1
    padded = tf.pad(tf.cast(image, tf.float32) - 127.5,
                    [[0, padded_height - height], [0, padded_width - width],
                     [0, 0]]) + 127.5
    outputs = self.model(padded[None], training=False)
    outputs = {k: v[:, :height, :width] for k, v in outputs.items()}
    predictions = self.post_processor(outputs)
    result = {key: predictions[key][0] for key in predictions}
    for key in (common.PRED_CENTER_HEATMAP, common.PRED_OFFSET_MAP):
      if key in outputs:
        result[key] = outputs[key][0]
    return {key: result[key] for key in SIGNATURE_OUTPUT_KEYS if key in result}


_SAVED_MODEL_ENTRIES = {'saved_model.pb', 'variables', 'assets',
                        'fingerprint.pb', 'keras_metadata.pb'}


def check_replaceable(output_path, overwrite):
  """Raises unless `output_path` may receive a new SavedModel.

  It may when it does not exist, or, with overwrite, when it is a folder
  holding a SavedModel and nothing else.

  Raises:
    FileExistsError: it exists and overwrite is False, or it is not a
      SavedModel folder (overwrite never deletes anything else).
  """
  if not tf.io.gfile.exists(output_path):
    return
  if not overwrite:
    raise FileExistsError(f'{output_path} exists; pass overwrite=True '
                          '(--overwrite) to replace it.')
  if not tf.io.gfile.isdir(output_path):
    raise FileExistsError(f'{output_path} is a file, not a SavedModel '
                          'folder; --overwrite replaces SavedModel folders '
                          'only.')
  entries = {entry.rstrip('/') for entry in tf.io.gfile.listdir(output_path)}
  others = sorted(entries - _SAVED_MODEL_ENTRIES)
  if 'saved_model.pb' not in entries or others:
    found = ', '.join(others[:5]) if others else 'no saved_model.pb'
    raise FileExistsError(
        f'{output_path} is not a SavedModel folder (it holds {found}); '
        '--overwrite replaces SavedModel folders only.')


def export_saved_model(model, post_processor, output_stride, output_path,
                       overwrite=False):
  """Writes the SavedModel to `output_path`.

  The new SavedModel is written beside it (a hidden `.<name>.tmp-<pid>`)
  and swapped in once complete; an existing one is moved aside first and
  deleted only after the swap, or put back if the swap fails.

  Raises:
    FileExistsError: see check_replaceable.
  """
  output_path = output_path.rstrip('/')
  check_replaceable(output_path, overwrite)
  module = PanopticDeepLabModule(model, post_processor, output_stride)
  parent, name = os.path.split(output_path)
  tmp_path = os.path.join(parent, f'.{name}.tmp-{os.getpid()}')
  if tf.io.gfile.exists(tmp_path):
    tf.io.gfile.rmtree(tmp_path)
  try:
    tf.saved_model.save(module, tmp_path,
                        signatures={'serving_default': module.serve})
  except BaseException:
    if tf.io.gfile.exists(tmp_path):
      tf.io.gfile.rmtree(tmp_path)
    raise
  old_path = None
  if tf.io.gfile.exists(output_path):
    old_path = os.path.join(parent, f'.{name}.old-{os.getpid()}')
    tf.io.gfile.rename(output_path, old_path)
  try:
    tf.io.gfile.rename(tmp_path, output_path)
  except BaseException:
    if old_path is not None:
      tf.io.gfile.rename(old_path, output_path)
    raise
  if old_path is not None:
    tf.io.gfile.rmtree(old_path)
  return output_path
