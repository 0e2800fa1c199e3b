"""Xception-71: DeepLabv3+'s modified aligned Xception, Panoptic-DeepLab's
backbone in the paper (Chen et al., ECCV 2018; Cheng et al., CVPR 2020).

Changes from the original Xception: the middle flow is repeated 16 times,
every max-pool is a strided depthwise-separable conv, and each 3x3
depthwise conv is followed by batch norm. Xception-71 splits the entry
flow's second and third blocks into a stride-1 and a stride-2 block each
(2 + 5 * 3 + 16 * 3 + 2 * 3 = 71 layers). Past the output stride, strides
become atrous rates.

Endpoints (the DeepLab feature-extractor choice for xception_71):
  res1: the stem, stride 2, 64 channels.
  res2: the second separable conv of entry block 3, stride 4, 256 channels.
  res3: the second separable conv of entry block 5, stride 8, 728 channels.
  res4: the middle flow's output, stride 16, 728 channels.
  res5: the exit flow's output, 2048 channels, stride = output_stride.
"""

import collections
from collections.abc import Sequence
import dataclasses
from typing import Any

import keras
import tensorflow as tf

from deeplab2.modeling.backbones import base
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization

# depths of the three separable convs, shortcut ('conv', 'sum', 'none'),
# stride, repeats, ReLU inside each separable conv (else before it).
BlockSpec = collections.namedtuple(
    'BlockSpec', 'depths shortcut stride repeats activation_in_conv')

XCEPTION_71 = (
    BlockSpec((128, 128, 128), 'conv', 2, 1, False),
    BlockSpec((256, 256, 256), 'conv', 1, 1, False),
    BlockSpec((256, 256, 256), 'conv', 2, 1, False),   # res2 inside
    BlockSpec((728, 728, 728), 'conv', 1, 1, False),
    BlockSpec((728, 728, 728), 'conv', 2, 1, False),   # res3 inside
    BlockSpec((728, 728, 728), 'sum', 1, 16, False),   # middle flow -> res4
    BlockSpec((728, 1024, 1024), 'conv', 2, 1, False),
    BlockSpec((1536, 1536, 2048), 'none', 1, 1, True),  # -> res5
)
# (block index, unit) whose second separable conv is an endpoint.
_INNER_ENDPOINTS = {2: 'res2', 4: 'res3'}
_RES4_AFTER_BLOCK = 5


@keras.saving.register_keras_serializable(package='deeplab2')
class XceptionModule(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """Three depthwise-separable convs (stride in the last) plus a shortcut.

  Each separable conv is depthwise 3x3 -> BN -> pointwise 1x1 -> BN, with
  ReLU either before it (pre-activation) or after both BNs.
  call() returns (output, second_conv_output): float [B, H/s, W/s,
  depths[2]] and float [B, H, W, depths[1]].
  """

  def __init__(self, depths: Sequence[int], shortcut: str = 'conv',
               strides: int = 1, dilation_rate: int = 1,
               activation_in_conv: bool = False,
               bn_options: normalization.BatchNormOptions | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if shortcut not in ('conv', 'sum', 'none'):
      raise ValueError(f'Unknown shortcut "{shortcut}"; valid: conv, sum, '
                       'none.')
    self.depths = tuple(depths)
    self.shortcut = shortcut
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.activation_in_conv = activation_in_conv
    self.bn_options = bn_options or normalization.BatchNormOptions()
    bn = self.bn_options
    activation = 'relu' if activation_in_conv else None
    units = []
    for index, depth in enumerate(self.depths):
      units.append((
          convolutions.DepthwiseConvBnAct(
              3, strides=strides if index == 2 else 1,
              dilation_rate=dilation_rate, activation=activation,
              bn_options=bn, name=f'separable_conv{index + 1}_depthwise'),
          convolutions.ConvBnAct(depth, 1, activation=activation,
                                 bn_options=bn,
                                 name=f'separable_conv{index + 1}_pointwise')))
    # Tuples, not lists: Keras 3 hides lists from tf.train.Checkpoint.
    self.units = tuple(units)
    self.shortcut_conv: convolutions.ConvBnAct | None = None
    if shortcut == 'conv':
      self.shortcut_conv = convolutions.ConvBnAct(
          self.depths[-1], 1, strides=strides, activation=None,
          bn_options=bn, name='shortcut')

  def build(self, input_shape):
    shape = input_shape
    for depthwise, pointwise in self.units:
      depthwise.build(shape)
      shape = depthwise.compute_output_shape(shape)
      pointwise.build(shape)
      shape = pointwise.compute_output_shape(shape)
    if self.shortcut_conv is not None:
      self.shortcut_conv.build(input_shape)

  def call(self, inputs: tf.Tensor,
           training: bool | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    x = inputs
    second = None
    for index, (depthwise, pointwise) in enumerate(self.units):
      if not self.activation_in_conv:
        x = keras.ops.relu(x)
      x = pointwise(depthwise(x, training=training), training=training)
      if index == 1:
        second = x
    if self.shortcut_conv is not None:       # shortcut 'conv'
      x = x + self.shortcut_conv(inputs, training=training)
    elif self.shortcut == 'sum':
      x = x + inputs
    return x, second

  def compute_output_shape(self, input_shape):
    shape = self.units[-1][0].compute_output_shape(input_shape)
    return tuple(shape[:-1]) + (self.depths[-1],)

  def get_config(self):
    config = super().get_config()
    config.update(depths=self.depths, shortcut=self.shortcut,
                  strides=self.strides, dilation_rate=self.dilation_rate,
                  activation_in_conv=self.activation_in_conv,
                  bn_options=self.bn_options.to_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class Xception(base.BackboneConfigMixin, keras.layers.Layer):
  """Aligned Xception; call(images) returns a dict of endpoints.

  options.width_multiplier scales every depth (stem included, with
  stem_width_multiplier); options.layer_multiplier scales the middle flow.
  Input float [B, H, W, 3], already normalised to [-1, 1].
  """

  # Output stride 4 would need atrous convs in the entry flow's second
  # block, which also feeds res2 at stride 4; the paper uses 16.
  OUTPUT_STRIDES = (8, 16, 32)
  APPLIED_OPTIONS = ('stem_width_multiplier', 'width_multiplier',
                     'layer_multiplier')

  def __init__(self, options: base.BackboneOptions | None = None,
               bn_options: normalization.BatchNormOptions | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.options = options or base.BackboneOptions()
    self.bn_options = bn_options or normalization.BatchNormOptions()
    opts, bn = self.options, self.bn_options
    base.check_options('xception_71', opts, self.OUTPUT_STRIDES,
                       self.APPLIED_OPTIONS)

    def width(channels, multiplier=opts.width_multiplier):
      return max(8, int(round(channels * multiplier)))

    self.stem = (
        convolutions.ConvBnAct(width(32, opts.stem_width_multiplier), 3,
                               strides=2, bn_options=bn, name='stem_conv1'),
        convolutions.ConvBnAct(width(64, opts.stem_width_multiplier), 3,
                               bn_options=bn, name='stem_conv2'))
    self.endpoint_specs = {'res1': base.EndpointSpec(self.stem[-1].filters,
                                                     2)}
    stride, rate = 2, 1
    modules = []
    self.endpoint_at = {}
    for index, spec in enumerate(XCEPTION_71):
      repeats = spec.repeats
      if spec.repeats > 1:
        repeats = int(spec.repeats * opts.layer_multiplier)
        if repeats < 1:
          raise ValueError(f'backbone_layer_multiplier '
                           f'{opts.layer_multiplier:g} leaves the middle flow '
                           'without blocks.')
      depths = tuple(width(d) for d in spec.depths)
      for unit in range(repeats):
        unit_stride = spec.stride if unit == 0 else 1
        if unit_stride > 1 and stride * unit_stride > opts.output_stride:
          # As DeepLab's stack_blocks_dense: the would-be strided unit
          # keeps the previous rate, the following ones use the new one.
          module_stride, module_rate = 1, rate
          rate *= unit_stride
        else:
          module_stride, module_rate = unit_stride, rate
          if unit_stride > 1:
            stride *= unit_stride
        modules.append(XceptionModule(
            depths, spec.shortcut, module_stride, module_rate,
            spec.activation_in_conv, bn_options=bn,
            name=f'block{index + 1}_unit{unit + 1}'))
      if index in _INNER_ENDPOINTS:
        name = _INNER_ENDPOINTS[index]
        self.endpoint_at[len(modules) - 1] = name
        # The second conv runs before the module's stride.
        self.endpoint_specs[name] = base.EndpointSpec(
            depths[1], stride // spec.stride if module_stride > 1
            else stride)
      if index == _RES4_AFTER_BLOCK:
        self.res4_module = len(modules) - 1
        self.endpoint_specs['res4'] = base.EndpointSpec(depths[-1], stride)
    self.endpoint_specs['res5'] = base.EndpointSpec(modules[-1].depths[-1],
                                                    stride)
    self.blocks = tuple(modules)

  def build(self, input_shape):
    shape = input_shape
    for layer in self.stem:
      layer.build(shape)
      shape = layer.compute_output_shape(shape)
    for module in self.blocks:
      module.build(shape)
      shape = module.compute_output_shape(shape)

  def call(self, images: tf.Tensor,
           training: bool | None = None) -> dict[str, tf.Tensor]:
    x = images
    for layer in self.stem:
      x = layer(x, training=training)
    endpoints = {'res1': x}
    for index, module in enumerate(self.blocks):
      x, second = module(x, training=training)
      if index in self.endpoint_at:
        endpoints[self.endpoint_at[index]] = second
      if index == self.res4_module:
        endpoints['res4'] = x
    endpoints['res5'] = x   # the exit flow ends in ReLU
    return endpoints

  def get_config(self):
    config = super().get_config()
    config.update(options=dataclasses.asdict(self.options),
                  bn_options=self.bn_options.to_config())
    return config


@base.register_backbone('xception_71', Xception.OUTPUT_STRIDES,
                        Xception.APPLIED_OPTIONS)
def build_xception_71(options: base.BackboneOptions,
                      bn_options: normalization.BatchNormOptions,
                      **kwargs: Any) -> Xception:
  return Xception(options, bn_options, name='xception_71', **kwargs)
