"""Dataset descriptors: a LabelSpec plus a name and split sizes, whose JSON
files keep their format."""

import dataclasses
import hashlib
import json

import pytest

from deeplab2 import label_spec
from deeplab2.data import dataset_descriptor

# The JSON of the built-in descriptors as written before descriptors became
# LabelSpecs (sha256 of json.dumps(to_json_dict(), indent=2)); Cityscapes'
# split sizes since they carry deeplab2's names (train_fine, val_fine,
# test_fine), as the converter's shards do.
_JSON_SHA256 = {
    'synthetic_panoptic':
        'aa80a20b110289847a2f02422124b79992d14e6ae74df6f18d6503601b8bdc7c',
    'cityscapes_panoptic':
        'dea743fc81e0f578d311b699d35066746d51faf01b10af1bd4f093d6781890fa',
    'coco_panoptic':
        'df1a3061380874f6767a067e367c7b962f244c616d110a59868e5271ac74e76b',
}


@pytest.mark.parametrize('name', sorted(_JSON_SHA256))
def test_builtin_json_is_unchanged(name):
  descriptor = dataset_descriptor.DATASETS.get(name)
  text = json.dumps(descriptor.to_json_dict(), indent=2)
  assert hashlib.sha256(text.encode()).hexdigest() == _JSON_SHA256[name]


def test_json_round_trip(tmp_path):
  descriptor = dataclasses.replace(
      dataset_descriptor.DATASETS.get('synthetic_panoptic'),
      splits_to_sizes={'train': 3, 'val': 1})
  path = str(tmp_path / dataset_descriptor.DESCRIPTOR_FILENAME)
  descriptor.write_json(path)
  with open(path) as f:
    data = json.load(f)
  assert list(data) == ['name', 'num_classes', 'ignore_label',
                        'label_divisor', 'thing_class_ids', 'class_names',
                        'colormap', 'splits_to_sizes']
  assert data == {
      'name': 'synthetic_panoptic', 'num_classes': 5, 'ignore_label': 255,
      'label_divisor': 1000, 'thing_class_ids': [2, 3, 4],
      'class_names': ['wall', 'floor', 'disc', 'box', 'triangle'],
      'colormap': [[180, 90, 60], [90, 140, 90], [230, 50, 50],
                   [50, 90, 230], [230, 200, 40]],
      'splits_to_sizes': {'train': 3, 'val': 1}}
  again = dataset_descriptor.get_descriptor(path)
  assert again == descriptor
  assert again.label_spec == descriptor.label_spec


def test_a_descriptor_is_a_label_spec_and_exposes_the_plain_one():
  descriptor = dataset_descriptor.DATASETS.get('coco_panoptic')
  assert isinstance(descriptor, label_spec.LabelSpec)
  spec = descriptor.label_spec
  assert type(spec) is label_spec.LabelSpec
  assert (spec.num_classes, spec.ignore_label, spec.label_divisor) == (
      134, 0, 256)
  assert spec.thing_class_ids == descriptor.thing_class_ids
  assert spec.class_names == descriptor.class_names
  assert spec.colormap == descriptor.colormap
  assert descriptor.is_thing(1) and not descriptor.is_thing(0)
  assert descriptor.name == 'coco_panoptic'
  assert descriptor.splits_to_sizes == {'train': 118287, 'val': 5000}


def test_invalid_descriptors_name_the_dataset_and_the_file(tmp_path):
  with pytest.raises(ValueError, match=r'Dataset "tiny": 1 class names for '
                     r'num_classes=2'):
    dataset_descriptor.DatasetDescriptor(
        num_classes=2, ignore_label=255, label_divisor=1000,
        thing_class_ids=(), class_names=('a',), name='tiny')
  data = dataset_descriptor.DATASETS.get('synthetic_panoptic').to_json_dict()
  data['thing_class_ids'] = [2, 9]
  path = tmp_path / 'bad.json'
  path.write_text(json.dumps(data))
  with pytest.raises(ValueError, match=r'bad.json: Dataset '
                     r'"synthetic_panoptic": thing class ids \[9\] are '
                     r'outside 0..4'):
    dataset_descriptor.get_descriptor(str(path))


def test_a_relative_descriptor_path_is_looked_up_in_both_places(
    tmp_path, monkeypatch):
  config_dir = tmp_path / 'configs'
  config_dir.mkdir()
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ValueError) as error:
    dataset_descriptor.get_descriptor('data/mine.json', str(config_dir))
  assert str(error.value) == (
      'Cannot read dataset descriptor data/mine.json: no such file in the '
      f'working directory ({tmp_path}/data/mine.json) or beside the config '
      f'({config_dir}/data/mine.json).')
  # Beside the config, then in the working directory, which comes first.
  (config_dir / 'data').mkdir()
  descriptor = dataset_descriptor.DATASETS.get('synthetic_panoptic')
  (config_dir / 'data' / 'mine.json').write_text(
      json.dumps(descriptor.to_json_dict()))
  assert dataset_descriptor.get_descriptor(
      'data/mine.json', str(config_dir)).num_classes == descriptor.num_classes
  (tmp_path / 'data').mkdir()
  (tmp_path / 'data' / 'mine.json').write_text('{')
  with pytest.raises(ValueError, match=r'Cannot read dataset descriptor '
                     r'data/mine\.json: Expecting'):
    dataset_descriptor.get_descriptor('data/mine.json', str(config_dir))
