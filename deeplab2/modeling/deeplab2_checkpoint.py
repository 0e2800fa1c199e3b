"""Restores a checkpoint written by deeplab2's trainer into our model."""

import dataclasses
from typing import Any, Protocol

import tensorflow as tf

from deeplab2.modeling import deeplab2_names

# Checkpoint entries that are not model variables: ignored on purpose.
# Keras 3-era deeplab2 checkpoints keep optimizer slots under `optimizer/`;
# older ones (the legacy Keras optimizer) put them under each variable's
# path, after `.OPTIMIZER_SLOT`.
_NOT_MODEL = ('_CHECKPOINTABLE_OBJECT_GRAPH', 'global_step/', 'save_counter/',
              'optimizer/', 'backbone_optimizer/')
_LEGACY_SLOT = '/.OPTIMIZER_SLOT/'


def _is_model_key(key):
  return not key.startswith(_NOT_MODEL) and _LEGACY_SLOT not in key


@dataclasses.dataclass
class RestoreReport:
  """What a restore did.

  Attributes:
    restored: checkpoint keys assigned to a model variable.
    ignored: checkpoint keys left out on purpose: optimizer slots, step
      counters, and last layers not to restore.
    backbone_only: the checkpoint held the encoder alone.
  """
  restored: list
  ignored: list
  backbone_only: bool = False


_SEMANTIC_LAST_LAYER = 'semantic_last_layer/'
_INSTANCE_LAST_LAYERS = ('instance_center_head_last_layer/',
                         'instance_regression_head_last_layer/')


def is_deeplab2_checkpoint(checkpoint_path):
  """Whether the checkpoint holds deeplab2 keys (an `encoder/` root)."""
  shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
  return any(key.startswith('encoder/') and _is_model_key(key) and
             key.endswith(deeplab2_names.KEY_SUFFIX) for key in shapes)


class CheckpointEntries(Protocol):
  """What `restore_entries` reads: a tf.train.CheckpointReader, or any
  object with its two methods."""

  def get_variable_to_shape_map(self) -> dict[str, list[int]]:
    ...

  def get_tensor(self, key: str) -> Any:
    ...


def restore(model, checkpoint_path, restore_semantic_last_layer=True,
            restore_instance_last_layer=True):
  """Assigns every model variable from its deeplab2 key.

  A checkpoint that holds only the encoder (an ImageNet backbone) restores
  the backbone only. The last layers of the heads can be left initialised,
  for a dataset with other classes.

  Args:
    model: a built PanopticDeepLab (or any layer with deeplab2_children()).
    checkpoint_path: a checkpoint prefix such as `.../ckpt-60000`.
    restore_semantic_last_layer: restore `semantic_last_layer`.
    restore_instance_last_layer: restore the center and offset last layers.

  Returns:
    RestoreReport.

  Raises:
    ValueError: naming the model variables without a checkpoint entry, the
      entries whose shape differs, or the model-looking checkpoint entries
      that no variable takes. Nothing is assigned in that case.
  """
  return restore_entries(model, tf.train.load_checkpoint(checkpoint_path),
                         checkpoint_path, restore_semantic_last_layer,
                         restore_instance_last_layer)


def restore_entries(model, entries: CheckpointEntries, source: str,
                    restore_semantic_last_layer=True,
                    restore_instance_last_layer=True):
  """`restore` from checkpoint entries already open (or held in memory);
  `source` names them in the errors."""
  shapes = entries.get_variable_to_shape_map()
  pairs = deeplab2_names.checkpoint_keys(model)
  backbone_only = not any(k.startswith('semantic_decoder/') for k in shapes)
  if backbone_only:
    pairs = [(v, k) for v, k in pairs if k.startswith('encoder/')]
  skipped_prefixes: tuple[str, ...] = ()
  if not restore_semantic_last_layer:
    skipped_prefixes += (_SEMANTIC_LAST_LAYER,)
  if not restore_instance_last_layer:
    skipped_prefixes += _INSTANCE_LAST_LAYERS
  skipped = {k for _, k in pairs if skipped_prefixes and
             k.startswith(skipped_prefixes)}
  pairs = [(v, k) for v, k in pairs if k not in skipped]
  missing = [key for _, key in pairs if key not in shapes]
  if missing:
    raise ValueError(f'{source}: {len(missing)} model variables have '
                     f'no entry, e.g. {missing[:3]}.')
  wrong_shape = [(key, shapes[key], tuple(v.shape)) for v, key in pairs
                 if tuple(shapes[key]) != tuple(v.shape)]
  if wrong_shape:
    raise ValueError(f'{source}: shapes differ (key, checkpoint, '
                     f'model): {wrong_shape[:3]}.')
  used = {key for _, key in pairs}
  ignored = sorted(k for k in shapes if not _is_model_key(k) or k in skipped)
  unused = sorted(k for k in shapes if k not in used and k not in ignored)
  if unused:
    raise ValueError(f'{source}: {len(unused)} entries map to no '
                     f'model variable, e.g. {unused[:3]}.')
  for variable, key in pairs:
    variable.assign(entries.get_tensor(key))
  return RestoreReport(restored=sorted(used), ignored=ignored,
                       backbone_only=backbone_only)
