"""The one door of the config: the only reader of ExperimentOptions.

`load_experiment(path)` loads and validates a textproto and returns the
ExperimentParts that build every part of the experiment from it: the model
(batch-norm sync rule, the size its variables are built at), the optimizer
(schedule, clipping, loss scaling, weight decay), the loss, the
post-processor, the input pipelines and what export needs. Training,
evaluation, export and inference call these builders; the layers, the model,
the losses and the post-processor take plain values and never see the
message.
"""

import dataclasses
import logging
import os

import tensorflow as tf

from deeplab2 import inference
from deeplab2.config import errors
from deeplab2.config import loader
from deeplab2.config import text_locations
from deeplab2.config import validation
from deeplab2.data import input_pipeline
from deeplab2.data import targets
from deeplab2.losses import panoptic_deeplab_loss
from deeplab2.modeling import backbones
from deeplab2.modeling import panoptic_deeplab
from deeplab2.modeling import precision
from deeplab2.modeling.layers import aspp as aspp_lib
from deeplab2.modeling.layers import decoder
from deeplab2.modeling.layers import heads
from deeplab2.modeling.layers import normalization
from deeplab2.postprocessing import post_processor
from deeplab2.solver import optimizers
from deeplab2.solver import schedules

_log = logging.getLogger('deeplab2')

SPLITS = ('train', 'eval')


@dataclasses.dataclass(frozen=True)
class TrainSchedule:
  """When training stops, logs, summarises and saves.

  Attributes:
    total_steps: training_number_of_steps.
    steps_per_loop: steps per call of the compiled training loop.
    save_checkpoints_steps: a checkpoint every this many steps.
    save_summaries_steps: TensorBoard scalars every this many steps.
    num_checkpoints_to_keep: older checkpoints are deleted.
  """
  total_steps: int
  steps_per_loop: int
  save_checkpoints_steps: int
  save_summaries_steps: int
  num_checkpoints_to_keep: int


@dataclasses.dataclass(frozen=True)
class EvalSchedule:
  """When and how much evaluation runs.

  Attributes:
    eval_steps: batches per evaluation, -1 for the whole eval set.
    eval_interval: train_and_eval evaluates every this many steps.
    continuous_eval_timeout: seconds continuous_eval waits for a new
      checkpoint; None waits forever.
    num_vis_samples: eval images drawn into TensorBoard at each evaluation.
    eval_scales: input scales of test-time augmentation ((1.0,): none).
    add_flipped_images: test-time augmentation also runs mirrored inputs.
    save_predictions: each evaluation writes its predictions in the
      official formats, into predictions-<step> under save_dir.
    save_dir: where prediction folders go; '' is model_dir/eval.
  """
  eval_steps: int
  eval_interval: int
  continuous_eval_timeout: object
  num_vis_samples: int = 0
  eval_scales: tuple = (1.0,)
  add_flipped_images: bool = False
  save_predictions: bool = False
  save_dir: str = ''


@dataclasses.dataclass(frozen=True)
class InitialCheckpoint:
  """Weights to start from when model_dir has no checkpoint.

  Attributes:
    path: a checkpoint prefix (ours or deeplab2's) or a Keras Applications
      weights file; '' for none.
    restore_semantic_last_layer: also restore the semantic head's last conv.
    restore_instance_last_layer: also restore the center and offset heads'
      last convs.
  """
  path: str
  restore_semantic_last_layer: bool
  restore_instance_last_layer: bool


def build_model(model_options, bn_options, input_size=None,
                pool_crop_size=None, aspp_dropout_rate=0.1):
  """Builds the Panoptic-DeepLab of a ModelOptions message.

  Args:
    model_options: config_pb2.ModelOptions with panoptic_deeplab set
      (validated, or a deeplab2 config known to be valid).
    bn_options: normalization.BatchNormOptions.
    input_size: optional (height, width) to create the variables with.
    pool_crop_size: the train crop (height, width), which fixes the ASPP
      pooling window as in deeplab2; None pools globally.
    aspp_dropout_rate: the dropout after each ASPP projection in training
      (deeplab2: 0.1; 0 switches it off, e.g. for a deterministic step).

  Returns:
    panoptic_deeplab.PanopticDeepLab, its layers under
    `model_options.dtype_policy`.
  """
  with precision.dtype_policy_scope(model_options.dtype_policy or 'float32'):
    backbone = backbones.build_backbone(
        model_options.backbone.name,
        validation.backbone_options(model_options.backbone), bn_options)
    pdl = model_options.panoptic_deeplab
    aspp = {'aspp_dropout_rate': aspp_dropout_rate,
            'aspp_pool_size': None if pool_crop_size is None else
                              aspp_lib.feature_pool_size(
                                  pool_crop_size,
                                  model_options.backbone.output_stride)}
    parts = {
        'semantic_decoder': _decoder(model_options.decoder, pdl.low_level,
                                     bn_options, 'semantic_decoder', aspp),
        'semantic_head': _head(pdl.semantic_head, bn_options,
                               'semantic_head'),
    }
    instance = pdl.instance
    if instance.enable:
      decoder_options, _, low_levels, _ = validation.instance_branch_inputs(
          model_options)
      parts['instance_decoder'] = _decoder(decoder_options, low_levels,
                                           bn_options, 'instance_decoder',
                                           aspp)
      parts['center_head'] = _head(instance.center_head, bn_options,
                                   'center_head')
      parts['offset_head'] = _head(instance.regression_head, bn_options,
                                   'offset_head')
    model = panoptic_deeplab.PanopticDeepLab(backbone, name='panoptic_deeplab',
                                             **parts)
    if input_size is not None:
      model(tf.zeros([1, input_size[0], input_size[1], 3]), training=False)
  return model


def _decoder(options, low_levels, bn_options, name, aspp):
  return decoder.PanopticDeepLabDecoder(
      high_level_key=options.feature_key,
      low_level_keys=[low.feature_key for low in low_levels],
      low_level_channels=[low.channels_project for low in low_levels],
      aspp_channels=options.aspp_channels,
      atrous_rates=list(options.atrous_rates),
      decoder_channels=options.decoder_channels,
      decoder_conv_type=options.decoder_conv_type,
      aspp_use_only_1x1_proj_conv=options.aspp_use_only_1x1_proj_conv,
      aspp_conv_type=options.aspp_conv_type,
      bn_options=bn_options, name=name, **aspp)


def _head(options, bn_options, name):
  return heads.PredictionHead(options.output_channels, options.head_channels,
                              options.head_conv_type, bn_options=bn_options,
                              name=name)


def load_experiment(path, num_replicas=1):
  """Loads and validates the textproto at `path`.

  Relative descriptor paths in `DatasetOptions.dataset` are taken from the
  working directory, or else from the config file's directory. Each warning
  of validation is logged once (logger 'deeplab2').

  Args:
    path: the experiment textproto.
    num_replicas: replicas the experiment runs on (batch sizes are global and
      split across them).

  Returns:
    ExperimentParts.

  Raises:
    ConfigError: the file cannot be read or parsed, or a value cannot work.
  """
  config, text = loader.load_experiment_config(path)
  return from_message(
      config, num_replicas,
      descriptor_base_dir=os.path.dirname(os.path.abspath(path)), path=path,
      text=text)


def from_message(config, num_replicas=1, descriptor_base_dir=None, path=None,
                 text=None):
  """Validates an ExperimentOptions (e.g. built in code); returns its parts.

  Each warning of validation is logged once (logger 'deeplab2').

  Args:
    config: config_pb2.ExperimentOptions.
    num_replicas: replicas the experiment runs on.
    descriptor_base_dir: where relative descriptor paths are looked up.
    path: the file it came from, for messages.
    text: its text, to locate fields in messages (by field only without).

  Raises:
    ConfigError: a value that cannot work.
  """
  descriptors, warnings = validation.validate_experiment(
      config, path=path, text=text, num_replicas=num_replicas,
      descriptor_base_dir=descriptor_base_dir)
  for warning in warnings:
    _log.warning('config: %s', warning)
  return ExperimentParts(config, descriptors, path=path, warnings=warnings,
                         text=text)


class ExperimentParts:
  """Builds every part of one validated experiment.

  Args:
    config: a validated config_pb2.ExperimentOptions (read only).
    descriptors: dict 'train' / 'eval' -> DatasetDescriptor, as validation
      returned them.
    path: the config file, for messages.
    warnings: validation's warning lines.
    text: the config's text, to locate fields in messages.
  """

  def __init__(self, config, descriptors, path=None, warnings=(), text=None):
    self.config = config
    self.descriptors = dict(descriptors)
    self.path = path
    self.warnings = tuple(warnings)
    self._text = text

  # Plain facts.

  @property
  def experiment_name(self):
    return self.config.experiment_name

  def has_split(self, split):
    """Whether the config sets `{split}_dataset_options`."""
    return split in self.descriptors

  def descriptor(self, split):
    """The DatasetDescriptor of 'train' or 'eval'.

    Raises:
      ConfigError: the config has no such dataset options.
    """
    if split not in SPLITS:
      raise ValueError(f'Unknown split "{split}"; valid: {", ".join(SPLITS)}.')
    if split not in self.descriptors:
      raise errors.ConfigError(f'needed here, but the config has no '
                               f'{split}_dataset_options',
                               path=self.path,
                               field=f'{split}_dataset_options')
    return self.descriptors[split]

  @property
  def label_spec(self):
    """The label spec the model predicts (eval's, else train's)."""
    split = 'eval' if 'eval' in self.descriptors else 'train'
    return self.descriptor(split).label_spec

  @property
  def model_input_size(self):
    """(height, width) the model's variables are created at.

    The train crop when there is one (it fixes the ASPP pooling in deeplab2),
    else the eval crop.
    """
    split = 'train' if 'train' in self.descriptors else 'eval'
    return tuple(self._dataset_options(split).crop_size)

  @property
  def train_schedule(self):
    trainer = self.config.trainer_options
    return TrainSchedule(
        total_steps=trainer.solver_options.training_number_of_steps,
        steps_per_loop=trainer.steps_per_loop,
        save_checkpoints_steps=trainer.save_checkpoints_steps,
        save_summaries_steps=trainer.save_summaries_steps,
        num_checkpoints_to_keep=trainer.num_checkpoints_to_keep)

  @property
  def eval_schedule(self):
    evaluator = self.config.evaluator_options
    timeout = evaluator.continuous_eval_timeout
    return EvalSchedule(eval_steps=evaluator.eval_steps,
                        eval_interval=evaluator.eval_interval,
                        continuous_eval_timeout=None if timeout < 0
                        else timeout,
                        num_vis_samples=evaluator.num_vis_samples,
                        eval_scales=tuple(evaluator.eval_scales) or (1.0,),
                        add_flipped_images=evaluator.add_flipped_images,
                        save_predictions=evaluator.save_predictions,
                        save_dir=evaluator.override_save_dir)

  @property
  def seed(self):
    """The config's seed, or None: runs then differ."""
    return self.config.seed if self.config.HasField('seed') else None

  @property
  def initial_checkpoint(self):
    model = self.config.model_options
    return InitialCheckpoint(
        path=model.initial_checkpoint,
        restore_semantic_last_layer=(
            model.restore_semantic_last_layer_from_initial_checkpoint),
        restore_instance_last_layer=(
            model.restore_instance_last_layer_from_initial_checkpoint))

  def inference_options(self, eval_scales=None, add_flipped_images=None):
    """inference.InferenceOptions: the eval dataset's preprocessing (resize
    to a range, crop) and the evaluator's test-time augmentation, unless
    `eval_scales` / `add_flipped_images` are given."""
    options = self._dataset_options('eval')
    evaluator = self.config.evaluator_options
    if eval_scales is None:
      eval_scales = tuple(evaluator.eval_scales) or (1.0,)
    if add_flipped_images is None:
      add_flipped_images = evaluator.add_flipped_images
    return inference.InferenceOptions(
        crop_size=tuple(options.crop_size),
        output_stride=self.config.model_options.backbone.output_stride,
        min_resize_value=validation.single_resize_value(
            options.min_resize_value),
        max_resize_value=validation.single_resize_value(
            options.max_resize_value),
        resize_factor=options.resize_factor,
        eval_scales=tuple(float(s) for s in eval_scales),
        add_flipped_images=bool(add_flipped_images))

  @property
  def l2_weight_decay(self):
    """Weight of the L2 loss term on kernels (0 when the optimizer decays
    the weights itself, as AdamW)."""
    solver = self.config.trainer_options.solver_options
    if optimizers.uses_decoupled_weight_decay(solver.optimizer):
      return 0.0
    return solver.weight_decay

  @property
  def uses_loss_scaling(self):
    """mixed_float16 needs loss scaling (float16 gradients underflow)."""
    return self.config.model_options.dtype_policy == 'mixed_float16'

  # Builders.

  def bn_options(self, num_replicas=1):
    """Batch-norm options; statistics are synchronised when the config asks
    for it and there is more than one replica."""
    solver = self.config.trainer_options.solver_options
    return normalization.BatchNormOptions(
        momentum=solver.batchnorm_momentum,
        epsilon=solver.batchnorm_epsilon,
        synchronized=solver.use_sync_batchnorm and num_replicas > 1)

  def build_model(self, num_replicas=1, input_size=None,
                  aspp_dropout_rate=0.1):
    """The model with its variables created; its ASPP pools over the window
    of model_input_size (the train crop), as deeplab2's.

    Args:
      num_replicas: replicas it will run on (for the batch-norm sync rule).
      input_size: (height, width) to create the variables at; default
        model_input_size. Variables do not depend on it.
      aspp_dropout_rate: deeplab2's 0.1; 0 for a deterministic training
        step (the training parity test).

    Raises:
      ConfigError: a backbone that refuses its options (e.g. a layer
        multiplier that leaves a stage without blocks).
    """
    try:
      return build_model(self.config.model_options,
                         self.bn_options(num_replicas),
                         input_size or self.model_input_size,
                         pool_crop_size=self.model_input_size,
                         aspp_dropout_rate=aspp_dropout_rate)
    except ValueError as e:
      field = 'model_options.backbone'
      raise errors.ConfigError(
          str(e), path=self.path, field=field,
          line=text_locations.first_line(self._text, field)) from None

  def build_optimizer(self):
    """The optimizer (with its learning-rate schedule, gradient clipping and,
    for mixed_float16, dynamic loss scaling); not yet built."""
    solver = self.config.trainer_options.solver_options
    schedule = schedules.WarmupDecay(
        solver.learning_policy, solver.base_learning_rate,
        solver.training_number_of_steps, solver.warmup_steps,
        solver.poly_learning_power, solver.poly_end_learning_rate)
    return optimizers.build_optimizer(
        solver.optimizer, schedule,
        decoupled_weight_decay=solver.adamw_weight_decay,
        clip_gradient_norm=(solver.clip_gradient_norm
                            if solver.use_gradient_clipping else None),
        loss_scaling=self.uses_loss_scaling)

  def build_loss(self):
    """The Panoptic-DeepLab loss of the train dataset's labels."""
    losses = self.config.trainer_options.loss_options
    options = panoptic_deeplab_loss.LossOptions(
        ignore_label=self.descriptor('train').ignore_label,
        semantic_loss_name=losses.semantic_loss.name or 'softmax_cross_entropy',
        semantic_weight=losses.semantic_loss.weight,
        semantic_top_k_percent=losses.semantic_loss.top_k_percent,
        center_loss_name=losses.center_loss.name or 'mse',
        center_weight=losses.center_loss.weight,
        center_top_k_percent=losses.center_loss.top_k_percent,
        regression_loss_name=losses.regression_loss.name or 'l1',
        regression_weight=losses.regression_loss.weight,
        regression_top_k_percent=losses.regression_loss.top_k_percent)
    return panoptic_deeplab_loss.PanopticDeepLabLoss(
        options, has_instance_branch=(
            self.config.model_options.panoptic_deeplab.instance.enable))

  def post_processor_options(self):
    evaluator = self.config.evaluator_options
    return post_processor.PostProcessorOptions(
        label_spec=self.label_spec,
        center_score_threshold=evaluator.center_score_threshold,
        nms_kernel=evaluator.nms_kernel,
        keep_k_centers=evaluator.keep_k_centers,
        stuff_area_limit=evaluator.stuff_area_limit)

  def build_post_processor(self):
    return post_processor.PanopticDeepLabPostProcessor(
        self.post_processor_options())

  def target_options(self, split):
    options = self._dataset_options(split)
    return targets.TargetOptions(
        label_spec=self.descriptor(split).label_spec,
        sigma=options.sigma,
        small_instance_threshold=options.small_instance_threshold,
        small_instance_weight=options.small_instance_weight,
        increase_small_instance_weights=(
            options.increase_small_instance_weights))

  def pipeline_options(self, split, num_replicas=1, seed=None):
    """input_pipeline.PipelineOptions of 'train' (augmented, repeated) or
    'eval' (padded, once), with the per-replica batch size."""
    options = self._dataset_options(split)
    is_training = split == 'train'
    aug = options.augmentations
    return input_pipeline.PipelineOptions(
        file_patterns=tuple(options.file_pattern),
        # Train batches are validated divisible; eval batches round up.
        batch_size=-(-options.batch_size // num_replicas),
        crop_size=tuple(options.crop_size),
        is_training=is_training,
        target_options=self.target_options(split),
        min_scale_factor=aug.min_scale_factor if is_training else 1.0,
        max_scale_factor=aug.max_scale_factor if is_training else 1.0,
        scale_factor_step_size=aug.scale_factor_step_size,
        min_resize_value=validation.single_resize_value(
            options.min_resize_value),
        max_resize_value=validation.single_resize_value(
            options.max_resize_value),
        resize_factor=options.resize_factor,
        autoaugment_policy_name=(aug.autoaugment_policy_name
                                 if is_training else ''),
        seed=seed)

  @property
  def train_batch_size(self):
    """The global train batch size."""
    return self._dataset_options('train').batch_size

  def _dataset_options(self, split):
    self.descriptor(split)        # a clear error when the split is not set
    return getattr(self.config, f'{split}_dataset_options')
