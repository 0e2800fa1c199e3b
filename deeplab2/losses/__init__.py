"""Losses of Panoptic-DeepLab."""
