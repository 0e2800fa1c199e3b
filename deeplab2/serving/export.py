"""Exports a trained model with evaluation's inference path as a
self-contained SavedModel (loading it needs TensorFlow only).

Signatures:
  serving_default: `image`, uint8 [H, W, C] of any size (deeplab2's);
  serving_batch: `images`, uint8 [B, H, W, C], images of one size.
C is 3 (RGB), 1 (grey), 2 (grey + alpha) or 4 (RGBA; alpha dropped).

Each image goes through deeplab2.inference: evaluation's resize to a range
and padding to the eval crop, the model with the test-time augmentation
chosen at export, post-processing on the (resized) image, and every map
brought back to H x W. Outputs, per image (the batch signature adds a
leading B):
  panoptic_pred, semantic_pred, instance_pred: int32 [H, W];
  semantic_probs: float32 [H, W, num_classes];
and with the instance branch:
  center_heatmap, instance_center_pred, instance_scores: float32 [H, W];
  offset_map: float32 [H, W, 2], (y, x) in pixels of the H x W image;
  center_points: int32 [K, 2] and center_scores float32 [K], the kept
    centers (y, x) at the post-processed size, score 0 for empty slots;
  instance_score_list: float32 [K], the score of instance k + 1 at k.
The SavedModel's assets hold `dataset_descriptor.json` (class names,
colours, thing ids, label divisor) and `deeplab2_export.json` (the
inference options it was exported with).

`export_from_config` exports an experiment's checkpoint; `restored_model`
(the config's model with a checkpoint, via modeling.restore) also serves
the TFLite and checkpoint conversions and Predictor.from_experiment.
"""

import dataclasses
import json
import os
import tempfile
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2 import inference
from deeplab2.data import dataset_descriptor
from deeplab2.modeling import restore
from deeplab2.utils import atomic

METADATA_FILE = 'deeplab2_export.json'
DESCRIPTOR_FILE = 'dataset_descriptor.json'

SIGNATURE_OUTPUT_KEYS = (
    common.PRED_PANOPTIC, common.PRED_SEMANTIC, common.PRED_INSTANCE,
    inference.SEMANTIC_PROBS, common.PRED_CENTER_HEATMAP,
    common.PRED_OFFSET_MAP, inference.INSTANCE_CENTER_PRED,
    common.PRED_INSTANCE_SCORES, common.PRED_CENTER_POINTS,
    common.PRED_CENTER_SCORES, inference.INSTANCE_SCORE_LIST)

# Serving needs no gradients. Saving the atrous taps' custom gradient fails
# once a fixed-size trace took them ("Found invalid capture ... when saving
# custom gradients": a TFLite conversion of the Cityscapes ResNet-50 at
# 641 x 641 did).
SERVING_SAVE_OPTIONS = tf.saved_model.SaveOptions(
    experimental_custom_gradients=False)

# The post-processor: the model's output dict -> the predictions dict.
PostProcessor = Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]


def to_rgb(images: tf.Tensor) -> tf.Tensor:
  """uint8 [..., H, W, C] with C in 1..4 -> uint8 [..., H, W, 3].

  Grey (and grey + alpha) is repeated into the three channels, an alpha
  channel dropped. Any other C, or an empty image, is an
  InvalidArgumentError that says so.
  """
  shape = tf.shape(images)
  channels = shape[-1]
  checks = [
      tf.debugging.assert_less_equal(
          channels, 4, message='An image has 1 (grey), 2 (grey + alpha), 3 '
          '(RGB) or 4 (RGBA) channels; this one has more'),
      tf.debugging.assert_positive(
          shape[-3:-1], message='An image needs at least one row and one '
          'column')]
  with tf.control_dependencies(checks):
    rgb = tf.cond(channels < 3,
                  lambda: tf.repeat(images[..., :1], 3, axis=-1),
                  lambda: images[..., :3])
  return tf.ensure_shape(rgb, images.shape[:-1].concatenate([3]))


class _Untracked:
  """Holds an object out of TF's object tracking (not a Trackable)."""

  def __init__(self, model: keras.Model):
    self.model = model


class PanopticDeepLabModule(tf.Module):
  """The model, its post-processor and deeplab2.inference, as signatures.

  Args:
    model: the restored PanopticDeepLab.
    post_processor: the PanopticDeepLabPostProcessor (evaluation's).
    options: inference.InferenceOptions (evaluation's, possibly with other
      test-time augmentation).
    input_size: optional (height, width): the signatures then take only
      that size (static shapes throughout).
  """

  def __init__(self, model: keras.Model, post_processor: PostProcessor,
               options: inference.InferenceOptions,
               input_size: Sequence[int] | None = None):
    super().__init__(name='panoptic_deeplab_serving')
    # The SavedModel needs the model's variables, not Keras' object graph
    # of it (about 39,000 tracked objects for the tiny model, which
    # tf.saved_model.save walks: half of an export's time): the model sits
    # in a holder that tf.Module does not follow, its variables in a list.
    self._untracked = _Untracked(model)
    self.model_variables = [variable.value for variable in model.variables]
    self.post_processor = post_processor
    self.options = options
    self.input_size = tuple(input_size) if input_size else None
    height, width = self.input_size or (None, None)
    # Plain TF code, as in the evaluator: no AutoGraph conversion to pay.
    self.serve = tf.function(
        self._serve, autograph=False,
        input_signature=[tf.TensorSpec([height, width, None], tf.uint8,
                                       name='image')])
    self.serve_batch = tf.function(
        self._serve_batch, autograph=False,
        input_signature=[tf.TensorSpec([None, height, width, None],
                                       tf.uint8, name='images')])

  @property
  def model(self) -> keras.Model:
    return self._untracked.model

  def _serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
    # A call of the batch signature's function: the network and the
    # post-processing are traced and stored once for both signatures.
    outputs = self.serve_batch(image[None])
    return {key: value[0] for key, value in outputs.items()}

  def _serve_batch(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
    """uint8 [B, H, W, C] -> dict of [B, ...] outputs (module docstring)."""
    return self.predict_rgb(to_rgb(images))

  def predict_rgb(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
    """uint8 [B, H, W, 3] -> dict of [B, ...] outputs (module docstring)."""
    static = images.shape[1:3]
    original = ([int(v) for v in static] if static.is_fully_defined()
                else tf.shape(images)[1:3])
    padded, size = inference.preprocess(images, self.options)
    outputs = inference.crop(
        inference.predict(self.model, padded, self.options.tta), size)
    predictions = self.post_processor(outputs)
    maps = inference.output_maps(outputs, predictions)
    if self.options.resizes:
      maps = inference.to_size(maps, original)
    for key in (common.PRED_CENTER_POINTS, common.PRED_CENTER_SCORES):
      if key in predictions:
        maps[key] = predictions[key]
    return {key: maps[key] for key in SIGNATURE_OUTPUT_KEYS if key in maps}


def metadata(options: inference.InferenceOptions,
             input_size: Sequence[int] | None = None) -> dict[str, Any]:
  """The JSON object of METADATA_FILE, an asset of the SavedModel."""
  return {'inference_options': dataclasses.asdict(options),
          'input_size': list(input_size) if input_size else None}


_SAVED_MODEL_ENTRIES = {'saved_model.pb', 'variables', 'assets',
                        'fingerprint.pb', 'keras_metadata.pb'}


def _refuse_root_or_working_folder(output_path: str) -> None:
  """A SavedModel is staged beside its folder and swapped in: a filesystem
  root has no beside, and the working folder is where the user's files are.
  (Local paths only; a URL's bucket is the store's business.)"""
  if '://' in output_path:
    return
  resolved = os.path.abspath(output_path or '.')
  if resolved == os.path.dirname(resolved):
    what = 'a filesystem root'
  elif resolved == os.path.abspath(os.getcwd()):
    what = 'the working folder'
  else:
    return
  raise ValueError(f'--output_path={output_path!r} is {what}; give a folder '
                   'for the SavedModel alone (e.g. runs/export).')


def check_replaceable(output_path: str, overwrite: bool) -> None:
  """Raises unless `output_path` may receive a new SavedModel.

  It may when it does not exist, or, with overwrite, when it is a folder
  holding a SavedModel and nothing else; never a filesystem root or the
  working folder.

  Raises:
    ValueError: it is a filesystem root or the working folder.
    FileExistsError: it exists and overwrite is False, or it is not a
      SavedModel folder (overwrite never deletes anything else).
  """
  _refuse_root_or_working_folder(output_path)
  output_path = output_path.rstrip('/')
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


def export_saved_model(model: keras.Model, post_processor: PostProcessor,
                       options: inference.InferenceOptions, output_path: str,
                       descriptor: dataset_descriptor.DatasetDescriptor,
                       overwrite: bool = False,
                       input_size: Sequence[int] | None = None) -> str:
  """Writes the SavedModel to `output_path`; returns that path.

  Args:
    model, post_processor, options, input_size: see PanopticDeepLabModule.
    output_path: the SavedModel folder.
    descriptor: the eval dataset's DatasetDescriptor (saved as an asset).
    overwrite: replace an existing SavedModel there (see
      check_replaceable).

  The new SavedModel is written beside it and swapped in whole once
  complete (atomic.StagedFolder): a failure or an interruption leaves the
  old one, or none, as it was.

  Raises:
    FileExistsError, ValueError: see check_replaceable.
  """
  check_replaceable(output_path, overwrite)
  output_path = output_path.rstrip('/')
  module = PanopticDeepLabModule(model, post_processor, options, input_size)
  with (atomic.StagedFolder(output_path, 'an export') as staged,
        tempfile.TemporaryDirectory() as scratch):
    metadata_path = os.path.join(scratch, METADATA_FILE)
    with open(metadata_path, 'w') as f:
      json.dump(metadata(options, input_size), f, indent=2)
    descriptor_path = os.path.join(scratch, DESCRIPTOR_FILE)
    descriptor.write_json(descriptor_path)
    module.metadata_file = tf.saved_model.Asset(metadata_path)
    module.descriptor_file = tf.saved_model.Asset(descriptor_path)
    tf.saved_model.save(module, staged.path,
                        signatures={'serving_default': module.serve,
                                    'serving_batch': module.serve_batch},
                        options=SERVING_SAVE_OPTIONS)
  return output_path


def restored_model(parts: config_lib.ExperimentParts,
                   checkpoint_path: str) -> keras.Model:
  """The config's model with `checkpoint_path` restored into it.

  Args:
    parts: the experiment's ExperimentParts.
    checkpoint_path: a checkpoint prefix (`.../ckpt-3000`), ours or
      deeplab2's, a Keras `.h5` weights file, or a model_dir, whose newest
      intact checkpoint is used (a damaged newer one is named in a
      warning).

  Raises:
    FileNotFoundError: no checkpoint there.
    ValueError: the checkpoint is damaged (every one, for a model_dir) or
      was written by another config (the message names the variable).
  """
  model = parts.build_model()
  restore.restore(model, checkpoint_path)   # logs the checkpoint and step
  return model


def export_from_config(config_path: 'config_lib.ConfigSource',
                       checkpoint_path: str,
                       output_path: str, overwrite: bool = False,
                       eval_scales: Sequence[float] | None = None,
                       add_flipped_images: bool | None = None,
                       input_size: Sequence[int] | None = None) -> str:
  """Restores `checkpoint_path` into the config's model and exports it.

  Args:
    config_path: the experiment textproto, or a config.ConfigFile (its path
      and command-line overrides).
    checkpoint_path: see restored_model.
    output_path, overwrite: see export_saved_model.
    eval_scales, add_flipped_images: test-time augmentation of the export;
      None: the config's evaluator_options.
    input_size: optional fixed (height, width) of the signatures.

  Returns:
    The SavedModel folder written.

  Raises:
    config.ConfigError: the config is invalid.
    FileExistsError: see check_replaceable (checked before the model is
      built).
    FileNotFoundError, ValueError: see restored_model.
  """
  check_replaceable(output_path, overwrite)
  parts = config_lib.load_experiment(config_path)
  model = restored_model(parts, checkpoint_path)
  return export_saved_model(
      model, parts.build_post_processor(),
      parts.inference_options(eval_scales, add_flipped_images), output_path,
      parts.descriptor('eval'), overwrite=overwrite, input_size=input_size)


def check_output_free(path: str, overwrite: bool) -> None:
  """Refuses an existing output file unless `overwrite` (the converted
  formats: TFLite, ONNX, OpenVINO, checkpoints).

  Raises:
    FileExistsError: `path` exists and overwrite is False.
  """
  if tf.io.gfile.exists(path) and not overwrite:
    raise FileExistsError(f'{path} exists; pass overwrite=True '
                          '(--overwrite) to replace it.')


def make_parent_folder(path: str) -> None:
  """Creates the folder `path` will be written into, if it has one."""
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)


def fixed_size_module(config_path: 'config_lib.ConfigSource',
                      checkpoint_path: str,
                      eval_scales: Sequence[float] | None = None,
                      add_flipped_images: bool | None = None,
                      input_size: Sequence[int] | None = None,
                      grouping_mode: str = 'loop'
                      ) -> tuple[PanopticDeepLabModule,
                                 config_lib.ExperimentParts]:
  """(module of one input size, the parts) of a config's restored model,
  for the converted formats (TFLite, ONNX, OpenVINO).

  Args:
    config_path, checkpoint_path: see export_from_config.
    eval_scales, add_flipped_images: see export_from_config.
    input_size: (height, width) the model takes; None: the eval crop size.
    grouping_mode: see post_processor.PostProcessorOptions.
  """
  parts = config_lib.load_experiment(config_path)
  options = parts.inference_options(eval_scales, add_flipped_images)
  model = restored_model(parts, checkpoint_path)
  post_processor = parts.build_post_processor(grouping_mode)
  module = PanopticDeepLabModule(model, post_processor, options,
                                 input_size or options.crop_size)
  return module, parts


def read_metadata(saved_model_dir: str) -> dict[str, Any]:
  """The deeplab2_export.json of an exported SavedModel, as a dict.

  Raises:
    FileNotFoundError: the folder has no such asset (not our export).
  """
  path = os.path.join(saved_model_dir, 'assets', METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f'{path} does not exist: {saved_model_dir} is not a SavedModel '
        'written by export_model.py.')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
