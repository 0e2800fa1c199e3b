"""Weights deeplab2's reference runs used, written as deeplab2's trainer saves
them: keys and shapes from a manifest, values from the parity folder's
value_rule.py (both parity folders use the same rule)."""

import hashlib
import importlib.util
import os

import numpy as np
import tensorflow as tf

from conftest import TEST_DATA

VALUE_RULE_PATH = os.path.join(TEST_DATA, 'deeplab2_parity', 'value_rule.py')


def load_module(path, name):
  """Imports the Python file at `path` as module `name` (no sys.path edit)."""
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def value_rule(path=VALUE_RULE_PATH):
  return load_module(path, 'deeplab2_value_rule')


def reference_values(model_keys, rule_path=VALUE_RULE_PATH):
  """{key: float32 array} of every entry of `model_keys` (manifest rows
  with 'key' and 'shape')."""
  rule = value_rule(rule_path)
  return {k['key']: rule.value_for(k['key'], tuple(k['shape']))
          for k in model_keys}


def values_sha256(model_keys, values):
  """sha256 over the arrays as little-endian float32 bytes, C order,
  concatenated in the order of `model_keys`: the digest the manifests and
  summaries record (it catches a numpy whose random stream changed)."""
  digest = hashlib.sha256()
  for row in model_keys:
    digest.update(np.ascontiguousarray(values[row['key']], '<f4').tobytes())
  return digest.hexdigest()


_GLOBAL_STEP = 'global_step/.ATTRIBUTES/VARIABLE_VALUE'


class ReferenceEntries:
  """The entries write_reference_checkpoint would write, held in memory:
  what deeplab2_checkpoint.restore_entries reads from a checkpoint file,
  without writing and reading gigabytes (SaveV2 of SWideRNet-4.5's 536 M
  parameters alone takes 44 s on the 2-core CI machines).

  Without `values`, each value is drawn when it is read, and nothing keeps
  it: the next draw reuses its memory. First touches of fresh memory cost
  more than the draws on those machines (SWideRNet-4.5: 16 s with all 2 GB
  held).
  """

  def __init__(self, model_keys, values=None):
    self._shapes = {k['key']: list(k['shape']) for k in model_keys}
    self._shapes[_GLOBAL_STEP] = []
    self._values = values
    self._rule = value_rule() if values is None else None

  def get_variable_to_shape_map(self):
    return dict(self._shapes)

  def get_tensor(self, key):
    if key == _GLOBAL_STEP:
      return np.array(1, np.int64)
    if self._rule is None:
      return self._values[key]
    return self._rule.value_for(key, tuple(self._shapes[key]))


def write_reference_checkpoint(model_keys, prefix, values=None):
  """Writes the entries of `model_keys` with tf.raw_ops.SaveV2, plus a
  global step as deeplab2's trainer does; returns `prefix`."""
  values = values if values is not None else reference_values(model_keys)
  names = [k['key'] for k in model_keys]
  tensors = [tf.constant(values[name]) for name in names]
  tensors.append(tf.constant(1, tf.int64))
  names.append(_GLOBAL_STEP)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names), tensors=tensors)
  return prefix
