"""Restores model weights from our own checkpoints or from deeplab2's."""

import logging

import tensorflow as tf

from deeplab2.modeling import deeplab2_checkpoint
from deeplab2.modeling import keras_applications
from deeplab2.utils import checkpoints

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
  root = model
  if not (restore_semantic_last_layer and restore_instance_last_layer):
    root = _without_last_layers(model, restore_semantic_last_layer,
                                restore_instance_last_layer)
  # read() is write()'s counterpart: no save counter to match.
  status = tf.train.Checkpoint(model=root).read(checkpoint_path)
  try:
    status.assert_existing_objects_matched()
  finally:
    # read() is partial by design (no optimizer); on a mismatch this also
    # keeps TF from logging one warning per unrestored value.
    status.expect_partial()
  step = checkpoints.training_step(checkpoint_path)
  _log.info('Restored the model from %s%s%s.', checkpoint_path,
            '' if step is None else f' (step {step})',
            '' if root is model else ' (last layers left initialised)')
  return 'ours'


def _without_last_layers(model, semantic, instance):
  """A stand-in with the model's attribute names, minus some last layers.

  Our checkpoints name objects by attribute (model/semantic_head/conv/...),
  so this stand-in restores everything it holds and leaves the rest alone.
  """
  parts = {'backbone': model.backbone,
           'semantic_decoder': model.semantic_decoder,
           'semantic_head': (model.semantic_head if semantic else
                             tf.train.Checkpoint(conv=model.semantic_head.conv))}
  if model.has_instance_branch:
    parts['instance_decoder'] = model.instance_decoder
    for name in ('center_head', 'offset_head'):
      head = getattr(model, name)
      parts[name] = head if instance else tf.train.Checkpoint(conv=head.conv)
  return tf.train.Checkpoint(**parts)
