"""Converters on the real samples: every segment's class, instance number,
crowd flag and area survive the round trip; every kind of bad input gives
an error naming the file and segment."""

import glob
import importlib
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab2 import common
from deeplab2.data import cityscapes
from deeplab2.data import coco
from deeplab2.data import conversion
from deeplab2.data import conversion_checks
from deeplab2.data import dataset_descriptor
from deeplab2.data import mapillary
from deeplab2.data import panoptic_format
from deeplab2.data import tfrecord
import cityscapes_official
import cli_runner
from conftest import REPO_ROOT, TEST_DATA

COCO_SAMPLE = os.path.join(TEST_DATA, 'coco_panoptic_sample')


def _coco_root(tmp_path, split='val', mutate=None):
  """The COCO sample laid out as a COCO root; mutate(json) edits it."""
  root = tmp_path / 'coco'
  (root / 'annotations').mkdir(parents=True)
  shutil.copytree(os.path.join(COCO_SAMPLE, 'panoptic_examples'),
                  root / 'annotations' / f'panoptic_{split}2017')
  shutil.copytree(os.path.join(COCO_SAMPLE, 'input_images'),
                  root / f'{split}2017')
  with open(os.path.join(COCO_SAMPLE, 'panoptic_examples.json')) as f:
    data = json.load(f)
  if mutate:
    mutate(data, root)
  with open(root / 'annotations' / f'panoptic_{split}2017.json', 'w') as f:
    json.dump(data, f)
  return str(root), data


def _records(output_dir, split):
  paths = sorted(tf.io.gfile.glob(os.path.join(output_dir,
                                               f'{split}-*.tfrecord')))
  return [tfrecord.parse_example(r)
          for r in tf.data.TFRecordDataset(paths)]


def _segment_ids(png_path):
  array = np.asarray(Image.open(png_path).convert('RGB'), np.int64)
  return array[..., 0] + 256 * array[..., 1] + 65536 * array[..., 2]


def _check_round_trip(records, annotations, png_dir, to_class, things,
                      divisor, void):
  assert len(records) == len(annotations)
  by_name = {r[common.FILENAME].numpy().decode(): r for r in records}
  for annotation, name in annotations:
    label = by_name[name][common.PANOPTIC_LABEL].numpy()
    ids = _segment_ids(os.path.join(png_dir, annotation['file_name']))
    assert label.shape == ids.shape
    seen = {}
    for segment in annotation['segments_info']:
      mask = ids == segment['id']
      values = np.unique(label[mask])
      assert len(values) == 1, segment
      cls, instance = divmod(int(values[0]), divisor)
      assert cls == to_class[segment['category_id']]
      assert mask.sum() == segment['area']
      if segment['iscrowd'] or cls not in things:
        assert instance == 0
      else:
        seen.setdefault(cls, []).append(instance)
    for instances in seen.values():     # 1..n per class, in JSON order
      assert instances == list(range(1, len(instances) + 1))
    assert (label[ids == 0] == void).all()


def test_coco_sample_round_trip(tmp_path):
  root, data = _coco_root(tmp_path)
  output = str(tmp_path / 'out')
  path, reports = conversion.convert_dataset(
      lambda split: coco.find_split(root, split), ['val'], output,
      num_shards=2)
  descriptor = dataset_descriptor.get_descriptor(path)
  assert descriptor == dataclasses_replace(
      dataset_descriptor.get_descriptor('coco_panoptic'),
      splits_to_sizes={'val': 2})
  categories = sorted(data['categories'], key=lambda c: c['id'])
  to_class = {c['id']: i + 1 for i, c in enumerate(categories)}
  names = {im['id']: im['file_name'] for im in data['images']}
  _check_round_trip(
      _records(output, 'val'),
      [(a, names[a['image_id']]) for a in data['annotations']],
      os.path.join(root, 'annotations', 'panoptic_val2017'), to_class,
      set(descriptor.thing_class_ids), 256, 0)
  assert reports[0].written == 2 and not reports[0].skipped
  # JPEG bytes are kept as they are.
  record = _records(output, 'val')[0]
  assert record[common.IMAGE].shape[-1] == 3


def dataclasses_replace(descriptor, **changes):
  import dataclasses  # pylint: disable=g-import-not-at-top
  return dataclasses.replace(descriptor, **changes)


def _cityscapes_root(tmp_path, with_json=True):
  root = tmp_path / 'cityscapes'
  cityscapes_official.copy_sample_as_val(root, with_json)
  return str(root)


def test_cityscapes_sample_round_trip(tmp_path):
  root = _cityscapes_root(tmp_path)
  output = str(tmp_path / 'out')
  path, _ = conversion.convert_dataset(
      lambda split: cityscapes.find_split(root, split), ['val'], output,
      num_shards=1)
  assert dataset_descriptor.get_descriptor(path).splits_to_sizes == {'val': 1}
  with open(os.path.join(root, 'gtFine',
                         'cityscapes_panoptic_val_trainId.json')) as f:
    annotations = json.load(f)['annotations']
  _check_round_trip(
      _records(output, 'val'),
      [(a, a['image_id'] + '_leftImg8bit.png') for a in annotations],
      os.path.join(root, 'gtFine', 'cityscapes_panoptic_val_trainId'),
      {c: c for c in range(19)}, set(range(11, 19)), 1000, 255000)


def test_missing_cityscapes_panoptic_files_say_how_to_make_them(tmp_path):
  root = _cityscapes_root(tmp_path, with_json=False)
  with pytest.raises(FileNotFoundError, match='csCreatePanopticImgs '
                     '--use-train-id'):
    cityscapes.find_split(root, 'val')


def _mutation_cases():
  def stray_png_id(data, root):
    data['annotations'][0]['segments_info'].pop()

  def no_pixels(data, root):
    data['annotations'][0]['segments_info'].append(
        {'id': 1234567, 'category_id': 1, 'iscrowd': 0, 'area': 10})

  def wrong_area(data, root):
    data['annotations'][0]['segments_info'][0]['area'] += 1

  def missing_image(data, root):
    os.remove(root / 'val2017' / data['images'][0]['file_name'])

  def unreadable_png(data, root):
    png = data['annotations'][0]['file_name']
    (root / 'annotations' / 'panoptic_val2017' / png).write_bytes(b'not png')

  def unknown_category(data, root):
    data['annotations'][0]['segments_info'][0]['category_id'] = 999

  return [(stray_png_id, r'have no entry in segments_info'),
          (no_pixels, r'segment 1234567: has no pixels in the PNG'),
          (wrong_area, r'segment \d+: area \d+ in the JSON, \d+ pixels'),
          (missing_image, r'000000142238.jpg: image file is missing'),
          (unreadable_png, r'cannot read the panoptic PNG'),
          (unknown_category, r'category_id 999 is not in the categories')]


@pytest.mark.parametrize('mutate,message', _mutation_cases(),
                         ids=[m.__name__ for m, _ in _mutation_cases()])
def test_bad_samples_are_errors_or_counted_skips(tmp_path, mutate, message):
  root, _ = _coco_root(tmp_path, mutate=mutate)
  output = str(tmp_path / 'out')

  def find(split):
    return coco.find_split(root, split)

  with pytest.raises(panoptic_format.SampleError, match=message):
    conversion.convert_dataset(find, ['val'], output, num_shards=1)
  assert not tf.io.gfile.glob(os.path.join(output, 'val-*'))   # nothing left
  _, reports = conversion.convert_dataset(find, ['val'], output, num_shards=1,
                                          skip_bad_samples=True)
  assert reports[0].written == 1 and len(reports[0].skipped) == 1
  assert 'panoptic_val2017' in reports[0].skipped[0] or (
      'val2017' in reports[0].skipped[0])


def test_instances_reaching_the_label_divisor_are_an_error(tmp_path):
  root, _ = _coco_root(tmp_path)
  with pytest.raises(panoptic_format.SampleError,
                     match=r'class 1 has 2 instances, reaching label_divisor '
                     r'2'):
    conversion.convert_dataset(
        lambda split: coco.find_split(root, split, name='tiny',
                                      label_divisor=2), ['val'],
        str(tmp_path / 'out'), num_shards=1)


def test_existing_output_needs_overwrite(tmp_path):
  root, _ = _coco_root(tmp_path)
  output = str(tmp_path / 'out')

  def find(split):
    return coco.find_split(root, split)

  conversion.convert_dataset(find, ['val'], output, num_shards=2)
  with pytest.raises(FileExistsError, match='pass --overwrite'):
    conversion.convert_dataset(find, ['val'], output, num_shards=1)
  conversion.convert_dataset(find, ['val'], output, num_shards=1,
                             overwrite=True)
  assert len(tf.io.gfile.glob(os.path.join(output, 'val-*'))) == 1


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'CMYK', 'I;16', 'P'])
def test_image_modes_become_rgb(tmp_path, mode):
  rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
  image = Image.fromarray(rgb)
  if mode == 'I;16':
    image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
  else:
    image = image.convert(mode)
  path = str(tmp_path / ('x.tif' if mode == 'CMYK' else 'x.png'))
  image.save(path)
  encoded, image_format, array = panoptic_format._read_image(path)  # pylint: disable=protected-access
  assert array.shape == (5, 7, 3) and array.dtype == np.uint8
  assert image_format == 'png'
  decoded = np.asarray(Image.open(__import__('io').BytesIO(encoded)))
  np.testing.assert_array_equal(decoded, array)
  if mode == 'I;16':
    np.testing.assert_array_equal(array[..., 1], rgb[..., 0])


def test_mapillary_layouts(tmp_path):
  for version, sub, name in (('v1.2', 'panoptic', 'panoptic_2018.json'),
                             ('v2.0', 'v2.0/panoptic', 'panoptic_2020.json')):
    root = tmp_path / version
    split_dir = root / 'validation'
    (split_dir / sub).mkdir(parents=True)
    (split_dir / 'images').mkdir()
    with open(os.path.join(COCO_SAMPLE, 'panoptic_examples.json')) as f:
      data = json.load(f)
    with open(split_dir / sub / name, 'w') as f:
      json.dump(data, f)
    samples, descriptor, category_map = mapillary.find_split(str(root), 'val')
    assert descriptor.name == f'mapillary_vistas_{version}'
    assert descriptor.label_spec == category_map.label_spec
    assert descriptor.label_divisor == mapillary.DEFAULT_LABEL_DIVISOR
    assert samples[0].label_path.startswith(str(split_dir / sub))
    assert samples[0].image_path.startswith(str(split_dir / 'images'))
  with pytest.raises(FileNotFoundError, match='No Mapillary Vistas panoptic '
                     'JSON'):
    mapillary.find_split(str(tmp_path), 'train')


def test_custom_dataset_cli_with_two_workers(tmp_path, capsys):
  """The COCO command with explicit paths, as a custom dataset would use it
  (main() in this process; its two workers are processes)."""
  root, _ = _coco_root(tmp_path)
  output = str(tmp_path / 'custom')
  result = cli_runner.run_main(_script('build_coco_data').main, [
      '--splits=train',
      f'--panoptic_json={root}/annotations/panoptic_val2017.json',
      f'--panoptic_dir={root}/annotations/panoptic_val2017',
      f'--image_dir={root}/val2017', f'--output_dir={output}',
      '--dataset_name=my_data', '--num_shards=1', '--num_workers=2'], capsys)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'train: 2 records in 1 shards' in result.stdout
  descriptor = dataset_descriptor.get_descriptor(
      os.path.join(output, 'dataset_descriptor.json'))
  assert descriptor.name == 'my_data' and descriptor.num_classes == 134
  assert len(_records(output, 'train')) == 2


def _script(name):
  """A command line (deeplab2.cli), to call its main() in this process."""
  return importlib.import_module(f'deeplab2.cli.{name}')


def _descriptor_at(output_dir):
  return dataset_descriptor.get_descriptor(
      os.path.join(output_dir, dataset_descriptor.DESCRIPTOR_FILENAME))


def test_the_descriptor_name_defaults_to_coco_or_the_output_folder(tmp_path):
  root, _ = _coco_root(tmp_path)
  main = _script('build_coco_data').main
  coco_output = str(tmp_path / 'coco_out')
  assert main([f'--coco_root={root}', '--splits=val', '--num_shards=1',
               f'--output_dir={coco_output}']) == 0
  assert _descriptor_at(coco_output).name == 'coco_panoptic'
  custom_output = str(tmp_path / 'my_images')
  assert main(['--splits=train', '--num_shards=1',
               f'--panoptic_json={root}/annotations/panoptic_val2017.json',
               f'--panoptic_dir={root}/annotations/panoptic_val2017',
               f'--image_dir={root}/val2017',
               f'--output_dir={custom_output}/']) == 0
  descriptor = _descriptor_at(custom_output)
  assert descriptor.name == 'my_images'
  assert descriptor.label_divisor == coco.DEFAULT_LABEL_DIVISOR == 256


def test_a_label_divisor_other_than_the_builtin_is_refused(tmp_path, capsys):
  root, _ = _coco_root(tmp_path)
  output = str(tmp_path / 'out')
  message = (r'--label_divisor=1000 differs from label_divisor=256 of the '
             r'built-in descriptor "coco_panoptic": drop --label_divisor, or '
             r'pass another --dataset_name')
  status = _script('build_coco_data').main(
      [f'--coco_root={root}', '--splits=val', f'--output_dir={output}',
       '--label_divisor=1000'])
  assert status == 1
  error = capsys.readouterr().err
  assert error.startswith('error: --label_divisor=1000 differs')
  assert error.count('\n') == 1
  assert not os.path.exists(output)
  with pytest.raises(ValueError, match=message):
    conversion.convert_dataset(
        lambda split: coco.find_split(root, split, label_divisor=1000),
        ['val'], output, num_shards=1)
  assert not os.path.exists(output)
  conversion_checks.check_builtin_divisor('coco_panoptic', 256)  # the same
  conversion_checks.check_builtin_divisor('my_data', 1000)  # not built in
  with pytest.raises(ValueError, match=r'--label_divisor=256 differs from '
                     r'label_divisor=1000 of the built-in descriptor '
                     r'"cityscapes_panoptic"'):
    conversion_checks.check_builtin_divisor('cityscapes_panoptic', 256)


def test_other_categories_under_a_builtin_name_are_refused(tmp_path):
  def rename_last(data, root):
    del root
    max(data['categories'], key=lambda c: c['id'])['name'] = 'renamed'

  root, _ = _coco_root(tmp_path, mutate=rename_last)
  output = str(tmp_path / 'out')
  with pytest.raises(ValueError, match=r'The data has other labels than the '
                     r'built-in descriptor "coco_panoptic" \(these vs '
                     r'built-in: 1 class names, first class 133: "renamed" vs '
                     r'"rug-merged"\): pass another --dataset_name'):
    conversion.convert_dataset(lambda split: coco.find_split(root, split),
                               ['val'], output, num_shards=1)
  conversion.convert_dataset(
      lambda split: coco.find_split(root, split, name='renamed_coco'),
      ['val'], output, num_shards=1)
  assert _descriptor_at(output).class_names[133] == 'renamed'


def test_other_labels_are_refused_while_other_splits_stay(tmp_path):
  train_root, _ = _coco_root(tmp_path / 'a', split='train')
  val_root, _ = _coco_root(tmp_path / 'b', split='val')
  output = str(tmp_path / 'out')

  def find(root, label_divisor=None):
    return lambda split: coco.find_split(root, split, name='mine',
                                         label_divisor=label_divisor)

  conversion.convert_dataset(find(train_root), ['train'], output,
                             num_shards=1)
  before = sorted(os.listdir(output))
  with pytest.raises(ValueError, match=r'dataset_descriptor.json has other '
                     r'labels \(label_divisor 1000 vs 256, new vs existing\) '
                     r'and the train shards beside it stay and would not '
                     r'match: convert all splits together, or into another '
                     r'--output_dir'):
    conversion.convert_dataset(find(val_root, 1000), ['val'], output,
                               num_shards=1, overwrite=True)
  assert sorted(os.listdir(output)) == before
  assert _descriptor_at(output).splits_to_sizes == {'train': 2}
  # The same labels: the val split joins without --overwrite, the train
  # size is kept.
  conversion.convert_dataset(find(val_root), ['val'], output, num_shards=1)
  assert _descriptor_at(output).splits_to_sizes == {'train': 2, 'val': 2}
  # Converting val again needs --overwrite; the refusal says what stays.
  with pytest.raises(FileExistsError) as refused:
    conversion.convert_dataset(find(val_root), ['val'], output, num_shards=1)
  assert str(refused.value) == (
      f'{output} already holds split val (1 shard(s)); pass --overwrite to '
      'replace it: the shards of train are kept and dataset_descriptor.json '
      'is updated with the new sizes.')



def test_cityscapes_categories_come_from_the_json_when_present(tmp_path):
  root = _cityscapes_root(tmp_path)
  path = os.path.join(root, 'gtFine', 'cityscapes_panoptic_val_trainId.json')
  with open(path) as f:
    data = json.load(f)
  builtin = dataset_descriptor.get_descriptor('cityscapes_panoptic')
  data['categories'] = [
      {'id': i, 'name': f'class{i}', 'color': [i, i, i],
       'isthing': int(i in builtin.thing_class_ids)} for i in range(19)]
  with open(path, 'w') as f:
    json.dump(data, f)
  _, descriptor, _ = cityscapes.find_split(root, 'val')
  assert descriptor.class_names[3] == 'class3'
  assert descriptor.colormap[5] == (5, 5, 5)
  assert descriptor.thing_class_ids == builtin.thing_class_ids
  data['categories'][0]['id'] = 40
  with open(path, 'w') as f:
    json.dump(data, f)
  with pytest.raises(ValueError, match='are not train ids'):
    cityscapes.find_split(root, 'val')


def test_cityscapes_cli_writes_the_names_the_zoo_configs_read(tmp_path,
                                                              capsys):
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.cli import build_cityscapes_data  # pylint: disable=g-import-not-at-top
  root = _cityscapes_root(tmp_path)
  output = tmp_path / 'tfrecord'
  result = cli_runner.run_main(build_cityscapes_data.main, [
      f'--cityscapes_root={root}', '--splits=val', f'--output_dir={output}',
      '--num_shards=1'], capsys)
  assert result.returncode == 0, result.stderr
  assert sorted(os.listdir(output)) == [
      'dataset_descriptor.json', 'val_fine-00000-of-00001.tfrecord']
  assert dataset_descriptor.get_descriptor(
      str(output / 'dataset_descriptor.json')).splits_to_sizes == {
          'val_fine': 1}
  # Every Cityscapes zoo config reads these names: only the folder differs.
  for path in glob.glob(os.path.join(REPO_ROOT, 'configs', 'cityscapes',
                                     '*', '*.textproto')):
    config, _ = config_lib.load_experiment_config(path)
    pattern = os.path.basename(config.eval_dataset_options.file_pattern[0])
    assert glob.glob(str(output / pattern)) == [
        str(output / 'val_fine-00000-of-00001.tfrecord')], path
    assert os.path.basename(config.train_dataset_options.file_pattern[0]) == (
        'train_fine-*.tfrecord')
