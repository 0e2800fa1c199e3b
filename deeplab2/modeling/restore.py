"""Restoring a checkpoint into a model, with the checks every reader wants.

The one way training's resume, evaluation, export, conversion and inference
read a checkpoint: its files are checked first (a damaged one raises
checkpoints.DamagedCheckpointError, which names it), a checkpoint of another
config raises a ValueError naming the variable, TF's warning per unrestored
value is kept out of the log, and a model_dir yields its newest intact
checkpoint.

What is restored depends on the target:
- a keras.Model: its weights only, from any format weights.restore_weights
  reads (ours, deeplab2's, a Keras `.h5` file); the optimizer's entries of a
  training checkpoint are left unread on purpose.
- a tf.train.Checkpoint (training's model + optimizer): every object it
  tracks must be in the file, as a resumed training run needs.
"""

from typing import TypeAlias

import keras
import tensorflow as tf

from deeplab2.modeling import keras_applications
from deeplab2.modeling import weights
from deeplab2.utils import checkpoints

# What a checkpoint is restored into (see the module docstring).
Target: TypeAlias = 'keras.Model | tf.train.Checkpoint'


def restore_one(target: Target, path: str) -> None:
  """Restores the checkpoint prefix (or `.h5` weights file) `path`.

  Args:
    target: a keras.Model or a tf.train.Checkpoint (module docstring).
    path: the checkpoint prefix (`.../ckpt-3000`).

  Raises:
    checkpoints.DamagedCheckpointError: a file of it missing, truncated or
      unreadable.
    ValueError: it was written by another config (the message names the
      variable and both shapes).
  """
  if isinstance(target, tf.train.Checkpoint):
    checkpoints.restore_checked(
        path, lambda: checkpoints.assert_matched(target.restore(path)))
    return
  is_weights_file = keras_applications.is_keras_weights_file(path)
  checkpoints.restore_checked(path,
                              lambda: weights.restore_weights(target, path),
                              check_files=not is_weights_file)


def restore_newest(target: Target,
                   model_dir: str) -> tuple[str | None, list[str]]:
  """Restores the newest intact checkpoint of `model_dir`.

  A damaged newer one is named in a warning and the next older one tried.

  Args:
    target: a keras.Model or a tf.train.Checkpoint (module docstring).
    model_dir: the folder of the checkpoints (need not exist).

  Returns:
    (the path restored, or None when the folder holds no checkpoint; the
    newer damaged paths skipped).

  Raises:
    checkpoints.DamagedCheckpointError: every checkpoint there is damaged.
    ValueError: see restore_one.
  """
  return checkpoints.restore_newest_intact(
      model_dir, lambda path: restore_one(target, path))


def restore(target: Target, checkpoint_path: str) -> str:
  """Restores a checkpoint prefix, a `.h5` weights file or a model_dir's
  newest intact checkpoint; returns the path restored.

  Raises:
    FileNotFoundError: no checkpoint there.
    checkpoints.DamagedCheckpointError: the checkpoint is damaged (every
      one, for a model_dir).
    ValueError: see restore_one.
  """
  if tf.io.gfile.isdir(checkpoint_path):
    path, _ = restore_newest(target, checkpoint_path)
    if path is None:
      raise FileNotFoundError(f'No checkpoint in {checkpoint_path}.')
    return path
  if (not keras_applications.is_keras_weights_file(checkpoint_path) and
      not tf.io.gfile.exists(checkpoint_path + '.index')):
    raise FileNotFoundError(f'No checkpoint {checkpoint_path} '
                            f'({checkpoint_path}.index does not exist).')
  restore_one(target, checkpoint_path)
  return checkpoint_path
