"""What every backbone publishes: its endpoints' channels and strides."""

import dataclasses

from deeplab2 import registry
from deeplab2.modeling.layers import normalization

BACKBONES = registry.Registry('backbone')


@dataclasses.dataclass(frozen=True)
class EndpointSpec:
  """One feature map a backbone returns.

  Attributes:
    channels: number of channels.
    stride: input pixels per feature pixel (the output stride at that point).
  """
  channels: int
  stride: int


@dataclasses.dataclass(frozen=True)
class BackboneOptions:
  """Plain backbone values (ModelOptions.backbone in the config).

  Attributes:
    output_stride: 8, 16 or 32; deeper stages use atrous convs instead.
    stem_width_multiplier: scales the stem's channels.
    width_multiplier: scales every other conv's channels.
    layer_multiplier: scales the number of blocks per stage.
    use_squeeze_and_excite: squeeze-and-excite in every residual block
      (MobileNetV3 has its own, always on).
    drop_path_keep_prob: keep probability of a residual branch in the last
      stage while training.
    drop_path_schedule: 'constant' or 'linear' (1.0 at the stem down to
      drop_path_keep_prob at the last stage).
    use_sac_beyond_stride: Switchable Atrous Convolution in the stages whose
      output stride is at least this; 0 or -1 turn it off.
  """
  output_stride: int = 32
  stem_width_multiplier: float = 1.0
  width_multiplier: float = 1.0
  layer_multiplier: float = 1.0
  use_squeeze_and_excite: bool = False
  drop_path_keep_prob: float = 1.0
  drop_path_schedule: str = 'constant'
  use_sac_beyond_stride: int = -1


def refuse_unsupported(name, options, **supported):
  """Fails on BackboneOptions a backbone would otherwise ignore.

  Args:
    name: the backbone, for the message.
    options: BackboneOptions.
    **supported: field=True for each option this backbone applies.

  Raises:
    ValueError: naming the first option set to a non-default value that the
      backbone does not apply.
  """
  defaults = BackboneOptions()
  for field in ('stem_width_multiplier', 'width_multiplier',
                'layer_multiplier', 'use_squeeze_and_excite',
                'drop_path_keep_prob', 'drop_path_schedule',
                'use_sac_beyond_stride'):
    value = getattr(options, field)
    if not supported.get(field) and value != getattr(defaults, field):
      if field == 'use_sac_beyond_stride' and value <= 0:
        continue                        # 0 and -1 both mean off
      raise ValueError(f'Backbone "{name}" does not apply {field} '
                       f'(got {value!r}); leave it at its default.')


def build_backbone(name, options, bn_options, **kwargs):
  """Builds the backbone registered as `name` (KeyError lists valid names)."""
  return BACKBONES.get(name)(options, bn_options, **kwargs)


class BackboneConfigMixin:
  """Restores the `options` and `bn_options` dicts of a backbone's config."""

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config['options'] = BackboneOptions(**config['options'])
    config['bn_options'] = normalization.BatchNormOptions(
        **config['bn_options'])
    return cls(**config)
