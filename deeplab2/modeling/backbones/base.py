"""What every backbone publishes: its endpoints' channels and strides."""

from collections.abc import Callable, Collection, Iterable
import dataclasses
from typing import Any, TypeVar

import keras

from deeplab2 import registry
from deeplab2.modeling.layers import normalization

BACKBONES = registry.Registry('backbone')

# build(options, bn_options, **layer kwargs) -> the backbone layer.
BuildFn = Callable[..., keras.layers.Layer]
_Build = TypeVar('_Build', bound=BuildFn)
_Config = TypeVar('_Config', bound='BackboneConfigMixin')


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


# The BackboneOptions fields a backbone may or may not apply (output_stride
# is always applied, within the backbone's own OUTPUT_STRIDES).
OPTIONAL_FIELDS = ('stem_width_multiplier', 'width_multiplier',
                   'layer_multiplier', 'use_squeeze_and_excite',
                   'drop_path_keep_prob', 'drop_path_schedule',
                   'use_sac_beyond_stride')
# Every backbone here publishes these endpoints (their channels and strides
# are in the built backbone's `endpoint_specs`).
ENDPOINTS = ('res1', 'res2', 'res3', 'res4', 'res5')


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
  """What a registered backbone says about itself before it is built.

  Attributes:
    build: callable(options, bn_options, **kwargs) -> the backbone layer.
    output_strides: the output strides it can be built with.
    endpoints: the names of the endpoints its call returns.
    applied_options: the OPTIONAL_FIELDS of BackboneOptions it applies; a
      non-default value of any other is refused.
  """
  build: BuildFn
  output_strides: tuple[int, ...]
  endpoints: tuple[str, ...]
  applied_options: frozenset[str]


def register_backbone(name: str, output_strides: Iterable[int],
                      applied_options: Iterable[str],
                      endpoints: Iterable[str] = ENDPOINTS
                      ) -> Callable[[_Build], _Build]:
  """Decorator: registers a build function as backbone `name`."""
  def register(build: _Build) -> _Build:
    BACKBONES.register(name, BackboneEntry(
        build, tuple(output_strides), tuple(endpoints),
        frozenset(applied_options)))
    return build
  return register


def non_default_option(options: BackboneOptions,
                       applied_options: Collection[str]
                       ) -> tuple[str, Any] | None:
  """The first option set away from its default that is not applied.

  Returns:
    (field, value), or None when every set option is applied.
  """
  defaults = BackboneOptions()
  for field in OPTIONAL_FIELDS:
    value = getattr(options, field)
    if field in applied_options or value == getattr(defaults, field):
      continue
    if field == 'use_sac_beyond_stride' and value <= 0:
      continue                          # 0 and -1 both mean off
    return field, value
  return None


def check_options(name: str, options: BackboneOptions,
                  output_strides: Collection[int],
                  applied_options: Collection[str]) -> None:
  """Fails on options a backbone cannot apply.

  Args:
    name: the backbone, for the message.
    options: BackboneOptions.
    output_strides: the output strides it supports.
    applied_options: the OPTIONAL_FIELDS it applies.

  Raises:
    ValueError: an output stride it cannot do, or an option set to a
      non-default value that it would otherwise ignore.
  """
  if options.output_stride not in output_strides:
    raise ValueError(f'Backbone "{name}": output_stride must be one of '
                     f'{tuple(output_strides)}, got {options.output_stride}.')
  unapplied = non_default_option(options, applied_options)
  if unapplied:
    field, value = unapplied
    raise ValueError(f'Backbone "{name}" does not apply {field} '
                     f'(got {value!r}); leave it at its default.')


def build_backbone(name: str, options: BackboneOptions,
                   bn_options: normalization.BatchNormOptions,
                   **kwargs: Any) -> keras.layers.Layer:
  """Builds the backbone registered as `name`.

  Args:
    name: a registered backbone ('resnet50', ...).
    options: its BackboneOptions.
    bn_options: its batch norm.
    **kwargs: passed to the layer (e.g. dtype).

  Returns:
    The backbone layer: call(images float [B, H, W, 3]) returns
    {endpoint name: float [B, H / stride, W / stride, channels]}, as its
    `endpoint_specs` says.

  Raises:
    KeyError: an unknown name (the message lists the valid ones).
    ValueError: options the backbone cannot apply.
  """
  entry: BackboneEntry = BACKBONES.get(name)
  check_options(name, options, entry.output_strides, entry.applied_options)
  return entry.build(options, bn_options, **kwargs)


class BackboneConfigMixin:
  """Restores the `options` and `bn_options` dicts of a backbone's config."""

  @classmethod
  def from_config(cls: type[_Config], config: dict[str, Any]) -> _Config:
    config = dict(config)
    config['options'] = BackboneOptions(**config['options'])
    config['bn_options'] = normalization.BatchNormOptions(
        **config['bn_options'])
    return cls(**config)
