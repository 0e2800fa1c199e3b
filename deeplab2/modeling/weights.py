"""Restores model weights from our own checkpoints or from deeplab2's."""

import logging

import tensorflow as tf

from deeplab2.modeling import deeplab2_checkpoint
from deeplab2.modeling import keras_applications

_log = logging.getLogger('deeplab2')


def restore_weights(model, checkpoint_path, restore_semantic_last_layer=True,
                    restore_instance_last_layer=True):
  """Restores `model` (built) from a checkpoint prefix.

  A Keras Applications weights file (`.h5`) restores the backbone only
  (keras_applications.restore); a deeplab2 checkpoint (an `encoder/` root)
  goes through deeplab2_checkpoint.restore, with the last-layer options; one
  of ours (`model/...`, written by our trainer) must match every model
  variable.

  Returns:
    'keras', 'deeplab2' or 'ours', the format that was read.
  """
  if keras_applications.is_keras_weights_file(checkpoint_path):
    report = keras_applications.restore(model, checkpoint_path)
    _log.info('Restored the %s backbone from Keras %s weights %s: %d '
              'tensors; ignored on purpose (classification top): %s; left '
              'initialised: %d variables (decoders and heads).',
              model.backbone.name, report.application, checkpoint_path,
              len(report.restored), ', '.join(report.ignored) or 'none',
              len(report.initialised))
    return 'keras'
  if deeplab2_checkpoint.is_deeplab2_checkpoint(checkpoint_path):
    report = deeplab2_checkpoint.restore(
        model, checkpoint_path, restore_semantic_last_layer,
        restore_instance_last_layer)
    _log.info('Restored %d deeplab2 variables%s from %s; ignored on '
              'purpose: %d entries (optimizer slots and step counters%s).',
              len(report.restored),
              ' (backbone only)' if report.backbone_only else '',
              checkpoint_path, len(report.ignored),
              '' if (restore_semantic_last_layer and
                     restore_instance_last_layer) else ', last layers')
    return 'deeplab2'
  # read() is write()'s counterpart: no save counter to match.
  tf.train.Checkpoint(model=model).read(
      checkpoint_path).assert_existing_objects_matched().expect_partial()
  _log.info('Restored the model from %s.', checkpoint_path)
  return 'ours'
