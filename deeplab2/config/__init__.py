"""Experiment configs: the one door from a textproto to the built parts.

  parts = config.load_experiment('configs/....textproto', num_replicas=1)
  model = parts.build_model()

`parts.py` is the only reader of ExperimentOptions; `validation.py` the only
home of its checks.
"""

from deeplab2.config.errors import ConfigError
from deeplab2.config.loader import load_experiment_config
from deeplab2.config.loader import parse_experiment_text
from deeplab2.config.parts import build_model
from deeplab2.config.parts import ExperimentParts
from deeplab2.config.parts import from_message
from deeplab2.config.parts import load_experiment
