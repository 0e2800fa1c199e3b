"""Plain values read from parts of the experiment message, shared by the
checks and the builders of the config door."""

from collections.abc import Sequence

from deeplab2.modeling import backbones
from deeplab2.protos import config_pb2

# BackboneOptions (plain) field -> ModelOptions.BackboneOptions field.
BACKBONE_FIELDS = {
    'stem_width_multiplier': 'stem_width_multiplier',
    'width_multiplier': 'backbone_width_multiplier',
    'layer_multiplier': 'backbone_layer_multiplier',
    'use_squeeze_and_excite': 'use_squeeze_and_excite',
    'drop_path_keep_prob': 'drop_path_keep_prob',
    'drop_path_schedule': 'drop_path_schedule',
    'use_sac_beyond_stride': 'use_sac_beyond_stride',
}


def backbone_options(proto: config_pb2.ModelOptions.BackboneOptions
                     ) -> backbones.BackboneOptions:
  """backbones.BackboneOptions of a ModelOptions.BackboneOptions message."""
  return backbones.BackboneOptions(
      output_stride=proto.output_stride,
      **{plain: getattr(proto, field)
         for plain, field in BACKBONE_FIELDS.items()})


def instance_branch_inputs(
    model_options: config_pb2.ModelOptions
) -> tuple[config_pb2.DecoderOptions, str,
           Sequence[config_pb2.LowLevelOptions], str]:
  """What the instance decoder is built from, with the fields that say so.

  The instance branch takes `instance_decoder_override` and
  `low_level_override` when set, else the semantic branch's decoder and
  low-level options.

  Returns:
    (decoder options, its dotted field, low-level options, their field).
  """
  pdl = model_options.panoptic_deeplab
  prefix = 'model_options.panoptic_deeplab.instance'
  decoder, decoder_field = model_options.decoder, 'model_options.decoder'
  if pdl.instance.HasField('instance_decoder_override'):
    decoder = pdl.instance.instance_decoder_override
    decoder_field = f'{prefix}.instance_decoder_override'
  low_levels: Sequence[config_pb2.LowLevelOptions] = pdl.low_level
  low_level_field = 'model_options.panoptic_deeplab.low_level'
  if pdl.instance.low_level_override:
    low_levels = pdl.instance.low_level_override
    low_level_field = f'{prefix}.low_level_override'
  return decoder, decoder_field, low_levels, low_level_field


def single_resize_value(values: Sequence[int]) -> int:
  """The one non-zero value of a repeated resize field, or 0."""
  values = [v for v in values if v]
  return values[0] if values else 0
