"""Builds a restored model from an experiment config, then exports or
converts it. The config is read through `deeplab2.config` only."""

import os

import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.modeling import keras_applications
from deeplab2.modeling import weights
from deeplab2.serving import export
from deeplab2.serving import tflite
from deeplab2.utils import checkpoints


def restored_model(parts, checkpoint_path):
  """The config's model with `checkpoint_path` restored into it.

  `checkpoint_path` may be a checkpoint prefix (`.../ckpt-3000`), ours or
  deeplab2's, or a model_dir, whose newest intact checkpoint is used (a
  damaged newer one is named in a warning).

  Raises:
    FileNotFoundError: no checkpoint there.
    ValueError: the checkpoint is damaged (every one, for a model_dir) or
      was written by another config (the message names the variable).
  """
  model = parts.build_model(num_replicas=1)
  if not tf.io.gfile.isdir(checkpoint_path):
    if (not keras_applications.is_keras_weights_file(checkpoint_path) and
        not tf.io.gfile.exists(checkpoint_path + '.index')):
      raise FileNotFoundError(f'No checkpoint {checkpoint_path} '
                              f'({checkpoint_path}.index does not exist).')
    _restore(model, checkpoint_path)
    return model
  path, _ = checkpoints.restore_newest_intact(
      checkpoint_path, lambda path: _restore(model, path))
  if path is None:
    raise FileNotFoundError(f'No checkpoint in {checkpoint_path}.')
  return model


def _restore(model, path):
  """Restores one checkpoint prefix (or weights file) into `model`."""
  is_weights_file = keras_applications.is_keras_weights_file(path)
  checkpoints.restore_checked(path,
                              lambda: weights.restore_weights(model, path),
                              check_files=not is_weights_file)


def export_from_config(config_path, checkpoint_path, output_path,
                       overwrite=False, eval_scales=None,
                       add_flipped_images=None, input_size=None):
  """Restores `checkpoint_path` into the config's model and exports it.

  Args:
    eval_scales, add_flipped_images: test-time augmentation of the export;
      None: the config's evaluator_options.
    input_size: optional fixed (height, width) of the signatures.
  """
  export.check_replaceable(output_path.rstrip('/'), overwrite)
  parts = config_lib.load_experiment(config_path)
  model = restored_model(parts, checkpoint_path)
  return export.export_saved_model(
      model, parts.build_post_processor(),
      parts.inference_options(eval_scales, add_flipped_images), output_path,
      parts.descriptor('eval'), overwrite=overwrite, input_size=input_size)


def tflite_from_config(config_path, checkpoint_path, output_path,
                       quantization='float32', overwrite=False,
                       eval_scales=None, add_flipped_images=None,
                       input_size=None):
  """Writes the config's restored model as a .tflite file (serving.tflite).

  Args:
    input_size: (height, width) the model takes; None: the eval crop size.
    Others: see export_from_config and tflite.convert.

  Returns:
    the path written.

  Raises:
    FileExistsError: `output_path` exists and overwrite is False.
  """
  if tf.io.gfile.exists(output_path) and not overwrite:
    raise FileExistsError(f'{output_path} exists; pass overwrite=True '
                          '(--overwrite) to replace it.')
  if quantization not in tflite.QUANTIZATIONS:
    raise ValueError(f'--tflite must be one of '
                     f'{", ".join(tflite.QUANTIZATIONS)}, got '
                     f'{quantization!r}.')
  parts = config_lib.load_experiment(config_path)
  options = parts.inference_options(eval_scales, add_flipped_images)
  model = restored_model(parts, checkpoint_path)
  module = export.PanopticDeepLabModule(
      model, parts.build_post_processor(), options,
      input_size or options.crop_size)
  data = tflite.convert(module, quantization)
  directory = os.path.dirname(output_path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  tmp_path = output_path + f'.tmp-{os.getpid()}'
  with open(tmp_path, 'wb') as f:
    f.write(data)
  os.replace(tmp_path, output_path)
  return output_path


def convert_checkpoint(config_path, checkpoint_path, output_prefix,
                       overwrite=False):
  """Rewrites a checkpoint (e.g. deeplab2's) as one of ours.

  The output holds the model only (`model/...`, as our trainer writes it),
  so later runs restore it without any name mapping.

  Returns:
    the path of the written checkpoint.

  Raises:
    FileExistsError: `output_prefix.index` exists and overwrite is False.
  """
  if tf.io.gfile.exists(output_prefix + '.index') and not overwrite:
    raise FileExistsError(f'{output_prefix}.index exists; pass overwrite=True '
                          '(--overwrite) to replace it.')
  parts = config_lib.load_experiment(config_path)
  model = restored_model(parts, checkpoint_path)
  directory = os.path.dirname(output_prefix)
  if directory:
    os.makedirs(directory, exist_ok=True)
  return tf.train.Checkpoint(model=model).write(output_prefix)
