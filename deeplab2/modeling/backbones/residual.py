"""deeplab2's residual networks: ResNet-50, ResNet-50-beta, Wide-ResNet-41
and SWideRNet, with atrous output strides, squeeze-and-excite, drop path and
Switchable Atrous Convolution.

They follow deeplab2's Axial-ResNet family (without attention), which
differs from the original ResNet-50 and Keras Applications: each stage's
stride sits in its first block's first 3x3 conv, and the stem has no
max-pool (the first stage's first block is strided instead). Endpoints:
res1 (stride 2), res2 (4), res3 (8), res4 (16), res5 (32, or less with
atrous convs for a smaller output stride).
"""

from collections.abc import Sequence
import dataclasses
from typing import Any

import keras
import tensorflow as tf

from deeplab2.modeling.backbones import base
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import drop_path
from deeplab2.modeling.layers import normalization
from deeplab2.modeling.layers import squeeze_excite

BACKBONE_TYPES = ('resnet', 'resnet_beta', 'wider_resnet')
# Original input stride of the five stages (res1..res5) before any atrous
# rewrite; a stage's base width is 32 channels per unit of it.
_STAGE_INPUT_STRIDES = (1, 2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class BlockPlan:
  """Plain values of one residual block."""
  filters: tuple      # (out1, out2) basic or (c1, c2, c3) bottleneck.
  strides: int
  dilation_rate: int
  second_dilation_rate: int   # the basic block's second conv.
  keep_prob: float
  switchable_atrous: bool


def plan_stage(filters: int, num_blocks: int, input_stride: int,
               stride: int, output_stride: int, backbone_type: str,
               options: base.BackboneOptions,
               drop_path_beyond_stride: int) -> tuple[BlockPlan, ...]:
  """The blocks of one stage, with deeplab2's stride and atrous rules.

  Past the output stride a stage's stride becomes an atrous rate: its first
  block keeps the previous rate (its basic-block second conv already uses the
  new one) and the following blocks use the new rate.
  """
  blocks = []
  current = input_stride
  use_sac = input_stride * stride >= options.use_sac_beyond_stride > 0
  for index in range(num_blocks):
    strides = stride if index == 0 and input_stride < output_stride else 1
    rate = current // output_stride if current > output_stride else 1
    second_rate = rate
    if index == 0 and input_stride * stride > output_stride:
      second_rate = input_stride * stride // output_stride
    block_filters: tuple[int, ...]
    if backbone_type == 'wider_resnet' and input_stride * stride < 32:
      block_filters = (4 * filters, 4 * filters)
    elif backbone_type == 'wider_resnet':
      block_filters = (filters, 2 * filters, 4 * filters)
    else:
      block_filters = (filters, filters, 4 * filters)
    blocks.append(BlockPlan(
        filters=block_filters, strides=strides, dilation_rate=rate,
        second_dilation_rate=second_rate,
        keep_prob=drop_path.keep_prob_for_stride(
            options.drop_path_keep_prob, options.drop_path_schedule, current,
            drop_path_beyond_stride),
        switchable_atrous=use_sac))
    if index == 0:
      current *= stride
  return tuple(blocks)


@keras.saving.register_keras_serializable(package='deeplab2')
class ResidualBlock(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """A basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1) residual block.

  The residual branch ends in BN without activation, then optional
  squeeze-and-excite and drop path; a 1x1 projection shortcut when the
  channels change (else a strided subsample); ReLU after the sum.
  Input float [B, H, W, C]; output float [B, H / s, W / s, filters[-1]].
  """

  def __init__(self, filters: Sequence[int], strides: int = 1,
               dilation_rate: int = 1,
               second_dilation_rate: int | None = None,
               keep_prob: float = 1.0, switchable_atrous: bool = False,
               use_squeeze_and_excite: bool = False,
               bn_options: normalization.BatchNormOptions | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.filters = tuple(filters)
    if len(self.filters) not in (2, 3):
      raise ValueError(f'filters must have 2 (basic) or 3 (bottleneck) '
                       f'entries, got {filters}.')
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.second_dilation_rate = (dilation_rate if second_dilation_rate is None
                                 else second_dilation_rate)
    self.keep_prob = keep_prob
    # Drop path's random state (a layer variable; none without drop path).
    self.seed_generator = (keras.random.SeedGenerator(name='drop_path_seed')
                           if keep_prob < 1.0 else None)
    self.switchable_atrous = switchable_atrous
    self.use_squeeze_and_excite = use_squeeze_and_excite
    self.bn_options = bn_options or normalization.BatchNormOptions()
    bn = self.bn_options
    self.convs: tuple[convolutions.ConvBnAct, ...]
    if len(self.filters) == 3:
      self.convs = (
          convolutions.ConvBnAct(self.filters[0], 1, bn_options=bn,
                                 name='conv1'),
          convolutions.ConvBnAct(self.filters[1], 3, strides=strides,
                                 dilation_rate=dilation_rate,
                                 switchable_atrous=switchable_atrous,
                                 bn_options=bn, name='conv2'),
          convolutions.ConvBnAct(self.filters[2], 1, activation=None,
                                 bn_options=bn, name='conv3'))
    else:
      self.convs = (
          convolutions.ConvBnAct(self.filters[0], 3, strides=strides,
                                 dilation_rate=dilation_rate,
                                 switchable_atrous=switchable_atrous,
                                 bn_options=bn, name='conv1'),
          convolutions.ConvBnAct(self.filters[1], 3,
                                 dilation_rate=self.second_dilation_rate,
                                 activation=None,
                                 switchable_atrous=switchable_atrous,
                                 bn_options=bn, name='conv2'))
    self.squeeze_excite = (squeeze_excite.SimplifiedSqueezeExcite(
        name='squeeze_excite') if use_squeeze_and_excite else None)
    self.shortcut: convolutions.ConvBnAct | None = None

  def build(self, input_shape):
    if input_shape[-1] != self.filters[-1]:
      shortcut = convolutions.ConvBnAct(
          self.filters[-1], 1, strides=self.strides, activation=None,
          bn_options=self.bn_options, dtype=self.dtype_policy,
          name='shortcut')
      self.shortcut = shortcut
      shortcut.build(input_shape)
    shape = input_shape
    for conv in self.convs:
      conv.build(shape)
      shape = conv.compute_output_shape(shape)
    if self.squeeze_excite is not None:
      self.squeeze_excite.build(shape)

  def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
    x = inputs
    for conv in self.convs:
      x = conv(x, training=training)
    if self.squeeze_excite is not None:
      x = self.squeeze_excite(x)
    x = drop_path.drop_path(x, self.keep_prob, training, self.seed_generator)
    if self.shortcut is not None:
      shortcut = self.shortcut(inputs, training=training)
    elif self.strides > 1:
      shortcut = inputs[:, ::self.strides, ::self.strides, :]
    else:
      shortcut = inputs
    return keras.ops.relu(x + shortcut)

  def compute_output_shape(self, input_shape):
    shape = input_shape
    for conv in self.convs:
      shape = conv.compute_output_shape(shape)
    return shape

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    names: tuple[str, ...]
    if len(self.filters) == 3:
      names = ('_conv1_bn_act', '_conv2_bn_act', '_conv3_bn')
    else:
      names = ('_conv1_bn_act', '_conv2_bn')
    children = list(zip(names, self.convs))
    if self.squeeze_excite is not None:
      children.append(('_squeeze_and_excite', self.squeeze_excite))
    if self.shortcut is not None:
      children.append(('_shortcut', self.shortcut))
    return children

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, strides=self.strides,
                  dilation_rate=self.dilation_rate,
                  second_dilation_rate=self.second_dilation_rate,
                  keep_prob=self.keep_prob,
                  switchable_atrous=self.switchable_atrous,
                  use_squeeze_and_excite=self.use_squeeze_and_excite,
                  bn_options=self.bn_options.to_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class ResidualNetwork(base.BackboneConfigMixin, keras.layers.Layer):
  """A ResNet-family backbone; call(images) returns a dict of endpoints.

  Args:
    backbone_type: 'resnet' (7x7 stem, 4 bottleneck stages), 'resnet_beta'
      (Inception stem of three 3x3 convs) or 'wider_resnet' (3x3 stem, four
      stages of basic blocks and a last stage of wide bottlenecks).
    num_blocks: blocks of the last four stages, before layer_multiplier
      (wider_resnet adds a first stage of 3 blocks).
    options: base.BackboneOptions.
    bn_options: normalization.BatchNormOptions.
    drop_path_beyond_stride: drop path applies from this stride on.

  Input float [B, H, W, 3], already normalised to [-1, 1].
  """

  OUTPUT_STRIDES = (4, 8, 16, 32)
  APPLIED_OPTIONS = base.OPTIONAL_FIELDS

  def __init__(self, backbone_type: str = 'resnet',
               num_blocks: Sequence[int] = (3, 4, 6, 3),
               options: base.BackboneOptions | None = None,
               bn_options: normalization.BatchNormOptions | None = None,
               drop_path_beyond_stride: int = 16, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if backbone_type not in BACKBONE_TYPES:
      raise ValueError(f'Unknown backbone_type "{backbone_type}"; valid: '
                       f'{", ".join(BACKBONE_TYPES)}.')
    self.backbone_type = backbone_type
    self.num_blocks = tuple(num_blocks)
    self.options = options or base.BackboneOptions()
    self.bn_options = bn_options or normalization.BatchNormOptions()
    self.drop_path_beyond_stride = drop_path_beyond_stride
    opts, bn = self.options, self.bn_options
    base.check_options(self.name, opts, self.OUTPUT_STRIDES,
                       self.APPLIED_OPTIONS)
    stem_width = int(round(64 * opts.stem_width_multiplier))
    self.stem: tuple[convolutions.ConvBnAct, ...]
    if backbone_type == 'resnet':
      self.stem = (convolutions.ConvBnAct(stem_width, 7, strides=2,
                                          bn_options=bn, name='stem'),)
    elif backbone_type == 'resnet_beta':
      self.stem = (
          convolutions.ConvBnAct(stem_width, 3, strides=2, bn_options=bn,
                                 name='stem_conv1'),
          convolutions.ConvBnAct(stem_width, 3, bn_options=bn,
                                 name='stem_conv2'),
          convolutions.ConvBnAct(2 * stem_width, 3, bn_options=bn,
                                 name='stem_conv3'))
    else:
      self.stem = (convolutions.ConvBnAct(stem_width, 3, strides=2,
                                          bn_options=bn, name='stem'),)
    # Layer multiplier as deeplab2: int(n * multiplier), here refused when
    # a stage would be left without blocks.
    counts = [int(n * opts.layer_multiplier) for n in self.num_blocks]
    if min(counts) < 1:
      raise ValueError(
          f'backbone_layer_multiplier {opts.layer_multiplier:g} leaves a stage '
          f'without blocks ({self.num_blocks} -> {counts}).')
    first_stage = 0
    if backbone_type == 'wider_resnet':
      counts = [3] + counts
    else:
      first_stage = 1
    self.endpoint_specs = {'res1': base.EndpointSpec(self.stem[-1].filters,
                                                     2)}
    stages = []
    for index, blocks in zip(range(first_stage, 5), counts):
      multiplier = (opts.stem_width_multiplier
                    if backbone_type == 'wider_resnet' and index == 0
                    else opts.width_multiplier)
      filters = int(round(_STAGE_INPUT_STRIDES[index] * 32 * multiplier))
      input_stride = max(2, _STAGE_INPUT_STRIDES[index])
      stride = 1 if index == 0 else 2
      plans = plan_stage(filters, blocks, input_stride, stride,
                         opts.output_stride, backbone_type, opts,
                         drop_path_beyond_stride)
      name = f'res{index + 1}'
      # Tuples, not lists: Keras 3 layers hide list attributes from
      # tf.train.Checkpoint, and the stages would not be saved.
      stages.append(tuple(
          ResidualBlock(plan.filters, plan.strides, plan.dilation_rate,
                        plan.second_dilation_rate, plan.keep_prob,
                        plan.switchable_atrous, opts.use_squeeze_and_excite,
                        bn_options=bn, name=f'{name}_block{b + 1}')
          for b, plan in enumerate(plans)))
      self.endpoint_specs[name] = base.EndpointSpec(
          plans[-1].filters[-1], min(input_stride * stride,
                                     opts.output_stride))
    self.stages = tuple(stages)
    self.first_stage = first_stage

  def build(self, input_shape):
    shape = input_shape
    for layer in self.stem:
      layer.build(shape)
      shape = layer.compute_output_shape(shape)
    for stage in self.stages:
      for block in stage:
        block.build(shape)
        shape = block.compute_output_shape(shape)

  def call(self, images: tf.Tensor,
           training: bool | None = None) -> dict[str, tf.Tensor]:
    x = images
    for layer in self.stem:
      x = layer(x, training=training)
    endpoints = {'res1': x}
    for index, stage in enumerate(self.stages):
      for block in stage:
        x = block(x, training=training)
      endpoints[f'res{index + self.first_stage + 1}'] = x
    return endpoints

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    if self.backbone_type == 'resnet_beta':
      children = list(zip(('_stem/_conv1_bn_act', '_stem/_conv2_bn_act',
                           '_stem/_conv3_bn'), self.stem))
    else:
      children = [('_stem', self.stem[0])]
    for index, stage in enumerate(self.stages):
      stage_name = f'_stage{index + self.first_stage + 1}'
      children += [(f'{stage_name}/_block{b + 1}', block)
                   for b, block in enumerate(stage)]
    return children

  def get_config(self):
    config = super().get_config()
    config.update(backbone_type=self.backbone_type,
                  num_blocks=self.num_blocks,
                  options=dataclasses.asdict(self.options),
                  bn_options=self.bn_options.to_config(),
                  drop_path_beyond_stride=self.drop_path_beyond_stride)
    return config

