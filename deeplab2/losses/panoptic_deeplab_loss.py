"""The combined Panoptic-DeepLab loss: weighted CE + MSE center + L1 offset."""

import dataclasses

import tensorflow as tf

from deeplab2 import common
from deeplab2 import registry
from deeplab2.losses import names
from deeplab2.losses import per_pixel

SEMANTIC_LOSSES = registry.Registry('semantic loss')
CENTER_LOSSES = registry.Registry('center loss')
REGRESSION_LOSSES = registry.Registry('regression loss')
for _registry, _names, _functions in (
    (SEMANTIC_LOSSES, names.SEMANTIC_LOSS_NAMES,
     (per_pixel.bootstrapped_cross_entropy,)),
    (CENTER_LOSSES, names.CENTER_LOSS_NAMES, (per_pixel.weighted_mse,)),
    (REGRESSION_LOSSES, names.REGRESSION_LOSS_NAMES, (per_pixel.weighted_l1,))):
  for _name, _function in zip(_names, _functions, strict=True):
    _registry.register(_name, _function)

SEMANTIC_LOSS = 'semantic_loss'
CENTER_LOSS = 'center_loss'
REGRESSION_LOSS = 'regression_loss'
TOTAL_LOSS = 'total_loss'


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """Plain loss values (the config's LossOptions, read by deeplab2.config)."""
  ignore_label: int
  semantic_loss_name: str = 'softmax_cross_entropy'
  semantic_weight: float = 1.0
  semantic_top_k_percent: float = 0.2
  center_loss_name: str = 'mse'
  center_weight: float = 200.0
  center_top_k_percent: float = 1.0
  regression_loss_name: str = 'l1'
  regression_weight: float = 0.01
  regression_top_k_percent: float = 1.0


class PanopticDeepLabLoss:
  """Computes per-sample losses from model outputs and targets."""

  def __init__(self, options, has_instance_branch=True):
    self.options = options
    self.has_instance_branch = has_instance_branch
    self._semantic = SEMANTIC_LOSSES.get(options.semantic_loss_name)
    self._center = CENTER_LOSSES.get(options.center_loss_name)
    self._regression = REGRESSION_LOSSES.get(options.regression_loss_name)

  @property
  def loss_names(self):
    """The keys __call__ returns."""
    if self.has_instance_branch:
      return (SEMANTIC_LOSS, CENTER_LOSS, REGRESSION_LOSS, TOTAL_LOSS)
    return (SEMANTIC_LOSS, TOTAL_LOSS)

  def __call__(self, outputs, batch):
    """Returns a dict of float32 [B] losses (already weighted) and the total.

    Args:
      outputs: model outputs (deeplab2.common PRED_* keys).
      batch: targets (deeplab2.common GT_* and *_WEIGHT keys).
    """
    o = self.options
    losses = {SEMANTIC_LOSS: o.semantic_weight * self._semantic(
        batch[common.GT_SEMANTIC], outputs[common.PRED_SEMANTIC_LOGITS],
        batch[common.SEMANTIC_WEIGHT], o.semantic_top_k_percent,
        o.ignore_label)}
    if self.has_instance_branch:
      losses[CENTER_LOSS] = o.center_weight * self._center(
          batch[common.GT_CENTER_HEATMAP], outputs[common.PRED_CENTER_HEATMAP],
          batch[common.CENTER_WEIGHT], o.center_top_k_percent)
      losses[REGRESSION_LOSS] = o.regression_weight * self._regression(
          batch[common.GT_OFFSET], outputs[common.PRED_OFFSET_MAP],
          batch[common.OFFSET_WEIGHT], o.regression_top_k_percent)
    losses[TOTAL_LOSS] = tf.add_n(list(losses.values()))
    return losses
