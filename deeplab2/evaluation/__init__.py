"""Metrics: panoptic quality and mIoU, streaming over images."""
