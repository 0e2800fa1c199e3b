"""Builds the export module from an experiment config and a checkpoint."""

import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.modeling import factory
from deeplab2.postprocessing import post_processor
from deeplab2.serving import export
from deeplab2.training import builders


def export_from_config(config_path, checkpoint_path, output_path,
                       overwrite=False):
  """Restores `checkpoint_path` into the config's model and exports it.

  `checkpoint_path` may be a checkpoint prefix (`.../ckpt-3000`) or a
  model_dir, whose latest checkpoint is used.
  """
  config, descriptors = config_lib.load_and_validate(config_path)
  descriptor = descriptors.get('eval') or descriptors['train']
  if tf.io.gfile.isdir(checkpoint_path):
    latest = tf.train.latest_checkpoint(checkpoint_path)
    if latest is None:
      raise FileNotFoundError(f'No checkpoint in {checkpoint_path}.')
    checkpoint_path = latest
  crop = (config.eval_dataset_options.crop_size or
          config.train_dataset_options.crop_size)
  model = factory.build_model(
      config.model_options,
      factory.bn_options_from_solver(config.trainer_options.solver_options,
                                     synchronized=False),
      crop_size=tuple(crop))
  tf.train.Checkpoint(model=model).restore(
      checkpoint_path).assert_existing_objects_matched().expect_partial()
  processor = post_processor.PanopticDeepLabPostProcessor(
      builders.post_processor_options(config.evaluator_options, descriptor))
  return export.export_saved_model(
      model, processor, config.model_options.backbone.output_stride,
      output_path, overwrite)
