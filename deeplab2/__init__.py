"""Panoptic-DeepLab for TensorFlow 2 / Keras 3.

  from deeplab2 import Predictor
  predictor = Predictor.from_saved_model('runs/synthetic/export')

`Predictor` is imported on first use: `import deeplab2` alone does not
import TensorFlow (the converters' worker processes rely on it). That first
use imports TensorFlow without its C++ start-up banner
(utils/quiet_tensorflow.py); its warnings and errors still show.
"""

from typing import Any

__version__ = '0.1.0'


def __getattr__(name: str) -> Any:
  if name == 'Predictor':
    from deeplab2.utils import quiet_tensorflow  # pylint: disable=g-import-not-at-top
    quiet_tensorflow.import_tensorflow()
    from deeplab2.serving.predictor import Predictor  # pylint: disable=g-import-not-at-top
    return Predictor
  raise AttributeError(f'module "deeplab2" has no attribute "{name}"')
