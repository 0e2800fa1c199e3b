"""Experiment configs: the one door from a textproto to the built parts.

  parts = config.load_experiment('configs/....textproto', num_replicas=1)
  model = parts.build_model()

`parts.py` is the only reader of ExperimentOptions (with `model_builder.py`
for ModelOptions); `validation.py` and the `*_checks.py` modules beside it
are the only home of its checks. `check_eval_scales` is the rule for
test-time scales from any source (a command line's --eval_scales too).
"""

from deeplab2.config.errors import ConfigError
from deeplab2.config.evaluator_checks import check_eval_scales
from deeplab2.config.evaluator_checks import eval_scales_problem
from deeplab2.config.loader import load_experiment_config
from deeplab2.config.loader import parse_experiment_text
from deeplab2.config.model_builder import build_model
from deeplab2.config.overrides import ConfigFile
from deeplab2.config.parts import ConfigSource
from deeplab2.config.parts import ExperimentParts
from deeplab2.config.parts import from_message
from deeplab2.config.parts import load_experiment
