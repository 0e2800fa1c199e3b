"""Bad data inputs: each is one pinned `error:` line, exit status 1, no
traceback, and nothing created where the output would go.

A dataset descriptor is checked by JSON type, never coerced (through
trainer/train.py, which reads it from the config); a malformed COCO
panoptic JSON names the file, the entry and the key; an image whose header
claims too many pixels is refused before it is decoded; the synthetic
builder's flags are range-checked before any work; --num_shards must fit
under the open-file limit; a config that is not UTF-8 names the file.
"""

import dataclasses
import json
import os
import pathlib
import resource
import shutil
import struct
import zlib

import pytest

from deeplab2.cli import build_cityscapes_data
from deeplab2.cli import build_coco_data
from deeplab2.cli import build_synthetic_data
from deeplab2.cli import train
from deeplab2.data import conversion_checks
from deeplab2.data import dataset_descriptor
from deeplab2.data import tfrecord
import cityscapes_official
import cli_runner
from conftest import SYNTHETIC_CONFIG, TEST_DATA

COCO_SAMPLE = os.path.join(TEST_DATA, 'coco_panoptic_sample')
_SYNTHETIC_JSON = dataset_descriptor.DATASETS.get(
    'synthetic_panoptic').to_json_dict()


@dataclasses.dataclass
class Run:
  """A command to run on a bad input, and where its output would go."""
  main: object
  argv: list
  output: str
  fields: dict = dataclasses.field(default_factory=dict)


def _write_json(path, data):
  with open(path, 'w') as f:
    json.dump(data, f)


def _train_on_descriptor(data):
  """Trains on a config whose train dataset is a descriptor JSON `data`."""
  def setup(tmp, monkeypatch):
    del monkeypatch
    descriptor = os.path.join(tmp, 'dataset_descriptor.json')
    _write_json(descriptor, data)
    with open(SYNTHETIC_CONFIG) as f:
      text = f.read().replace('dataset: "synthetic_panoptic"',
                              f'dataset: "{descriptor}"', 1)
    config = os.path.join(tmp, 'experiment.textproto')
    with open(config, 'w') as f:
      f.write(text)
    line = text.splitlines().index(f'  dataset: "{descriptor}"') + 1
    model_dir = os.path.join(tmp, 'model')
    return Run(train.main, [f'--config_file={config}', '--mode=train',
                            f'--model_dir={model_dir}'], model_dir,
               {'at': f'{config}:{line}: train_dataset_options.dataset: '
                      f'{descriptor}'})
  return setup


def _descriptor(**changes):
  return _train_on_descriptor(dict(_SYNTHETIC_JSON, **changes))


def _descriptor_without(key):
  return _train_on_descriptor(
      {k: v for k, v in _SYNTHETIC_JSON.items() if k != key})


def _coco_run(tmp, json_path, image_dir=None):
  output = os.path.join(tmp, 'out')
  return Run(build_coco_data.main, [
      f'--panoptic_json={json_path}',
      f'--panoptic_dir={COCO_SAMPLE}/panoptic_examples',
      f'--image_dir={image_dir or COCO_SAMPLE + "/input_images"}',
      '--splits=train', f'--output_dir={output}'], output)


def _coco_json(mutate):
  """Converts the COCO sample with its JSON edited by mutate(data), which
  edits it in place (returning None) or returns the JSON to write."""
  def setup(tmp, monkeypatch):
    del monkeypatch
    with open(os.path.join(COCO_SAMPLE, 'panoptic_examples.json')) as f:
      data = json.load(f)
    replacement = mutate(data)
    path = os.path.join(tmp, 'panoptic.json')
    _write_json(path, data if replacement is None else replacement)
    return _coco_run(tmp, path)
  return setup


def _cityscapes_json(mutate):
  """Converts the Cityscapes sample (as split val) with its panoptic JSON
  edited in place by mutate(data)."""
  def setup(tmp, monkeypatch):
    del monkeypatch
    root = pathlib.Path(tmp) / 'cityscapes'
    cityscapes_official.copy_sample_as_val(root)
    path = root / 'gtFine' / 'cityscapes_panoptic_val_trainId.json'
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    output = os.path.join(tmp, 'out')
    return Run(build_cityscapes_data.main, [
        f'--cityscapes_root={root}', '--splits=val',
        f'--output_dir={output}'], output, {'json': str(path)})
  return setup


def _set(entry, key, value):
  entry[key] = value


def _drop(entry, key):
  del entry[key]


def _png_header(width, height):
  """A tiny 1-bit grey PNG whose header says width x height."""
  def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data)))
  return (b'\x89PNG\r\n\x1a\n' +
          chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0,
                                     0)) +
          chunk(b'IDAT', zlib.compress(b'\0' * 16)) + chunk(b'IEND', b''))


def _coco_bomb(width, height):
  """Converts the COCO sample with its first image a PNG header of
  width x height pixels (PIL's DecompressionBombError above twice its
  MAX_IMAGE_PIXELS, its DecompressionBombWarning above once)."""
  def setup(tmp, monkeypatch):
    del monkeypatch
    image_dir = os.path.join(tmp, 'images')
    shutil.copytree(os.path.join(COCO_SAMPLE, 'input_images'), image_dir)
    with open(os.path.join(image_dir, '000000142238.jpg'), 'wb') as f:
      f.write(_png_header(width, height))
    return _coco_run(tmp, os.path.join(COCO_SAMPLE, 'panoptic_examples.json'),
                     image_dir)
  return setup


def _synthetic(*flags):
  def setup(tmp, monkeypatch):
    del monkeypatch
    output = os.path.join(tmp, 'out')
    return Run(build_synthetic_data.main,
               [f'--output_dir={output}', *flags], output)
  return setup


def _few_open_files(setup):
  """`setup` under an open-file limit of 256 with 10 files open."""
  def limited(tmp, monkeypatch):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    monkeypatch.setattr(resource, 'getrlimit', lambda kind: (256, hard))
    monkeypatch.setattr(conversion_checks, '_open_file_count', lambda: 10)
    return setup(tmp, monkeypatch)
  return limited


def _coco_sample_with(*flags):
  def setup(tmp, monkeypatch):
    del monkeypatch
    run = _coco_run(tmp, os.path.join(COCO_SAMPLE, 'panoptic_examples.json'))
    run.argv += list(flags)
    return run
  return setup


def _latin1_config(tmp, monkeypatch):
  del monkeypatch
  config = os.path.join(tmp, 'experiment.textproto')
  with open(config, 'wb') as f:
    f.write(b'# A config saved as Latin-1\nexperiment_name: "caf\xe9"\n')
  model_dir = os.path.join(tmp, 'model')
  return Run(train.main, [f'--config_file={config}', '--mode=train',
                          f'--model_dir={model_dir}'], model_dir,
             {'config': config})


_BOMB = ('error: {tmp}/images/000000142238.jpg: the image claims more than '
         '89478485 pixels (PIL\'s limit against decompression bombs); not '
         'decoded.')

# (id, setup(tmp, monkeypatch) -> Run, the one stderr line). The line is
# formatted (braces doubled) with tmp, the test's folder, and the Run's
# fields.
BAD_INPUTS = [
    # 1. Dataset descriptor JSON, read through the config by the trainer.
    ('descriptor_class_names_string', _descriptor(class_names='abcde'),
     'error: {at}: "class_names" must be a list of strings, got "abcde" '
     '(string).'),
    ('descriptor_num_classes_float', _descriptor(num_classes=5.7),
     'error: {at}: "num_classes" must be an integer, got 5.7 (float).'),
    ('descriptor_label_divisor_string', _descriptor(label_divisor='1000'),
     'error: {at}: "label_divisor" must be an integer, got "1000" (string).'),
    ('descriptor_ignore_label_bool', _descriptor(ignore_label=True),
     'error: {at}: "ignore_label" must be an integer, got true (boolean).'),
    ('descriptor_thing_id_bool', _descriptor(thing_class_ids=[2, True, 4]),
     'error: {at}: "thing_class_ids"[1] must be an integer, got true '
     '(boolean).'),
    ('descriptor_null', _train_on_descriptor(None),
     'error: {at}: a dataset descriptor must be a JSON object, got null.'),
    ('descriptor_number', _train_on_descriptor(5),
     'error: {at}: a dataset descriptor must be a JSON object, got 5 '
     '(integer).'),
    ('descriptor_list', _train_on_descriptor([_SYNTHETIC_JSON]),
     'error: {at}: a dataset descriptor must be a JSON object, got '
     '[{{"name": "synthetic_panoptic", "num ... (list).'),
    ('descriptor_missing_key', _descriptor_without('colormap'),
     'error: {at}: the required key "colormap" is missing.'),
    # 2. COCO panoptic JSON.
    ('coco_top_level_list', _coco_json(lambda data: [data]),
     'error: {tmp}/panoptic.json: the top level must be a JSON object (with '
     '"annotations" and "categories"), got [{{"info": {{"description": "COCO '
     '2018 ... (list).'),
    ('coco_segments_info_string',
     _coco_json(lambda data: _set(data['annotations'][0], 'segments_info',
                                  'abc')),
     'error: {tmp}/panoptic.json: annotations[0] (000000142238.png): '
     '"segments_info" must be a list, got "abc" (string).'),
    ('coco_category_without_id',
     _coco_json(lambda data: _drop(data['categories'][0], 'id')),
     'error: {tmp}/panoptic.json: categories[0] (person) lacks "id".'),
    ('coco_segment_without_id',
     _coco_json(lambda data: _drop(data['annotations'][1]['segments_info'][2],
                                   'id')),
     'error: {tmp}/panoptic.json: annotations[1] (000000439180.png): '
     'segments_info[2] lacks "id".'),
    ('cityscapes_segment_without_id',
     _cityscapes_json(lambda data: _drop(
         data['annotations'][0]['segments_info'][0], 'id')),
     'error: {json}: annotations[0] (dummy_000000_000000_gtFine_panoptic.png)'
     ': segments_info[0] lacks "id".'),
    # 3. Decompression bombs.
    ('image_decompression_bomb_error', _coco_bomb(40000, 40000), _BOMB),
    ('image_decompression_bomb_warning', _coco_bomb(10000, 10000), _BOMB),
    # 4. The synthetic builder's flags.
    ('synthetic_image_size_too_large', _synthetic('--image_size=100000'),
     'error: --image_size=100000: must be 16 to 4097 (the side of the '
     'square images, in pixels).'),
    ('synthetic_image_size_too_small', _synthetic('--image_size=3'),
     'error: --image_size=3: must be 16 to 4097 (the side of the square '
     'images, in pixels).'),
    ('synthetic_negative_num_train', _synthetic('--num_train=-5'),
     'error: --num_train=-5: must be 0 or more.'),
    ('synthetic_negative_num_val', _synthetic('--num_val=-1'),
     'error: --num_val=-1: must be 0 or more.'),
    ('synthetic_negative_seed', _synthetic('--seed=-1'),
     'error: --seed=-1: must be 0 or more.'),
    ('synthetic_no_images', _synthetic('--num_train=0', '--num_val=0'),
     'error: --num_train=0 and --num_val=0: nothing to write; ask for 1 '
     'image or more.'),
    # 5. More shards than files may be open.
    ('synthetic_num_shards_over_file_limit',
     _few_open_files(_synthetic('--num_shards=300')),
     'error: --num_shards=300: a split keeps all its shards open while it '
     'is written, and this process may open 256 files (ulimit -n) of which '
     '42 are in use or kept for others: pass --num_shards=214 or fewer, or '
     'raise the limit.'),
    ('coco_num_shards_over_file_limit',
     _few_open_files(_coco_sample_with('--num_shards=250',
                                       '--num_workers=4')),
     'error: --num_shards=250: a split keeps all its shards open while it '
     'is written, and this process may open 256 files (ulimit -n) of which '
     '54 are in use or kept for others: pass --num_shards=202 or fewer, or '
     'raise the limit.'),
    # 6. An experiment config that is not UTF-8.
    ('config_not_utf8', _latin1_config,
     'error: {config}:2: not UTF-8 text: byte 0xe9 (invalid continuation '
     'byte); save the config as UTF-8'),
]


@pytest.mark.parametrize('case', BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_error_line(tmp_path, monkeypatch, capsys, case):
  _, setup, line = case
  tmp = str(tmp_path)
  run = setup(tmp, monkeypatch)
  monkeypatch.chdir(tmp_path)
  before = sorted(os.listdir(tmp))
  result = cli_runner.run_main(run.main, run.argv, capsys)
  expected = line.format(tmp=tmp, **run.fields)
  assert result.returncode == 1, result.stderr
  assert 'Traceback' not in result.stderr + result.stdout
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert errors == [expected]
  assert result.stderr == expected + '\n'
  assert not os.path.exists(run.output)
  assert sorted(os.listdir(tmp)) == before   # no staging folder left


def test_valid_descriptors_read_as_before(tmp_path):
  """The JSON the converters and the built-ins write reads back equal."""
  for name in ('synthetic_panoptic', 'cityscapes_panoptic', 'coco_panoptic'):
    descriptor = dataclasses.replace(
        dataset_descriptor.DATASETS.get(name),
        splits_to_sizes={'train': 3, 'val': 1})
    path = str(tmp_path / f'{name}.json')
    descriptor.write_json(path)
    assert dataset_descriptor.read_json(path) == descriptor


def test_the_suggested_num_shards_really_opens(tmp_path):
  """Under a real, lowered open-file limit: one shard more than the message
  allows is refused, and that many shards do open at once."""
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  limit = len(os.listdir('/dev/fd')) + 100
  if hard != resource.RLIM_INFINITY and hard < limit:
    pytest.skip(f'the hard open-file limit {hard} is below {limit}')
  resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
  try:
    with pytest.raises(ValueError) as info:
      conversion_checks.check_num_shards(100)
    allowed = int(str(info.value).split('pass --num_shards=')[1].split()[0])
    assert allowed >= 1
    with pytest.raises(ValueError, match=f'pass --num_shards={allowed} or '):
      conversion_checks.check_num_shards(allowed + 1)
    conversion_checks.check_num_shards(allowed)
    with tfrecord.ShardedWriter(str(tmp_path), 'train', allowed) as writer:
      writer.commit()
  finally:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
  assert len(os.listdir(tmp_path)) == allowed
