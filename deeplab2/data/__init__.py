"""Datasets: descriptors, TFRecords, converters, the input pipeline and targets."""
