"""Parameter counts equal deeplab2's own for the same config text.

The counts come from the manifests in tests/testdata/deeplab2_parity/,
written by deeplab2 itself (see its README).
"""

import glob
import json
import os

import numpy as np
import pytest

from deeplab2 import config as config_lib
from deeplab2.modeling.layers import normalization
from conftest import TEST_DATA

_MANIFESTS = sorted(glob.glob(os.path.join(
    TEST_DATA, 'deeplab2_parity', 'manifest_*.json')))


def test_all_ten_manifests_are_there():
  assert len(_MANIFESTS) == 10


@pytest.mark.parametrize('manifest', _MANIFESTS,
                         ids=[os.path.basename(p) for p in _MANIFESTS])
def test_parameter_counts_equal_deeplab2(manifest):
  with open(manifest) as f:
    reference = json.load(f)
  config = config_lib.parse_experiment_text(reference['config_text'])
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=tuple(reference['crop_size_hw']))
  trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
  total = sum(int(np.prod(v.shape)) for v in model.weights)
  assert trainable == reference['trainable_params']
  assert total == reference['total_params']


def test_cityscapes_resnet50_os32_is_deeplab2s_pinned_figure():
  """SPEC: 54,973,702 trainable parameters (55,038,534 in all)."""
  manifest = os.path.join(
      TEST_DATA, 'deeplab2_parity',
      'manifest_cityscapes_resnet50_os32_merge_with_pure_tf_func.json')
  with open(manifest) as f:
    reference = json.load(f)
  assert reference['trainable_params'] == 54973702
  assert reference['total_params'] == 55038534
