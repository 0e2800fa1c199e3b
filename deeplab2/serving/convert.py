"""Rewrites a checkpoint (deeplab2's, or a Keras `.h5` backbone) as one of
ours, so that later runs restore it without any name mapping."""

import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.serving import export


def convert_checkpoint(config_path: 'config_lib.ConfigSource',
                       checkpoint_path: str,
                       output_prefix: str, overwrite: bool = False) -> str:
  """Restores `checkpoint_path` into the config's model and writes it.

  The output holds the model only (`model/...`, as our trainer writes it).

  Args:
    config_path: the experiment textproto, or a config.ConfigFile (its path
      and command-line overrides).
    checkpoint_path: see export.restored_model (deeplab2's names are mapped
      by modeling.deeplab2_checkpoint).
    output_prefix: the checkpoint prefix to write (its folder is created).
    overwrite: replace an existing checkpoint of that prefix.

  Returns:
    The path of the written checkpoint.

  Raises:
    FileExistsError: `output_prefix.index` exists and overwrite is False.
    FileNotFoundError, ValueError: see export.restored_model.
  """
  export.check_output_free(output_prefix + '.index', overwrite)
  parts = config_lib.load_experiment(config_path)
  model = export.restored_model(parts, checkpoint_path)
  export.make_parent_folder(output_prefix)
  return tf.train.Checkpoint(model=model).write(output_prefix)
