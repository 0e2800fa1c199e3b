"""Restores a checkpoint written by deeplab2's trainer into our model."""

import dataclasses

import tensorflow as tf

from deeplab2.modeling import deeplab2_names

# Checkpoint entries that are not model variables: ignored on purpose.
_NOT_MODEL = ('_CHECKPOINTABLE_OBJECT_GRAPH', 'global_step/', 'save_counter/',
              'optimizer/', 'backbone_optimizer/')


@dataclasses.dataclass
class RestoreReport:
  """What a restore did.

  Attributes:
    restored: checkpoint keys assigned to a model variable.
    ignored: checkpoint keys that are not model state (optimizer slots,
      step counters), left out on purpose.
  """
  restored: list
  ignored: list


def restore(model, checkpoint_path):
  """Assigns every model variable from its deeplab2 key.

  Args:
    model: a built PanopticDeepLab (or any layer with deeplab2_children()).
    checkpoint_path: a checkpoint prefix such as `.../ckpt-60000`.

  Returns:
    RestoreReport.

  Raises:
    ValueError: naming the model variables without a checkpoint entry, the
      entries whose shape differs, or the model-looking checkpoint entries
      that no variable takes. Nothing is assigned in that case.
  """
  reader = tf.train.load_checkpoint(checkpoint_path)
  shapes = reader.get_variable_to_shape_map()
  pairs = deeplab2_names.checkpoint_keys(model)
  missing = [key for _, key in pairs if key not in shapes]
  if missing:
    raise ValueError(f'{checkpoint_path}: {len(missing)} model variables have '
                     f'no entry, e.g. {missing[:3]}.')
  wrong_shape = [(key, shapes[key], tuple(v.shape)) for v, key in pairs
                 if tuple(shapes[key]) != tuple(v.shape)]
  if wrong_shape:
    raise ValueError(f'{checkpoint_path}: shapes differ (key, checkpoint, '
                     f'model): {wrong_shape[:3]}.')
  used = {key for _, key in pairs}
  ignored = sorted(k for k in shapes if k.startswith(_NOT_MODEL))
  unused = sorted(k for k in shapes if k not in used and k not in ignored)
  if unused:
    raise ValueError(f'{checkpoint_path}: {len(unused)} entries map to no '
                     f'model variable, e.g. {unused[:3]}.')
  for variable, key in pairs:
    variable.assign(reader.get_tensor(key))
  return RestoreReport(restored=sorted(used), ignored=ignored)
