"""The one door of the config: the only reader of ExperimentOptions.

`load_experiment(path, num_replicas)` loads and validates a textproto and
returns the ExperimentParts that build every part of the experiment from it
for that many replicas: the model, the optimizer, the loss, the
post-processor, the input pipelines, the test-time augmentation and what
export needs. The layers, the model, the losses and the post-processor take
plain values and never see the message.
"""

from collections.abc import Iterable, Sequence
import dataclasses
import logging
import os
from typing import TypeAlias

from google.protobuf import text_format
import keras

from deeplab2 import inference
from deeplab2 import label_spec as label_spec_lib
from deeplab2.config import errors
from deeplab2.config import evaluator_checks
from deeplab2.config import loader
from deeplab2.config import model_builder
from deeplab2.config import overrides
from deeplab2.config import readers
from deeplab2.config import text_locations
from deeplab2.config import validation
from deeplab2.config import values
from deeplab2.data import dataset_descriptor
from deeplab2.data import input_pipeline
from deeplab2.data import targets
from deeplab2.losses import panoptic_deeplab_loss
from deeplab2.modeling import panoptic_deeplab
from deeplab2.modeling.layers import normalization
from deeplab2.postprocessing import post_processor
from deeplab2.protos import config_pb2
from deeplab2.solver import optimizers
from deeplab2.solver import schedules

_log = logging.getLogger('deeplab2')

SPLITS = ('train', 'eval')


ConfigSource: TypeAlias = 'str | overrides.ConfigFile'


def load_experiment(source: ConfigSource,
                    num_replicas: int = 1) -> 'ExperimentParts':
  """Loads and validates an experiment textproto (with its overrides).

  Relative descriptor paths in `DatasetOptions.dataset` are taken from the
  working directory, or else from the config file's directory. Each warning
  of validation is logged once (logger 'deeplab2').

  Args:
    source: the experiment textproto's path, or an overrides.ConfigFile
      (the path and its --config_override texts, merged over it).
    num_replicas: replicas the experiment runs on (batch sizes are global and
      split across them; batch-norm statistics may be synchronised).

  Returns:
    ExperimentParts for `num_replicas` replicas.

  Raises:
    ConfigError: the file or an override cannot be read or parsed, or a
      value cannot work (named by the file's line, or by the override
      that set it).
  """
  if isinstance(source, str):
    source = overrides.ConfigFile(source)
  path = source.path
  config, text = loader.load_experiment_config(path)
  set_by = overrides.apply(config, source.overrides)
  try:
    return from_message(
        config, num_replicas,
        descriptor_base_dir=os.path.dirname(os.path.abspath(path)), path=path,
        text=text)
  except errors.ConfigError as e:
    raise overrides.relocated(e, set_by) from None


def from_message(config: config_pb2.ExperimentOptions, num_replicas: int = 1,
                 descriptor_base_dir: str | None = None,
                 path: str | None = None,
                 text: str | None = None) -> 'ExperimentParts':
  """Validates an ExperimentOptions (e.g. built in code); returns its parts.

  Each warning of validation is logged once (logger 'deeplab2').

  Args:
    config: the experiment (not modified).
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
  return ExperimentParts(config, descriptors, num_replicas=num_replicas,
                         path=path, warnings=warnings, text=text)


def test_time_augmentation(
    scales: Iterable[float], flip: bool,
    field: str = 'evaluator_options.eval_scales'
) -> inference.TestTimeAugmentation:
  """The one place test-time scales and flip become the TTA carrier.

  Args:
    scales: checked by check_eval_scales; none: one pass at scale 1.
    flip: also run mirrored inputs.
    field: what to name in the message of bad scales.

  Raises:
    ConfigError: bad scales.
  """
  scales = evaluator_checks.check_eval_scales(scales, field)
  return inference.TestTimeAugmentation(scales or inference.NO_SCALING,
                                        bool(flip))


class ExperimentParts:
  """Builds every part of one validated experiment, for its replicas.

  Args:
    config: a validated ExperimentOptions (read only).
    descriptors: 'train' / 'eval' -> DatasetDescriptor, as validation
      returned them.
    num_replicas: the replicas it was validated for, which the builders
      assume (per-replica batch sizes, batch-norm synchronisation).
    path: the config file, for messages.
    warnings: validation's warning lines.
    text: the config's text, to locate fields in messages.

  Attributes:
    tta: the evaluator's test-time augmentation (evaluator_options), built
      once.
  """

  def __init__(self, config: config_pb2.ExperimentOptions,
               descriptors: dict[str, dataset_descriptor.DatasetDescriptor],
               num_replicas: int = 1, path: str | None = None,
               warnings: Sequence[str] = (), text: str | None = None):
    self.config = config
    self.descriptors = dict(descriptors)
    self.num_replicas = num_replicas
    self.path = path
    self.warnings = tuple(warnings)
    self._text = text
    evaluator = config.evaluator_options
    self.tta = test_time_augmentation(evaluator.eval_scales,
                                      evaluator.add_flipped_images)

  # Plain facts.

  def config_text(self) -> str:
    """The experiment as text format, overrides included (what runs)."""
    return text_format.MessageToString(self.config)

  @property
  def experiment_name(self) -> str:
    return self.config.experiment_name

  def has_split(self, split: str) -> bool:
    """Whether the config sets `{split}_dataset_options`."""
    return split in self.descriptors

  def descriptor(self, split: str) -> dataset_descriptor.DatasetDescriptor:
    """The DatasetDescriptor of 'train' or 'eval'.

    Raises:
      ValueError: an unknown split.
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
  def label_spec(self) -> label_spec_lib.LabelSpec:
    """The label spec the model predicts (eval's, else train's)."""
    split = 'eval' if 'eval' in self.descriptors else 'train'
    return self.descriptor(split).label_spec

  @property
  def model_input_size(self) -> tuple[int, int]:
    """(height, width) the model's variables are created at: the train crop
    when there is one (it fixes the ASPP pooling in deeplab2), else eval's."""
    split = 'train' if 'train' in self.descriptors else 'eval'
    height, width = self._dataset_options(split).crop_size
    return height, width

  @property
  def seed(self) -> int | None:
    """The config's seed (of the train pipeline and the initial weights),
    or None: runs then differ."""
    return self.config.seed if self.config.HasField('seed') else None

  @property
  def train_schedule(self) -> values.TrainSchedule:
    trainer = self.config.trainer_options
    return values.TrainSchedule(
        total_steps=trainer.solver_options.training_number_of_steps,
        steps_per_loop=trainer.steps_per_loop,
        save_checkpoints_steps=trainer.save_checkpoints_steps,
        save_summaries_steps=trainer.save_summaries_steps,
        num_checkpoints_to_keep=trainer.num_checkpoints_to_keep)

  @property
  def best_checkpoint(self) -> values.BestCheckpoint:
    trainer = self.config.trainer_options
    return values.BestCheckpoint(keep=trainer.keep_best_checkpoint,
                                 metric=trainer.best_checkpoint_metric)

  @property
  def eval_schedule(self) -> values.EvalSchedule:
    evaluator = self.config.evaluator_options
    timeout = evaluator.continuous_eval_timeout
    return values.EvalSchedule(
        eval_steps=evaluator.eval_steps,
        eval_interval=evaluator.eval_interval,
        continuous_eval_timeout=None if timeout < 0 else timeout,
        num_vis_samples=evaluator.num_vis_samples,
        tta=self.tta,
        save_predictions=evaluator.save_predictions,
        save_dir=evaluator.override_save_dir)

  @property
  def initial_checkpoint(self) -> values.InitialCheckpoint:
    model = self.config.model_options
    return values.InitialCheckpoint(
        path=model.initial_checkpoint,
        restore_semantic_last_layer=(
            model.restore_semantic_last_layer_from_initial_checkpoint),
        restore_instance_last_layer=(
            model.restore_instance_last_layer_from_initial_checkpoint))

  def inference_options(
      self, eval_scales: Iterable[float] | None = None,
      add_flipped_images: bool | None = None
  ) -> inference.InferenceOptions:
    """The eval dataset's preprocessing (resize to a range, crop) and the
    evaluator's test-time augmentation (`tta`).

    Args:
      eval_scales: other test-time scales (e.g. an export's; checked as the
        config's); None: the config's.
      add_flipped_images: another flip setting; None: the config's.

    Raises:
      ConfigError: bad `eval_scales`, or no eval_dataset_options.
    """
    options = self._dataset_options('eval')
    tta = self.tta
    if eval_scales is not None or add_flipped_images is not None:
      tta = test_time_augmentation(
          tta.scales if eval_scales is None else eval_scales,
          tta.flip if add_flipped_images is None else add_flipped_images,
          field='eval_scales')
    height, width = options.crop_size
    return inference.InferenceOptions(
        crop_size=(height, width),
        output_stride=self.config.model_options.backbone.output_stride,
        min_resize_value=readers.single_resize_value(
            options.min_resize_value),
        max_resize_value=readers.single_resize_value(
            options.max_resize_value),
        resize_factor=options.resize_factor,
        tta=tta)

  @property
  def l2_weight_decay(self) -> float:
    """Weight of the L2 loss term on kernels (0 when the optimizer decays
    the weights itself, as AdamW)."""
    solver = self.config.trainer_options.solver_options
    if optimizers.uses_decoupled_weight_decay(solver.optimizer):
      return 0.0
    return solver.weight_decay

  @property
  def uses_loss_scaling(self) -> bool:
    """mixed_float16 needs loss scaling (float16 gradients underflow)."""
    return self.config.model_options.dtype_policy == 'mixed_float16'

  @property
  def train_batch_size(self) -> int:
    """The global train batch size."""
    return self._dataset_options('train').batch_size

  # Builders.

  def bn_options(self) -> normalization.BatchNormOptions:
    """Batch-norm options; statistics are synchronised when the config asks
    for it and there is more than one replica."""
    solver = self.config.trainer_options.solver_options
    return normalization.BatchNormOptions(
        momentum=solver.batchnorm_momentum,
        epsilon=solver.batchnorm_epsilon,
        synchronized=solver.use_sync_batchnorm and self.num_replicas > 1)

  def build_model(self, input_size: Sequence[int] | None = None,
                  aspp_dropout_rate: float = 0.1
                  ) -> panoptic_deeplab.PanopticDeepLab:
    """The model with its variables created; its ASPP pools over the window
    of model_input_size (the train crop), as deeplab2's.

    Args:
      input_size: (height, width) to create the variables at; default
        model_input_size. Variables do not depend on it.
      aspp_dropout_rate: deeplab2's 0.1; 0 for a deterministic training
        step (the training parity test).

    Raises:
      ConfigError: a backbone that refuses its options (e.g. a layer
        multiplier that leaves a stage without blocks).
    """
    try:
      return model_builder.build_model(
          self.config.model_options, self.bn_options(),
          input_size or self.model_input_size,
          pool_crop_size=self.model_input_size,
          aspp_dropout_rate=aspp_dropout_rate)
    except ValueError as e:
      field = 'model_options.backbone'
      raise errors.ConfigError(
          str(e), path=self.path, field=field,
          line=text_locations.first_line(self._text, field)) from None

  def build_optimizer(self) -> keras.optimizers.Optimizer:
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

  def build_loss(self) -> panoptic_deeplab_loss.PanopticDeepLabLoss:
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

  def post_processor_options(self) -> post_processor.PostProcessorOptions:
    evaluator = self.config.evaluator_options
    return post_processor.PostProcessorOptions(
        label_spec=self.label_spec,
        center_score_threshold=evaluator.center_score_threshold,
        nms_kernel=evaluator.nms_kernel,
        keep_k_centers=evaluator.keep_k_centers,
        stuff_area_limit=evaluator.stuff_area_limit)

  def build_post_processor(self, grouping_mode: str = 'loop'
                           ) -> post_processor.PanopticDeepLabPostProcessor:
    """The config's post-processor; grouping_mode: see
    post_processor.PostProcessorOptions (the ONNX and OpenVINO models)."""
    return post_processor.PanopticDeepLabPostProcessor(dataclasses.replace(
        self.post_processor_options(), grouping_mode=grouping_mode))

  def target_options(self, split: str) -> targets.TargetOptions:
    options = self._dataset_options(split)
    return targets.TargetOptions(
        label_spec=self.descriptor(split).label_spec,
        sigma=options.sigma,
        small_instance_threshold=options.small_instance_threshold,
        small_instance_weight=options.small_instance_weight,
        increase_small_instance_weights=(
            options.increase_small_instance_weights))

  def pipeline_options(self, split: str) -> input_pipeline.PipelineOptions:
    """The input pipeline of 'train' (augmented, repeated, seeded with
    `seed`) or 'eval' (padded, once), with the per-replica batch size."""
    options = self._dataset_options(split)
    is_training = split == 'train'
    aug = options.augmentations
    return input_pipeline.PipelineOptions(
        file_patterns=tuple(options.file_pattern),
        # Train batches are validated divisible; eval batches round up.
        batch_size=-(-options.batch_size // self.num_replicas),
        crop_size=tuple(options.crop_size),
        is_training=is_training,
        target_options=self.target_options(split),
        min_scale_factor=aug.min_scale_factor if is_training else 1.0,
        max_scale_factor=aug.max_scale_factor if is_training else 1.0,
        scale_factor_step_size=aug.scale_factor_step_size,
        min_resize_value=readers.single_resize_value(
            options.min_resize_value),
        max_resize_value=readers.single_resize_value(
            options.max_resize_value),
        resize_factor=options.resize_factor,
        autoaugment_policy_name=(aug.autoaugment_policy_name
                                 if is_training else ''),
        seed=self.seed if is_training else None)

  def dataset_source(self, split: str) -> str:
    """How the config names the descriptor of 'train' or 'eval' (a built-in
    name or a JSON path), for messages."""
    return self._dataset_options(split).dataset

  def shard_files(self, split: str) -> list[str]:
    """The TFRecord shards the file patterns of 'train' or 'eval' match.

    Raises:
      ConfigError: at `<split>_dataset_options.file_pattern`: nothing
        matches, or a match is no TFRecord file (named).
    """
    patterns = self._dataset_options(split).file_pattern
    try:
      return input_pipeline.list_files(patterns)
    except (FileNotFoundError, ValueError) as e:
      field = f'{split}_dataset_options.file_pattern'
      raise errors.ConfigError(
          str(e), path=self.path, field=field,
          line=text_locations.first_line(self._text, field)) from None

  def _dataset_options(self, split: str) -> config_pb2.DatasetOptions:
    self.descriptor(split)        # a clear error when the split is not set
    return getattr(self.config, f'{split}_dataset_options')
