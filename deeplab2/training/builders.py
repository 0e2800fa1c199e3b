"""Turns config messages into the plain values the library takes.

With the model factory, this is the only place that reads the experiment
message; everything it builds takes numbers, names and built parts.
"""

from deeplab2.data import autoaugment
from deeplab2.data import input_pipeline
from deeplab2.data import targets
from deeplab2.losses import panoptic_deeplab_loss
from deeplab2.postprocessing import post_processor
from deeplab2.training import schedules


def target_options(dataset_options, descriptor):
  return targets.TargetOptions(
      label_divisor=descriptor.label_divisor,
      ignore_label=descriptor.ignore_label,
      thing_class_ids=tuple(descriptor.thing_class_ids),
      sigma=dataset_options.sigma,
      small_instance_threshold=dataset_options.small_instance_threshold,
      small_instance_weight=dataset_options.small_instance_weight,
      increase_small_instance_weights=(
          dataset_options.increase_small_instance_weights))


def _resize_value(values, name):
  values = [v for v in values if v]
  if len(set(values)) > 1:
    raise ValueError(f'DatasetOptions.{name}: one value (the longest or '
                     f'shortest side), got {values}.')
  return values[0] if values else 0


def pipeline_options(dataset_options, descriptor, is_training,
                     num_replicas=1, seed=None):
  """PipelineOptions of one dataset.

  Raises:
    ValueError: options the pipeline cannot apply (an unknown AutoAugment
      policy, two different resize values, an evaluation resize with more
      than one image per replica).
  """
  aug = dataset_options.augmentations
  if aug.autoaugment_policy_name and (
      aug.autoaugment_policy_name not in autoaugment.POLICIES):
    raise ValueError(
        f'DatasetOptions.augmentations.autoaugment_policy_name: unknown '
        f'"{aug.autoaugment_policy_name}"; valid: '
        f'{", ".join(sorted(autoaugment.POLICIES))}.')
  min_resize = _resize_value(dataset_options.min_resize_value,
                             'min_resize_value')
  max_resize = _resize_value(dataset_options.max_resize_value,
                             'max_resize_value')
  batch_size = dataset_options.batch_size // num_replicas
  if not is_training and (min_resize or max_resize) and batch_size != 1:
    raise ValueError('DatasetOptions.batch_size: evaluation with '
                     'min_resize_value / max_resize_value scores original '
                     f'labels of any size, one per replica; got {batch_size}.')
  return input_pipeline.PipelineOptions(
      file_patterns=tuple(dataset_options.file_pattern),
      batch_size=batch_size,
      crop_size=tuple(dataset_options.crop_size),
      is_training=is_training,
      target_options=target_options(dataset_options, descriptor),
      min_scale_factor=aug.min_scale_factor if is_training else 1.0,
      max_scale_factor=aug.max_scale_factor if is_training else 1.0,
      scale_factor_step_size=aug.scale_factor_step_size,
      min_resize_value=min_resize, max_resize_value=max_resize,
      resize_factor=dataset_options.resize_factor,
      autoaugment_policy_name=(aug.autoaugment_policy_name
                               if is_training else ''),
      seed=seed)


def loss_options(trainer_options, descriptor):
  losses = trainer_options.loss_options
  return panoptic_deeplab_loss.LossOptions(
      ignore_label=descriptor.ignore_label,
      semantic_loss_name=losses.semantic_loss.name or 'softmax_cross_entropy',
      semantic_weight=losses.semantic_loss.weight,
      semantic_top_k_percent=losses.semantic_loss.top_k_percent,
      center_loss_name=losses.center_loss.name or 'mse',
      center_weight=losses.center_loss.weight,
      regression_loss_name=losses.regression_loss.name or 'l1',
      regression_weight=losses.regression_loss.weight)


def post_processor_options(evaluator_options, descriptor):
  return post_processor.PostProcessorOptions(
      num_classes=descriptor.num_classes,
      thing_class_ids=tuple(descriptor.thing_class_ids),
      label_divisor=descriptor.label_divisor,
      ignore_label=descriptor.ignore_label,
      center_score_threshold=evaluator_options.center_score_threshold,
      nms_kernel=evaluator_options.nms_kernel,
      keep_k_centers=evaluator_options.keep_k_centers,
      stuff_area_limit=evaluator_options.stuff_area_limit)


def optimizer(solver_options):
  schedule = schedules.WarmupDecay(
      solver_options.learning_policy, solver_options.base_learning_rate,
      solver_options.training_number_of_steps, solver_options.warmup_steps,
      solver_options.poly_learning_power, solver_options.poly_end_learning_rate)
  return schedules.build_optimizer(
      solver_options.optimizer, schedule,
      weight_decay=solver_options.adamw_weight_decay,
      clip_gradient_norm=(solver_options.clip_gradient_norm
                          if solver_options.use_gradient_clipping else None))
