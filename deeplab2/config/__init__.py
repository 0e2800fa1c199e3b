"""Experiment configs: load a textproto, validate it, report clear errors."""

import os

from deeplab2.config.errors import ConfigError
from deeplab2.config.loader import load_experiment_config
from deeplab2.config.loader import parse_experiment_text
from deeplab2.config.validation import validate_experiment


def load_and_validate(path, num_replicas=1):
  """Loads the textproto at `path` and validates it.

  Relative descriptor paths in `DatasetOptions.dataset` are taken from the
  working directory, or else from the config file's directory.

  Returns:
    (config_pb2.ExperimentOptions, dict split -> DatasetDescriptor).
  """
  config, text = load_experiment_config(path)
  descriptors = validate_experiment(
      config, path=path, text=text, num_replicas=num_replicas,
      descriptor_base_dir=os.path.dirname(os.path.abspath(path)))
  return config, descriptors
