"""Panoptic-DeepLab post-processing in pure TF: center NMS, grouping, merge."""
