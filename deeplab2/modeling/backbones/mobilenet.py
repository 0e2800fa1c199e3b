"""MobileNetV3-Large and -Small (Howard et al., ICCV 2019), deeplab2's form.

Endpoints res1..res5 are, as in deeplab2, the depthwise-conv output of the
marked inverted-bottleneck blocks (before squeeze-and-excite and the
projection), and the output of the last 1x1 conv for res5. Past the output
stride, strides become atrous rates of the depthwise convs.
"""

import collections
import dataclasses
from typing import Any

import keras
import tensorflow as tf

from deeplab2.modeling.backbones import base
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization
from deeplab2.modeling.layers import squeeze_excite

# kind, kernel, stride, filters, activation, se_ratio, expand_ratio, endpoint.
BlockSpec = collections.namedtuple(
    'BlockSpec', 'kind kernel stride filters activation se_ratio expand_ratio '
    'endpoint')

_CONV, _IB = 'conv_bn', 'inverted_bottleneck'
_HS = 'hard_swish'

MOBILENET_V3_SMALL = (
    BlockSpec(_CONV, 3, 2, 16, _HS, None, None, True),
    BlockSpec(_IB, 3, 2, 16, 'relu', 0.25, 1, True),
    BlockSpec(_IB, 3, 2, 24, 'relu', None, 72 / 16, False),
    BlockSpec(_IB, 3, 1, 24, 'relu', None, 88 / 24, True),
    BlockSpec(_IB, 5, 2, 40, _HS, 0.25, 4, False),
    BlockSpec(_IB, 5, 1, 40, _HS, 0.25, 6, False),
    BlockSpec(_IB, 5, 1, 40, _HS, 0.25, 6, False),
    BlockSpec(_IB, 5, 1, 48, _HS, 0.25, 3, False),
    BlockSpec(_IB, 5, 1, 48, _HS, 0.25, 3, True),
    BlockSpec(_IB, 5, 2, 96, _HS, 0.25, 6, False),
    BlockSpec(_IB, 5, 1, 96, _HS, 0.25, 6, False),
    BlockSpec(_IB, 5, 1, 96, _HS, 0.25, 6, False),
    BlockSpec(_CONV, 1, 1, 576, _HS, None, None, True),
)

MOBILENET_V3_LARGE = (
    BlockSpec(_CONV, 3, 2, 16, _HS, None, None, False),
    BlockSpec(_IB, 3, 1, 16, 'relu', None, 1, True),
    BlockSpec(_IB, 3, 2, 24, 'relu', None, 4, False),
    BlockSpec(_IB, 3, 1, 24, 'relu', None, 3, True),
    BlockSpec(_IB, 5, 2, 40, 'relu', 0.25, 3, False),
    BlockSpec(_IB, 5, 1, 40, 'relu', 0.25, 3, False),
    BlockSpec(_IB, 5, 1, 40, 'relu', 0.25, 3, True),
    BlockSpec(_IB, 3, 2, 80, _HS, None, 6, False),
    BlockSpec(_IB, 3, 1, 80, _HS, None, 2.5, False),
    BlockSpec(_IB, 3, 1, 80, _HS, None, 2.3, False),
    BlockSpec(_IB, 3, 1, 80, _HS, None, 2.3, False),
    BlockSpec(_IB, 3, 1, 112, _HS, 0.25, 6, False),
    BlockSpec(_IB, 3, 1, 112, _HS, 0.25, 6, True),
    BlockSpec(_IB, 5, 2, 160, _HS, 0.25, 6, False),
    BlockSpec(_IB, 5, 1, 160, _HS, 0.25, 6, False),
    BlockSpec(_IB, 5, 1, 160, _HS, 0.25, 6, False),
    BlockSpec(_CONV, 1, 1, 960, _HS, None, None, True),
)


@keras.saving.register_keras_serializable(package='deeplab2')
class InvertedBottleneck(normalization.BatchNormConfigMixin,
                         keras.layers.Layer):
  """1x1 expand -> depthwise k x k -> optional SE -> 1x1 project (+ input).

  call() returns (output, depthwise_output): float [B, H/s, W/s,
  out_filters] and float [B, H/s, W/s, expanded channels].
  """

  def __init__(self, in_filters: int, out_filters: int,
               expand_ratio: float, kernel_size: int = 3, strides: int = 1,
               dilation_rate: int = 1, se_ratio: float | None = None,
               activation: str = 'relu', residual: bool = True,
               bn_options: normalization.BatchNormOptions | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.in_filters = in_filters
    self.out_filters = out_filters
    self.expand_ratio = expand_ratio
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.se_ratio = se_ratio
    self.activation = activation
    self.residual = residual and in_filters == out_filters
    self.bn_options = bn_options or normalization.BatchNormOptions()
    bn = self.bn_options
    self.expanded_filters = in_filters
    self.expand = None
    if expand_ratio > 1:
      self.expanded_filters = squeeze_excite.make_divisible(
          in_filters * expand_ratio)
      self.expand = convolutions.ConvBnAct(
          self.expanded_filters, 1, activation=activation, bn_options=bn,
          name='expand')
    self.depthwise = convolutions.DepthwiseConvBnAct(
        kernel_size, strides=strides, dilation_rate=dilation_rate,
        activation=activation, bn_options=bn, name='depthwise')
    self.squeeze_excite = None
    if se_ratio:
      self.squeeze_excite = squeeze_excite.SqueezeExcite(
          self.expanded_filters, se_ratio, name='squeeze_excite')
    self.project = convolutions.ConvBnAct(out_filters, 1, activation=None,
                                          bn_options=bn, name='project')

  def build(self, input_shape):
    shape = input_shape
    if self.expand is not None:
      self.expand.build(shape)
      shape = self.expand.compute_output_shape(shape)
    self.depthwise.build(shape)
    shape = self.depthwise.compute_output_shape(shape)
    if self.squeeze_excite is not None:
      self.squeeze_excite.build(shape)
    self.project.build(shape)

  def call(self, inputs: tf.Tensor,
           training: bool | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    x = inputs
    if self.expand is not None:
      x = self.expand(x, training=training)
    depthwise_output = self.depthwise(x, training=training)
    x = depthwise_output
    if self.squeeze_excite is not None:
      x = self.squeeze_excite(x)
    x = self.project(x, training=training)
    if self.residual:
      x = x + inputs
    return x, depthwise_output

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    children = [('_conv2_bn_act', self.depthwise), ('_conv3_bn', self.project)]
    if self.expand is not None:
      children.append(('_conv1_bn_act', self.expand))
    if self.squeeze_excite is not None:
      children.append(('_squeeze_excitation', self.squeeze_excite))
    return children

  def get_config(self):
    config = super().get_config()
    config.update(in_filters=self.in_filters, out_filters=self.out_filters,
                  expand_ratio=self.expand_ratio,
                  kernel_size=self.kernel_size, strides=self.strides,
                  dilation_rate=self.dilation_rate, se_ratio=self.se_ratio,
                  activation=self.activation, residual=self.residual,
                  bn_options=self.bn_options.to_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class MobileNetV3(base.BackboneConfigMixin, keras.layers.Layer):
  """MobileNetV3 backbone; call(images) returns a dict of endpoints.

  Args:
    variant: 'small' or 'large'.
    options: base.BackboneOptions (output_stride, width_multiplier).
    bn_options: normalization.BatchNormOptions.

  Input float [B, H, W, 3], already normalised to [-1, 1].
  """

  OUTPUT_STRIDES = (4, 8, 16, 32)
  # Squeeze-and-excite is part of the block table (deeplab2 requires
  # use_squeeze_and_excite: true, which changes nothing).
  APPLIED_OPTIONS = ('width_multiplier', 'use_squeeze_and_excite')

  def __init__(self, variant: str = 'small',
               options: base.BackboneOptions | None = None,
               bn_options: normalization.BatchNormOptions | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    specs = {'small': MOBILENET_V3_SMALL, 'large': MOBILENET_V3_LARGE}
    if variant not in specs:
      raise ValueError(f'Unknown MobileNetV3 variant "{variant}"; valid: '
                       'large, small.')
    self.variant = variant
    self.options = options or base.BackboneOptions()
    base.check_options(f'mobilenet_v3_{variant}', self.options,
                       self.OUTPUT_STRIDES, self.APPLIED_OPTIONS)
    self.bn_options = bn_options or normalization.BatchNormOptions()
    output_stride = self.options.output_stride
    blocks, endpoint_names = [], []
    self.endpoint_specs: dict[str, base.EndpointSpec] = {}
    current_stride, rate, in_filters = 1, 1, 3
    for index, spec in enumerate(specs[variant]):
      if len(self.endpoint_specs) == 5:
        break
      filters = squeeze_excite.make_divisible(
          spec.filters * self.options.width_multiplier)
      if current_stride == output_stride:
        strides, layer_rate = 1, rate
        rate *= spec.stride
      else:
        strides, layer_rate = spec.stride, 1
        current_stride *= spec.stride
      name = f'block{index}'
      if spec.kind == _CONV:
        block = convolutions.ConvBnAct(
            filters, spec.kernel, strides=strides, dilation_rate=layer_rate,
            activation=spec.activation, bn_options=self.bn_options,
            name=name)
        endpoint_channels = filters
      else:
        block = InvertedBottleneck(
            in_filters, filters, spec.expand_ratio, spec.kernel,
            strides=strides,
            dilation_rate=layer_rate if spec.kernel > 1 else 1,
            se_ratio=spec.se_ratio, activation=spec.activation,
            residual=spec.stride == 1, bn_options=self.bn_options, name=name)
        endpoint_channels = block.expanded_filters
      blocks.append(block)
      endpoint_name = None
      if spec.endpoint:
        endpoint_name = f'res{len(self.endpoint_specs) + 1}'
        self.endpoint_specs[endpoint_name] = base.EndpointSpec(
            endpoint_channels, current_stride)
      endpoint_names.append(endpoint_name)
      in_filters = filters
    # Tuples, not lists: Keras 3 layers hide list attributes from
    # tf.train.Checkpoint.
    self.blocks = tuple(blocks)
    self.endpoint_names = tuple(endpoint_names)

  def build(self, input_shape):
    shape = input_shape
    for block in self.blocks:
      block.build(shape)
      if isinstance(block, InvertedBottleneck):
        shape = block.project.compute_output_shape(
            block.depthwise.compute_output_shape(shape))
      else:
        shape = block.compute_output_shape(shape)

  def call(self, images: tf.Tensor,
           training: bool | None = None) -> dict[str, tf.Tensor]:
    x = images
    endpoints = {}
    for block, endpoint_name in zip(self.blocks, self.endpoint_names):
      if isinstance(block, InvertedBottleneck):
        x, endpoint = block(x, training=training)
      else:
        x = endpoint = block(x, training=training)
      if endpoint_name:
        endpoints[endpoint_name] = endpoint
    return endpoints

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    return [(f'_blocks/{index}', block)
            for index, block in enumerate(self.blocks)]

  def get_config(self):
    config = super().get_config()
    config.update(variant=self.variant,
                  options=dataclasses.asdict(self.options),
                  bn_options=self.bn_options.to_config())
    return config


@base.register_backbone('mobilenet_v3_small', MobileNetV3.OUTPUT_STRIDES,
                        MobileNetV3.APPLIED_OPTIONS)
def build_mobilenet_v3_small(options: base.BackboneOptions,
                             bn_options: normalization.BatchNormOptions,
                             **kwargs: Any) -> MobileNetV3:
  return MobileNetV3('small', options, bn_options, name='mobilenet_v3_small',
                     **kwargs)


@base.register_backbone('mobilenet_v3_large', MobileNetV3.OUTPUT_STRIDES,
                        MobileNetV3.APPLIED_OPTIONS)
def build_mobilenet_v3_large(options: base.BackboneOptions,
                             bn_options: normalization.BatchNormOptions,
                             **kwargs: Any) -> MobileNetV3:
  return MobileNetV3('large', options, bn_options, name='mobilenet_v3_large',
                     **kwargs)
