"""Panoptic-DeepLab networks: backbones, layers and the model (plain values
in; the config is read by deeplab2.config)."""
