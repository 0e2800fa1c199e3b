"""deeplab2's ResNet-50 (`resnet50`, 7x7 stem) and ResNet-50-beta
(`resnet50_beta`, Inception stem of three 3x3 convs); see residual.py."""

from typing import Any

from deeplab2.modeling.backbones import base
from deeplab2.modeling.backbones import residual
from deeplab2.modeling.layers import normalization

_RESNET50_BLOCKS = (3, 4, 6, 3)


@base.register_backbone('resnet50', residual.ResidualNetwork.OUTPUT_STRIDES,
                        residual.ResidualNetwork.APPLIED_OPTIONS)
def build_resnet50(options: base.BackboneOptions,
                   bn_options: normalization.BatchNormOptions,
                   **kwargs: Any) -> residual.ResidualNetwork:
  return residual.ResidualNetwork('resnet', _RESNET50_BLOCKS, options,
                                  bn_options, name='resnet50', **kwargs)


@base.register_backbone('resnet50_beta',
                        residual.ResidualNetwork.OUTPUT_STRIDES,
                        residual.ResidualNetwork.APPLIED_OPTIONS)
def build_resnet50_beta(options: base.BackboneOptions,
                        bn_options: normalization.BatchNormOptions,
                        **kwargs: Any) -> residual.ResidualNetwork:
  return residual.ResidualNetwork('resnet_beta', _RESNET50_BLOCKS, options,
                                  bn_options, name='resnet50_beta', **kwargs)
