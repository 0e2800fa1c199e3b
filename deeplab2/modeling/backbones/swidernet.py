"""Wide-ResNet-41 (Naive-Student) and SWideRNet (Chen et al., 2020).

`wide_resnet41` is SWideRNet-(1, 1, 1): a 3x3 stem, stages of 3, 3, 6, 3
basic blocks and a last stage of 3 wide bottlenecks (1x1 512, 3x3 1024,
1x1 2048). `swidernet` scales it with stem_width_multiplier,
backbone_width_multiplier and backbone_layer_multiplier; SWideRNet-SAC
adds Switchable Atrous Convolution from `use_sac_beyond_stride` on. As in
deeplab2, drop path applies from stride 4 on. See residual.py.
"""

from typing import Any

from deeplab2.modeling.backbones import base
from deeplab2.modeling.backbones import residual
from deeplab2.modeling.layers import normalization

_SWIDERNET_BLOCKS = (3, 6, 3, 3)
_DROP_PATH_BEYOND_STRIDE = 4


def _build(name: str) -> base.BuildFn:
  def build(options: base.BackboneOptions,
            bn_options: normalization.BatchNormOptions,
            **kwargs: Any) -> residual.ResidualNetwork:
    return residual.ResidualNetwork(
        'wider_resnet', _SWIDERNET_BLOCKS, options, bn_options,
        drop_path_beyond_stride=_DROP_PATH_BEYOND_STRIDE, name=name, **kwargs)
  return build


for _name in ('wide_resnet41', 'swidernet'):
  base.register_backbone(_name, residual.ResidualNetwork.OUTPUT_STRIDES,
                         residual.ResidualNetwork.APPLIED_OPTIONS)(
                             _build(_name))
