"""Parameter counts equal deeplab2's own for the same config text.

The counts come from the manifests in tests/testdata/deeplab2_parity/,
written by deeplab2 itself (see its README). Each network's counts are
checked where it is built anyway, in test_deeplab2_parity.py; this file
pins the manifests themselves.
"""

import glob
import json
import os

from conftest import TEST_DATA

_MANIFESTS = sorted(glob.glob(os.path.join(
    TEST_DATA, 'deeplab2_parity', 'manifest_*.json')))


def test_all_ten_manifests_are_there():
  assert len(_MANIFESTS) == 10


def test_cityscapes_resnet50_os32_is_deeplab2s_pinned_figure():
  """SPEC: 54,973,702 trainable parameters (55,038,534 in all)."""
  manifest = os.path.join(
      TEST_DATA, 'deeplab2_parity',
      'manifest_cityscapes_resnet50_os32_merge_with_pure_tf_func.json')
  with open(manifest) as f:
    reference = json.load(f)
  assert reference['trainable_params'] == 54973702
  assert reference['total_params'] == 55038534
