"""Our network equals deeplab2's: its checkpoint loads and the outputs match.

For each of the ten configurations in tests/testdata/deeplab2_parity/
(MobileNetV3, ResNet-50, ResNet-50-beta, Wide-ResNet-41, SWideRNet-SAC), the
test
restores the checkpoint deeplab2's trainer would write (keys and shapes from
the manifest, values from value_rule.py; written to a file for two configs,
handed over from memory for the others), runs the stored input
and compares with deeplab2's own outputs: floats within
1e-4 * max(1, max|ref|) + 1e-5, the semantic, panoptic and instance maps
exactly (from deeplab2's floats everywhere; from ours everywhere but at
near-tied semantic logits).
"""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab2 import common
from deeplab2 import config as config_lib
from deeplab2 import label_spec
from deeplab2.modeling import deeplab2_checkpoint
from deeplab2.modeling.layers import normalization
from deeplab2.postprocessing import post_processor
from conftest import TEST_DATA
import deeplab2_reference

PARITY_DIR = os.path.join(TEST_DATA, 'deeplab2_parity')
_MANIFESTS = sorted(glob.glob(os.path.join(PARITY_DIR, 'manifest_*.json')))
# The two largest SWideRNets (377 M and 536 M parameters) take a minute and
# several GB each; they carry the slow marker, and CI runs them.
_SLOW = ('swidernet_sac_1_1_3_', 'swidernet_sac_1_1_4.5_')
_CASES = [pytest.param(p, id=os.path.basename(p),
                       marks=[pytest.mark.slow] if any(
                           s in p for s in _SLOW) else [])
          for p in _MANIFESTS]


# Most configurations' entries go to restore_entries from memory: the same
# restore as from their file (key mapping, shapes, nothing left over) without
# writing and reading 0.1 to 2 GB (3-4 s each for the ResNets here). A
# MobileNetV3, the plain ResNet-50 and
# test_a_checkpoint_of_another_network_is_refused restore from files.
_FROM_FILES = ('cityscapes_mobilenet_v3_small_os32',
               'cityscapes_resnet50_os32_merge_with_pure_tf_func')


def write_reference_checkpoint(manifest, prefix):
  """Writes the model entries of the manifest with tf.raw_ops.SaveV2."""
  return deeplab2_reference.write_reference_checkpoint(
      manifest['model_keys'], prefix)


def test_all_ten_configurations_are_there():
  assert len(_MANIFESTS) == 10


@pytest.mark.parametrize('manifest_path', _CASES)
def test_float_outputs_match_deeplab2(manifest_path, tmp_path,
                                     zero_initializers):
  with open(manifest_path) as f:
    manifest = json.load(f)
  name = manifest['name']
  config = config_lib.parse_experiment_text(manifest['config_text'])
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=tuple(manifest['crop_size_hw']))
  # Parameter counts equal deeplab2's for the same config text.
  trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
  total = sum(int(np.prod(v.shape)) for v in model.weights)
  assert (trainable, total) == (manifest['trainable_params'],
                                manifest['total_params']), name
  if name not in _FROM_FILES:
    report = deeplab2_checkpoint.restore_entries(
        model, deeplab2_reference.ReferenceEntries(manifest['model_keys']),
        name)
  else:
    prefix = write_reference_checkpoint(manifest, str(tmp_path / 'ckpt-1'))
    report = deeplab2_checkpoint.restore(model, prefix)
  assert len(report.restored) == manifest['num_model_keys']
  assert report.ignored == ['global_step/.ATTRIBUTES/VARIABLE_VALUE']

  image = np.asarray(Image.open(os.path.join(PARITY_DIR,
                                             'input_65x129.png')))
  outputs = model(image[None].astype(np.float32), training=False)
  reference = np.load(os.path.join(PARITY_DIR, f'outputs_{name}.npz'))
  for key in (common.PRED_SEMANTIC_LOGITS, common.PRED_CENTER_HEATMAP,
              common.PRED_OFFSET_MAP):
    expected = reference[key]
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max())) + 1e-5
    np.testing.assert_allclose(outputs[key].numpy(), expected, rtol=0,
                               atol=tolerance, err_msg=f'{name}: {key}')

  # The integer maps, through our post-processor with the config's
  # evaluator options and the dataset facts deeplab2 recorded. On deeplab2's
  # own float outputs they must be deeplab2's exactly; on ours too, except
  # where the reference's best two logits are closer than the float
  # tolerance (a near-tie that float noise may flip).
  processor = _post_processor(config, manifest)
  from_reference = processor({
      key: tf.constant(reference[key])
      for key in (common.PRED_SEMANTIC_LOGITS, common.PRED_CENTER_HEATMAP,
                  common.PRED_OFFSET_MAP)})
  from_ours = processor(outputs)
  logits = reference[common.PRED_SEMANTIC_LOGITS]
  tolerance = 1e-4 * max(1.0, float(np.abs(logits).max())) + 1e-5
  top_two = np.sort(logits, axis=-1)[..., -2:]
  near_tie = (top_two[..., 1] - top_two[..., 0]) <= 2 * tolerance
  assert near_tie.mean() < 0.005, f'{name}: {near_tie.sum()} near-ties'
  for key in (common.PRED_SEMANTIC, common.PRED_PANOPTIC,
              common.PRED_INSTANCE):
    np.testing.assert_array_equal(from_reference[key].numpy(), reference[key],
                                  err_msg=f'{name}: {key} (reference floats)')
    ours = from_ours[key].numpy()
    np.testing.assert_array_equal(ours[~near_tie], reference[key][~near_tie],
                                  err_msg=f'{name}: {key}')


def _post_processor(config, manifest):
  evaluator = config.evaluator_options
  return post_processor.PanopticDeepLabPostProcessor(
      post_processor.PostProcessorOptions(
          label_spec=label_spec.LabelSpec(
              num_classes=manifest['num_classes'],
              ignore_label=manifest['ignore_label'],
              label_divisor=manifest['panoptic_label_divisor'],
              thing_class_ids=tuple(manifest['class_has_instances_list'])),
          center_score_threshold=evaluator.center_score_threshold,
          nms_kernel=evaluator.nms_kernel,
          # deeplab2's COCO default (400) exceeds what divisor 256 holds;
          # these images have a handful of centers.
          keep_k_centers=min(evaluator.keep_k_centers,
                             manifest['panoptic_label_divisor'] - 1),
          stuff_area_limit=evaluator.stuff_area_limit))


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
  manifests = {os.path.basename(p): p for p in _MANIFESTS}
  with open(manifests['manifest_cityscapes_resnet50_beta_os32.json']) as f:
    beta = json.load(f)
  with open(manifests[
      'manifest_cityscapes_resnet50_os32_merge_with_pure_tf_func.json']) as f:
    plain = json.load(f)
  config = config_lib.parse_experiment_text(plain['config_text'])
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=(65, 129))
  prefix = write_reference_checkpoint(beta, str(tmp_path / 'ckpt-1'))
  with pytest.raises(ValueError, match=r'model variables have no entry, e.g. '
                     r"\['encoder/_stem/_conv/kernel"):
    deeplab2_checkpoint.restore(model, prefix)
