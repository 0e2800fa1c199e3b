"""deeplab2's ResNet-50 (`resnet50`, 7x7 stem) and ResNet-50-beta
(`resnet50_beta`, Inception stem of three 3x3 convs); see residual.py."""

from deeplab2.modeling.backbones import base
from deeplab2.modeling.backbones import residual

_RESNET50_BLOCKS = (3, 4, 6, 3)


@base.register_backbone('resnet50', residual.ResidualNetwork.OUTPUT_STRIDES,
                        residual.ResidualNetwork.APPLIED_OPTIONS)
def build_resnet50(options, bn_options, **kwargs):
  return residual.ResidualNetwork('resnet', _RESNET50_BLOCKS, options,
                                  bn_options, name='resnet50', **kwargs)


@base.register_backbone('resnet50_beta',
                        residual.ResidualNetwork.OUTPUT_STRIDES,
                        residual.ResidualNetwork.APPLIED_OPTIONS)
def build_resnet50_beta(options, bn_options, **kwargs):
  return residual.ResidualNetwork('resnet_beta', _RESNET50_BLOCKS, options,
                                  bn_options, name='resnet50_beta', **kwargs)
