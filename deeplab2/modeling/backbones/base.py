"""What every backbone publishes: its endpoints' channels and strides."""

import dataclasses

from deeplab2 import registry

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
  """
  output_stride: int = 32
  stem_width_multiplier: float = 1.0
  width_multiplier: float = 1.0
  layer_multiplier: float = 1.0


def build_backbone(name, options, bn_options, **kwargs):
  """Builds the backbone registered as `name` (KeyError lists valid names)."""
  return BACKBONES.get(name)(options, bn_options, **kwargs)
