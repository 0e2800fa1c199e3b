"""deeplab2's ResNet-50 variants.

They differ from the original ResNet-50 (and Keras Applications): each
stage's first block puts its stride in the 3x3 conv, and the stem has no
max-pool, so the first stage's first block is strided instead. `resnet50`
has a 7x7 stem; `resnet50_beta` the Inception stem of three 3x3 convs.
Endpoints: stem (stride 2), res2 (4), res3 (8), res4 (16), res5 (32, or less
with atrous convs for a smaller output stride).
"""

import dataclasses
import math

import keras

from deeplab2.modeling.backbones import base
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import normalization

# (bottleneck channels, blocks) of res2..res5; outputs are 4x bottleneck.
_RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


@keras.saving.register_keras_serializable(package='deeplab2')
class BottleneckBlock(normalization.BatchNormConfigMixin, keras.layers.Layer):
  """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), plus a projection shortcut.

  Input float [B, H, W, C]; output float [B, H / strides, W / strides,
  4 * filters].
  """

  def __init__(self, filters, strides=1, dilation_rate=1, bn_options=None,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.bn_options = bn_options or normalization.BatchNormOptions()
    bn = self.bn_options
    self.conv1 = convolutions.ConvBnAct(filters, 1, bn_options=bn, name='conv1')
    self.conv2 = convolutions.ConvBnAct(filters, 3, strides=strides,
                                        dilation_rate=dilation_rate,
                                        bn_options=bn, name='conv2')
    self.conv3 = convolutions.ConvBnAct(4 * filters, 1, activation=False,
                                        bn_options=bn, name='conv3')
    self.shortcut = None

  def build(self, input_shape):
    if input_shape[-1] != 4 * self.filters or self.strides != 1:
      self.shortcut = convolutions.ConvBnAct(
          4 * self.filters, 1, strides=self.strides, activation=False,
          bn_options=self.bn_options, name='shortcut')
      self.shortcut.build(input_shape)
    self.conv1.build(input_shape)
    shape = self.conv1.compute_output_shape(input_shape)
    self.conv2.build(shape)
    self.conv3.build(self.conv2.compute_output_shape(shape))

  def call(self, inputs, training=None):
    x = self.conv1(inputs, training=training)
    x = self.conv2(x, training=training)
    x = self.conv3(x, training=training)
    shortcut = inputs
    if self.shortcut is not None:
      shortcut = self.shortcut(inputs, training=training)
    return keras.ops.relu(x + shortcut)

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    children = [('_conv1_bn_act', self.conv1), ('_conv2_bn_act', self.conv2),
                ('_conv3_bn', self.conv3)]
    if self.shortcut is not None:
      children.append(('_shortcut', self.shortcut))
    return children

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, strides=self.strides,
                  dilation_rate=self.dilation_rate,
                  bn_options=self.bn_options.to_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab2')
class ResNet(keras.layers.Layer):
  """The ResNet backbone; call(images) returns a dict of endpoints.

  Input float [B, H, W, 3], already normalised to [-1, 1].
  """

  def __init__(self, stem_type='basic', options=None, bn_options=None,
               **kwargs):
    super().__init__(**kwargs)
    self.stem_type = stem_type
    self.options = options or base.BackboneOptions()
    self.bn_options = bn_options or normalization.BatchNormOptions()
    opts, bn = self.options, self.bn_options
    stem_width = max(8, int(round(64 * opts.stem_width_multiplier)))
    if stem_type == 'basic':
      self.stem = (convolutions.ConvBnAct(stem_width, 7, strides=2,
                                          bn_options=bn, name='stem_conv1'),)
    elif stem_type == 'inception':
      self.stem = (
          convolutions.ConvBnAct(stem_width, 3, strides=2, bn_options=bn,
                                 name='stem_conv1'),
          convolutions.ConvBnAct(stem_width, 3, bn_options=bn,
                                 name='stem_conv2'),
          convolutions.ConvBnAct(2 * stem_width, 3, bn_options=bn,
                                 name='stem_conv3'))
    else:
      raise ValueError(f'Unknown stem_type "{stem_type}"; valid: basic, '
                       'inception.')
    # Tuples, not lists: Keras 3 layers hide list attributes from
    # tf.train.Checkpoint, and the stages would not be saved.
    stages = []
    self.endpoint_specs = {
        'stem': base.EndpointSpec(self.stem[-1].filters, 2)}
    stride, dilation = 2, 1
    for index, (filters, blocks) in enumerate(_RESNET50_STAGES):
      filters = max(8, int(round(filters * opts.width_multiplier)))
      blocks = max(1, int(math.ceil(blocks * opts.layer_multiplier - 1e-6)))
      # Past the output stride the stage's stride becomes atrous rate; as in
      # deeplab2, its first block keeps the previous rate and the new rate
      # starts with the second block.
      first_dilation = dilation
      block_stride = 2
      if stride * 2 > opts.output_stride:
        block_stride = 1
        dilation *= 2
      else:
        stride *= 2
      name = f'res{index + 2}'
      stage = []
      for b in range(blocks):
        stage.append(BottleneckBlock(
            filters, strides=block_stride if b == 0 else 1,
            dilation_rate=first_dilation if b == 0 else dilation,
            bn_options=bn, name=f'{name}_block{b + 1}'))
      stages.append(tuple(stage))
      self.endpoint_specs[name] = base.EndpointSpec(4 * filters, stride)
    self.stages = tuple(stages)

  def build(self, input_shape):
    shape = input_shape
    for layer in self.stem:
      layer.build(shape)
      shape = layer.compute_output_shape(shape)
    for stage in self.stages:
      for block in stage:
        block.build(shape)
        shape = tuple(shape[:-1]) + (4 * block.filters,)

  def call(self, images, training=None):
    x = images
    for layer in self.stem:
      x = layer(x, training=training)
    endpoints = {'stem': x}
    for index, stage in enumerate(self.stages):
      for block in stage:
        x = block(x, training=training)
      endpoints[f'res{index + 2}'] = x
    return endpoints

  def deeplab2_children(self):
    """(deeplab2 scope, sublayer) pairs; see modeling/deeplab2_names.py."""
    if self.stem_type == 'basic':
      children = [('_stem', self.stem[0])]
    else:
      children = list(zip(('_stem/_conv1_bn_act', '_stem/_conv2_bn_act',
                           '_stem/_conv3_bn'), self.stem))
    for index, stage in enumerate(self.stages):
      children += [(f'_stage{index + 2}/_block{b + 1}', block)
                   for b, block in enumerate(stage)]
    return children

  def get_config(self):
    config = super().get_config()
    config.update(stem_type=self.stem_type,
                  options=dataclasses.asdict(self.options),
                  bn_options=self.bn_options.to_config())
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config['options'] = base.BackboneOptions(**config['options'])
    config['bn_options'] = normalization.BatchNormOptions(
        **config['bn_options'])
    return cls(**config)


@base.BACKBONES.register('resnet50')
def build_resnet50(options, bn_options, **kwargs):
  return ResNet('basic', options, bn_options, name='resnet50', **kwargs)


@base.BACKBONES.register('resnet50_beta')
def build_resnet50_beta(options, bn_options, **kwargs):
  return ResNet('inception', options, bn_options, name='resnet50_beta',
                **kwargs)
