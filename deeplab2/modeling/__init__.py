"""Panoptic-DeepLab networks: backbones, layers, the model and its factory."""
