"""Checks of model_options: the backbone, decoders and heads.

Valid values come from the code they govern: the backbone registry (names,
each backbone's output strides, endpoints and applied options), the
convolution types, the drop-path schedules and the dtype policies.
"""

from collections.abc import Sequence

import tensorflow as tf

from deeplab2.config import checker as checker_lib
from deeplab2.config import readers
from deeplab2.modeling import backbones
from deeplab2.modeling import precision
from deeplab2.modeling.backbones import base as backbone_base
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import drop_path
from deeplab2.protos import config_pb2


def check_model(check: checker_lib.Checker,
                model: config_pb2.ModelOptions) -> None:
  """Checks `model_options`.

  Raises:
    ConfigError: the first problem found.
  """
  check.require(model.HasField('panoptic_deeplab'),
                'model_options.panoptic_deeplab',
                'this package builds Panoptic-DeepLab; set panoptic_deeplab')
  check.require(model.dtype_policy in precision.DTYPE_POLICIES,
                'model_options.dtype_policy',
                f'"{model.dtype_policy}" is not one of '
                f'{precision.DTYPE_POLICIES}')
  if model.initial_checkpoint:
    path = model.initial_checkpoint
    check.require(
        tf.io.gfile.exists(path) or tf.io.gfile.exists(path + '.index'),
        'model_options.initial_checkpoint',
        f'"{path}" is neither a weights file nor a checkpoint prefix (no '
        f'{path}.index)')
  entry = _check_backbone(check, model.backbone)
  pdl = model.panoptic_deeplab
  _check_decoder(check, model.decoder, pdl.low_level, entry,
                 'model_options.decoder',
                 'model_options.panoptic_deeplab.low_level')
  _check_head(check, pdl.semantic_head,
              'model_options.panoptic_deeplab.semantic_head')
  if pdl.instance.enable:
    prefix = 'model_options.panoptic_deeplab.instance'
    decoder, decoder_field, low_levels, low_level_field = (
        readers.instance_branch_inputs(model))
    _check_decoder(check, decoder, low_levels, entry, decoder_field,
                   low_level_field)
    _check_head(check, pdl.instance.center_head, f'{prefix}.center_head',
                expected_outputs=1)
    _check_head(check, pdl.instance.regression_head,
                f'{prefix}.regression_head', expected_outputs=2)


def _check_backbone(check, backbone):
  """Checks the backbone options; returns its registry entry."""
  field = 'model_options.backbone'
  names = backbones.BACKBONES.names()
  check.require(backbone.name in names, f'{field}.name',
                f'unknown backbone "{backbone.name}"; valid: '
                f'{", ".join(names)}')
  entry = backbones.BACKBONES.get(backbone.name)
  check.require(backbone.output_stride in entry.output_strides,
                f'{field}.output_stride',
                f'{backbone.output_stride}: backbone "{backbone.name}" can '
                f'be built with output strides {entry.output_strides}')
  unapplied = backbone_base.non_default_option(
      readers.backbone_options(backbone), entry.applied_options)
  if unapplied:
    name = readers.BACKBONE_FIELDS[unapplied[0]]
    check.fail(f'{field}.{name}',
               f'{unapplied[1]!r}: backbone "{backbone.name}" does not apply '
               f'{name}; leave it at its default')
  for name in ('stem_width_multiplier', 'backbone_width_multiplier',
               'backbone_layer_multiplier'):
    check.require_positive(getattr(backbone, name), f'{field}.{name}')
  check.require(0 < backbone.drop_path_keep_prob <= 1,
                f'{field}.drop_path_keep_prob',
                f'must be in (0, 1], got {backbone.drop_path_keep_prob}')
  check.require(backbone.drop_path_schedule in drop_path.SCHEDULES,
                f'{field}.drop_path_schedule',
                f'"{backbone.drop_path_schedule}" is not one of '
                f'{drop_path.SCHEDULES}')
  return entry


def _check_decoder(check: checker_lib.Checker,
                   decoder: config_pb2.DecoderOptions,
                   low_levels: Sequence[config_pb2.LowLevelOptions],
                   entry, field: str, low_level_field: str) -> None:
  endpoints = ', '.join(entry.endpoints)
  check.require(decoder.feature_key in entry.endpoints,
                f'{field}.feature_key',
                f'"{decoder.feature_key}" is not an endpoint of the backbone; '
                f'it has {endpoints}')
  for index, low in enumerate(low_levels):
    check.require(low.feature_key in entry.endpoints,
                  f'{low_level_field}.feature_key',
                  f'"{low.feature_key}" is not an endpoint of the backbone; '
                  f'it has {endpoints}', index)
    check.require(low.channels_project > 0,
                  f'{low_level_field}.channels_project',
                  f'must be positive, got {low.channels_project}', index)
  check.require(decoder.decoder_channels > 0, f'{field}.decoder_channels',
                f'must be positive, got {decoder.decoder_channels}')
  check.require(decoder.aspp_channels > 0, f'{field}.aspp_channels',
                f'must be positive, got {decoder.aspp_channels}')
  for name in ('decoder_conv_type', 'aspp_conv_type'):
    value = getattr(decoder, name)
    check.require(value in convolutions.CONV_TYPES, f'{field}.{name}',
                  f'"{value}" is not one of {convolutions.CONV_TYPES}')
  if not decoder.aspp_use_only_1x1_proj_conv:
    check.require(len(decoder.atrous_rates) == 3, f'{field}.atrous_rates',
                  f'needs 3 rates, got {list(decoder.atrous_rates)}')
    check.require(all(r > 0 for r in decoder.atrous_rates),
                  f'{field}.atrous_rates',
                  f'rates must be positive, got {list(decoder.atrous_rates)}')


def _check_head(check: checker_lib.Checker, head: config_pb2.HeadOptions,
                field: str, expected_outputs: int | None = None) -> None:
  check.require(head.output_channels > 0, f'{field}.output_channels',
                f'must be positive, got {head.output_channels}')
  if expected_outputs is not None:
    check.require(head.output_channels == expected_outputs,
                  f'{field}.output_channels',
                  f'must be {expected_outputs}, got {head.output_channels}')
  check.require(head.head_channels > 0, f'{field}.head_channels',
                f'must be positive, got {head.head_channels}')
  check.require(head.head_conv_type in convolutions.CONV_TYPES,
                f'{field}.head_conv_type',
                f'"{head.head_conv_type}" is not one of '
                f'{convolutions.CONV_TYPES}')
