"""Batch-norm settings shared by every layer of one model."""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class BatchNormOptions:
  """Plain batch-norm values (SolverOptions in the config).

  Attributes:
    momentum: moving-average momentum (0.99 in the paper).
    epsilon: variance epsilon (0.001).
    synchronized: synchronise statistics across replicas.
  """
  momentum: float = 0.99
  epsilon: float = 0.001
  synchronized: bool = False

  def make(self, name):
    return keras.layers.BatchNormalization(
        momentum=self.momentum, epsilon=self.epsilon,
        synchronized=self.synchronized, name=name)

  def to_config(self):
    return dataclasses.asdict(self)


class BatchNormConfigMixin:
  """Restores a `bn_options` dict of get_config() into BatchNormOptions."""

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    if isinstance(config.get('bn_options'), dict):
      config['bn_options'] = BatchNormOptions(**config['bn_options'])
    return cls(**config)
