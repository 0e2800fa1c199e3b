"""Builds the model from the config: the only place that reads ModelOptions.

Everything below the factory takes plain values.
"""

import contextlib

import keras
import tensorflow as tf

from deeplab2.config import validation
from deeplab2.modeling import backbones
from deeplab2.modeling import panoptic_deeplab
from deeplab2.modeling.layers import decoder
from deeplab2.modeling.layers import heads
from deeplab2.modeling.layers import normalization


def bn_options_from_solver(solver_options, synchronized=None):
  """BatchNormOptions from SolverOptions (sync BN unless told otherwise)."""
  return normalization.BatchNormOptions(
      momentum=solver_options.batchnorm_momentum,
      epsilon=solver_options.batchnorm_epsilon,
      synchronized=(solver_options.use_sync_batchnorm
                    if synchronized is None else synchronized))


def _decoder_from_options(decoder_options, low_levels, bn_options,
                          endpoint_specs, name):
  keys = [low.feature_key for low in low_levels]
  for key in [decoder_options.feature_key] + keys:
    if key not in endpoint_specs:
      raise ValueError(f'{name}: the backbone has no endpoint "{key}"; it has '
                       f'{", ".join(sorted(endpoint_specs))}.')
  return decoder.PanopticDeepLabDecoder(
      high_level_key=decoder_options.feature_key,
      low_level_keys=keys,
      low_level_channels=[low.channels_project for low in low_levels],
      aspp_channels=decoder_options.aspp_channels,
      atrous_rates=list(decoder_options.atrous_rates),
      decoder_channels=decoder_options.decoder_channels,
      decoder_conv_type=decoder_options.decoder_conv_type,
      aspp_use_only_1x1_proj_conv=decoder_options.aspp_use_only_1x1_proj_conv,
      aspp_conv_type=decoder_options.aspp_conv_type,
      bn_options=bn_options, name=name)


@contextlib.contextmanager
def dtype_policy_scope(name):
  """Layers created inside take the Keras dtype policy `name`."""
  if name not in validation.DTYPE_POLICIES:
    raise ValueError(f'Unknown dtype_policy "{name}"; valid: '
                     f'{", ".join(validation.DTYPE_POLICIES)}.')
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def build_model(model_options, bn_options, crop_size=None):
  """Builds (and, given crop_size, creates the variables of) the model.

  Args:
    model_options: config_pb2.ModelOptions with panoptic_deeplab set.
    bn_options: normalization.BatchNormOptions.
    crop_size: optional (height, width) to build the variables with.

  Returns:
    panoptic_deeplab.PanopticDeepLab, its layers under
    `model_options.dtype_policy`.
  """
  with dtype_policy_scope(model_options.dtype_policy or 'float32'):
    return _build_model(model_options, bn_options, crop_size)


def _build_model(model_options, bn_options, crop_size):
  backbone_options = model_options.backbone
  backbone = backbones.build_backbone(
      backbone_options.name,
      backbones.BackboneOptions(
          output_stride=backbone_options.output_stride,
          stem_width_multiplier=backbone_options.stem_width_multiplier,
          width_multiplier=backbone_options.backbone_width_multiplier,
          layer_multiplier=backbone_options.backbone_layer_multiplier,
          use_squeeze_and_excite=backbone_options.use_squeeze_and_excite,
          drop_path_keep_prob=backbone_options.drop_path_keep_prob,
          drop_path_schedule=backbone_options.drop_path_schedule,
          use_sac_beyond_stride=backbone_options.use_sac_beyond_stride),
      bn_options)
  specs = backbone.endpoint_specs
  pdl = model_options.panoptic_deeplab
  semantic_decoder = _decoder_from_options(
      model_options.decoder, pdl.low_level, bn_options, specs,
      'semantic_decoder')
  semantic_head = heads.PredictionHead(
      pdl.semantic_head.output_channels, pdl.semantic_head.head_channels,
      pdl.semantic_head.head_conv_type, bn_options=bn_options,
      name='semantic_head')
  instance_parts = {}
  if pdl.instance.enable:
    instance = pdl.instance
    instance_decoder_options = (
        instance.instance_decoder_override
        if instance.HasField('instance_decoder_override')
        else model_options.decoder)
    low_levels = instance.low_level_override or pdl.low_level
    instance_parts = {
        'instance_decoder': _decoder_from_options(
            instance_decoder_options, low_levels, bn_options, specs,
            'instance_decoder'),
        'center_head': heads.PredictionHead(
            instance.center_head.output_channels,
            instance.center_head.head_channels,
            instance.center_head.head_conv_type, bn_options=bn_options,
            name='center_head'),
        'offset_head': heads.PredictionHead(
            instance.regression_head.output_channels,
            instance.regression_head.head_channels,
            instance.regression_head.head_conv_type, bn_options=bn_options,
            name='offset_head'),
    }
  model = panoptic_deeplab.PanopticDeepLab(
      backbone, semantic_decoder, semantic_head, name='panoptic_deeplab',
      **instance_parts)
  if crop_size is not None:
    model(tf.zeros([1, crop_size[0], crop_size[1], 3]), training=False)
  return model
