"""The eval dataset's tf.distribute input options: eval batches (file names,
labels of a shape that varies per batch) stay in host memory, which a TPU
needs; training batches keep the default options.

Where the two replicas' batches then lie under MirroredStrategy is checked
in test_mirrored.py (logical devices need their own process).
"""

import tensorflow as tf

from deeplab2 import common
from deeplab2.training import distribution
from deeplab2.training import experiment


def test_eval_input_options_keep_batches_on_the_host():
  options = distribution.eval_input_options()
  assert options.experimental_fetch_to_device is False


def test_experiment_distributes_eval_on_the_host_and_train_by_default(
    tiny_config_path, tmp_path, monkeypatch):
  run = experiment.Experiment(tiny_config_path, str(tmp_path / 'model'))
  strategy = run.strategy
  calls = []
  original = strategy.distribute_datasets_from_function

  def spy(dataset_fn, options=None):
    calls.append(options)
    return original(dataset_fn, options=options)

  monkeypatch.setattr(strategy, 'distribute_datasets_from_function', spy)
  eval_dataset = run.dataset('eval')
  run.dataset('train')
  assert calls == [distribution.eval_input_options(), None]
  # The batch still carries what the evaluator reads on the host.
  batch = next(iter(eval_dataset))
  assert batch[common.FILENAME].dtype == tf.string
  assert batch[common.IMAGE].device.endswith('CPU:0')
