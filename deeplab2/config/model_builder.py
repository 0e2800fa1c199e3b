"""Builds the Panoptic-DeepLab of a ModelOptions message (the config door's
model builder: the layers take plain values)."""

from collections.abc import Sequence

import tensorflow as tf

from deeplab2.config import readers
from deeplab2.modeling import backbones
from deeplab2.modeling import panoptic_deeplab
from deeplab2.modeling import precision
from deeplab2.modeling.layers import aspp as aspp_lib
from deeplab2.modeling.layers import decoder
from deeplab2.modeling.layers import heads
from deeplab2.modeling.layers import normalization
from deeplab2.protos import config_pb2


def build_model(model_options: config_pb2.ModelOptions,
                bn_options: normalization.BatchNormOptions,
                input_size: Sequence[int] | None = None,
                pool_crop_size: Sequence[int] | None = None,
                aspp_dropout_rate: float = 0.1
                ) -> panoptic_deeplab.PanopticDeepLab:
  """Builds the Panoptic-DeepLab of a ModelOptions message.

  Args:
    model_options: ModelOptions with panoptic_deeplab set (validated, or a
      deeplab2 config known to be valid).
    bn_options: the batch-norm options of every layer.
    input_size: optional (height, width) to create the variables with.
    pool_crop_size: the train crop (height, width), which fixes the ASPP
      pooling window as in deeplab2; None pools globally.
    aspp_dropout_rate: the dropout after each ASPP projection in training
      (deeplab2: 0.1; 0 switches it off, e.g. for a deterministic step).

  Returns:
    The model, its layers under `model_options.dtype_policy`.

  Raises:
    ValueError: a backbone that refuses its options.
  """
  with precision.dtype_policy_scope(model_options.dtype_policy or 'float32'):
    backbone = backbones.build_backbone(
        model_options.backbone.name,
        readers.backbone_options(model_options.backbone), bn_options)
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
      decoder_options, _, low_levels, _ = readers.instance_branch_inputs(
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
