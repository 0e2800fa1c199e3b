"""The model-zoo configs in configs/ are deeplab2's, network for network.

Each Cityscapes and COCO Panoptic-DeepLab config must load and validate, and
its model options must equal those of the config deeplab2 itself ran for the
parity data (tests/testdata/deeplab2_parity/), so a deeplab2 zoo checkpoint
means the same network here.
"""

import glob
import json
import os

import pytest

from deeplab2 import config as config_lib
from deeplab2.data import dataset_descriptor
from conftest import REPO_ROOT, TEST_DATA

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# Every Panoptic-DeepLab config but the paper's Xception-71, which deeplab2
# never had.
_CONFIGS = sorted(p for p in glob.glob(os.path.join(
    _ROOT, 'configs', '*', 'panoptic_deeplab', '*.textproto'))
                  if 'xception' not in os.path.basename(p))
# Zoo rows without parity data: the same settings as a sibling config with
# another backbone.
_SIBLINGS = {'coco/resnet50_os16': ('coco_resnet50_beta_os16', 'resnet50'),
             'coco/resnet50_beta_os32': ('coco_resnet50_os32',
                                         'resnet50_beta')}


def _key(path):
  dataset = os.path.basename(os.path.dirname(os.path.dirname(path)))
  return f'{dataset}/{os.path.basename(path)[:-len(".textproto")]}'


def test_every_zoo_row_has_a_config():
  assert len(_CONFIGS) == 12


def test_every_shipped_config_names_its_experiment():
  shipped = glob.glob(os.path.join(REPO_ROOT, 'configs', '**',
                                   '*.textproto'), recursive=True)
  assert len(shipped) == 15
  names = [config_lib.load_experiment_config(path)[0].experiment_name
           for path in shipped]
  assert all(names) and len(set(names)) == len(names), names


@pytest.mark.parametrize('path', _CONFIGS, ids=[_key(p) for p in _CONFIGS])
def test_zoo_config_is_deeplab2s(path):
  parts = config_lib.load_experiment(path, num_replicas=1)
  config = parts.config
  key = _key(path)
  manifest_name, backbone = _SIBLINGS.get(
      key, (key.replace('/', '_'), None))
  with open(os.path.join(TEST_DATA, 'deeplab2_parity',
                         f'manifest_{manifest_name}.json')) as f:
    manifest = json.load(f)
  reference = config_lib.parse_experiment_text(manifest['config_text'])
  reference.model_options.ClearField('initial_checkpoint')
  if backbone:
    reference.model_options.backbone.name = backbone
  assert config.model_options == reference.model_options
  assert config.trainer_options == reference.trainer_options
  descriptor = parts.descriptor('train')
  if (not reference.evaluator_options.HasField('keep_k_centers') and
      reference.evaluator_options.keep_k_centers >= descriptor.label_divisor):
    # Ours: deeplab2's default would overflow the label divisor (COCO).
    assert config.evaluator_options.keep_k_centers == (
        descriptor.label_divisor - 1)
    reference.evaluator_options.keep_k_centers = descriptor.label_divisor - 1
  assert config.evaluator_options == reference.evaluator_options
  assert descriptor.num_classes == manifest['num_classes']
  assert descriptor.ignore_label == manifest['ignore_label']
  assert descriptor.label_divisor == manifest['panoptic_label_divisor']
  assert list(descriptor.thing_class_ids) == manifest[
      'class_has_instances_list']


def test_coco_panoptic_descriptor_numbers_categories_like_deeplab2():
  coco = dataset_descriptor.get_descriptor('coco_panoptic')
  assert coco.num_classes == 134 and coco.ignore_label == 0
  assert coco.class_names[1] == 'person' and coco.class_names[80] == (
      'toothbrush')
  assert coco.class_names[133] == 'rug-merged'
  assert coco.stuff_class_ids == tuple(range(81, 134))


def test_coco_input_options_reach_the_pipeline():
  """deeplab2's 641-pixel resize and AutoAugment policy are applied."""
  path = os.path.join(_ROOT, 'configs', 'coco', 'panoptic_deeplab',
                      'resnet50_os32.textproto')
  parts = config_lib.load_experiment(path, num_replicas=1)
  train = parts.pipeline_options('train')
  assert train.autoaugment_policy_name == (
      'simple_classification_policy_magnitude_scale_0.2')
  assert (train.min_resize_value, train.max_resize_value) == (641, 641)
  evaluation = parts.pipeline_options('eval')
  assert evaluation.autoaugment_policy_name == ''
  config = parts.config
  config.train_dataset_options.augmentations.autoaugment_policy_name = (
      'rand_augment')
  with pytest.raises(config_lib.ConfigError,
                     match='autoaugment_policy_name: unknown policy '
                     '"rand_augment"; valid: .*simple_classification_policy'):
    config_lib.from_message(config)
