"""A PanopticDeepLab saved as a Keras 3 `.keras` file loads in a fresh
process that never builds it from a config, with identical outputs."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from deeplab2 import config as config_lib
from conftest import REPO_ROOT
from conftest import SYNTHETIC_CONFIG

# python -c _LOAD_SCRIPT MODEL.keras INPUT.npy OUT.npz
_LOAD_SCRIPT = """
import sys, numpy as np
from deeplab2.modeling import saving
model = saving.load_model(sys.argv[1])
outputs = model(np.load(sys.argv[2]), training=False)
np.savez(sys.argv[3], **{k: np.asarray(v) for k, v in outputs.items()},
         class_name=type(model).__name__)
assert 'deeplab2.config' not in sys.modules, 'built from a config'
"""


def test_a_keras_file_round_trips_exactly(tmp_path):
  parts = config_lib.load_experiment(SYNTHETIC_CONFIG)
  model = parts.build_model(input_size=(33, 33))
  rng = np.random.default_rng(0)
  for variable in model.variables:     # weights and batch-norm statistics
    if variable.dtype != tf.float32:
      continue
    values = rng.normal(0.0, 0.5, variable.shape)
    if 'variance' in variable.path:
      values = 1.0 + np.abs(values)
    variable.assign(values.astype(np.float32))
  images = rng.uniform(-1, 1, (2, 33, 33, 3)).astype(np.float32)
  expected = model(images, training=False)
  path = str(tmp_path / 'model.keras')
  model.save(path)
  np.save(tmp_path / 'images.npy', images)
  subprocess.run([sys.executable, '-c', _LOAD_SCRIPT, path,
                  str(tmp_path / 'images.npy'), str(tmp_path / 'out.npz')],
                 check=True, cwd=str(tmp_path),
                 env={**os.environ, 'PYTHONPATH': REPO_ROOT})
  got = np.load(tmp_path / 'out.npz')
  assert str(got['class_name']) == 'PanopticDeepLab'
  assert sorted(k for k in got.files if k != 'class_name') == sorted(expected)
  for key, value in expected.items():
    np.testing.assert_array_equal(got[key], value.numpy(), err_msg=key)
  assert float(np.abs(expected['semantic_logits'].numpy()).max()) > 0
