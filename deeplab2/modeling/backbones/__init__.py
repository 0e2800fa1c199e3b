"""Backbones behind a registry; importing this package registers them all."""

# pylint: disable=unused-import
from deeplab2.modeling.backbones import mobilenet
from deeplab2.modeling.backbones import resnet
from deeplab2.modeling.backbones import swidernet
from deeplab2.modeling.backbones import xception
# pylint: enable=unused-import
from deeplab2.modeling.backbones.base import BACKBONES
from deeplab2.modeling.backbones.base import BackboneEntry
from deeplab2.modeling.backbones.base import BackboneOptions
from deeplab2.modeling.backbones.base import build_backbone
from deeplab2.modeling.backbones.base import EndpointSpec
