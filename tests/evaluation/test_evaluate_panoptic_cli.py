"""evaluation/evaluate_panoptic.py (deeplab2.cli.evaluate_panoptic): the
table, the JSON, one-line errors. Its main() runs in this process."""

import json
import os
import re

import numpy as np
import pytest

from deeplab2.cli import evaluate_panoptic
from deeplab2.evaluation import coco_panoptic_files
from deeplab2.evaluation import report
import cli_runner

CATEGORIES = [{'id': 7, 'name': 'person', 'isthing': 1},
              {'id': 19, 'name': 'wall', 'isthing': 0}]


def _ids(person_rows):
  ids = np.ones((24, 32), np.int64)    # segment 1: wall
  ids[person_rows, 4:12] = 2            # segment 2: a person
  return ids


def _write(folder, json_path, ids_by_image, segments_info, categories=None):
  folder.mkdir()
  annotations = []
  for image_id, ids in ids_by_image.items():
    coco_panoptic_files.write_id_png(str(folder / f'{image_id}.png'), ids)
    annotations.append({'image_id': image_id, 'file_name': f'{image_id}.png',
                        'segments_info': segments_info})
  data = {'annotations': annotations}
  if categories:
    data['categories'] = categories
  json_path.write_text(json.dumps(data))


@pytest.fixture(name='case')
def fixture_case(tmp_path):
  """Two images; the prediction's person is 6 of 8 rows: IoU 0.75."""
  paths = {name: tmp_path / name for name in
           ('gt.json', 'gt', 'pred.json', 'pred')}
  gt_ids = _ids(slice(4, 12))
  _write(paths['gt'], paths['gt.json'], {1: gt_ids, 2: gt_ids},
         [{'id': 1, 'category_id': 19, 'iscrowd': 0},
          {'id': 2, 'category_id': 7, 'iscrowd': 0}], CATEGORIES)
  pred_ids = _ids(slice(4, 10))
  _write(paths['pred'], paths['pred.json'], {1: pred_ids, 2: pred_ids},
         [{'id': 1, 'category_id': 19}, {'id': 2, 'category_id': 7}])
  paths['root'] = tmp_path
  return {name: str(path) for name, path in paths.items()}


@pytest.fixture(name='run_cli')
def fixture_run(capsys, monkeypatch):
  """Runs the command in the case's folder (its default output goes
  there)."""
  def run(case, *extra):
    monkeypatch.chdir(case['root'])
    return cli_runner.run_main(
        evaluate_panoptic.main,
        [f'--gt_json={case["gt.json"]}', f'--gt_folder={case["gt"]}',
         f'--pred_json={case["pred.json"]}',
         f'--pred_folder={case["pred"]}', *extra], capsys)
  return run


def test_prints_the_table_and_writes_the_metrics(case, tmp_path, run_cli):
  run = run_cli(case)
  assert run.returncode == 0, run.stderr
  output = tmp_path / 'panoptic_metrics.json'
  assert run.stdout.splitlines()[-1] == f'metrics written to {output}'
  assert re.search(r'^ *7 +person +75\.00 +75\.00 +100\.00 +2 +0 +0$',
                   run.stdout, re.M), run.stdout
  assert re.search(r'^ +All +', run.stdout, re.M)
  metrics = json.loads(output.read_text())
  assert metrics['per_class']['7']['sq'] == pytest.approx(0.75)
  assert metrics['num_images'] == 2
  assert metrics['num_classes_all'] == 2

  again = run_cli(case)
  assert again.returncode == 1
  assert again.stderr == (f'error: {output} exists; pass --overwrite to '
                          'replace it.\n')
  custom = tmp_path / 'custom.json'
  assert run_cli(case, f'--output={custom}', '--overwrite').returncode == 0
  assert json.loads(custom.read_text()) == metrics
  assert sorted(os.listdir(tmp_path)) == sorted(
      ['custom.json', 'gt', 'gt.json', 'panoptic_metrics.json', 'pred',
       'pred.json'])   # no temporary file left


def _edit_pred_json(case, edit):
  with open(case['pred.json'], encoding='utf-8') as f:
    data = json.load(f)
  edit(data)
  with open(case['pred.json'], 'w', encoding='utf-8') as f:
    json.dump(data, f)


def _segments(image_index):
  return lambda data: data['annotations'][image_index]['segments_info']


def _drop_image(data):
  del data['annotations'][1]


def _unknown_category(data):
  _segments(1)(data)[1]['category_id'] = 0   # void is no category


def _twice(data):
  _segments(0)(data).append({'id': 2, 'category_id': 7})


def _absent_from_png(data):
  _segments(1)(data).append({'id': 9, 'category_id': 7})


def _absent_from_json(data):
  del _segments(1)(data)[1]


@pytest.mark.parametrize('edit, message', [
    (_drop_image, r'{pred.json}: no prediction for image_id 2 of {gt.json}\.'),
    (_unknown_category, r'{pred.json}: image_id 2: segment id 2 has '
     r'category_id 0, not one of the ground truth\'s categories\.'),
    (_twice, r'{pred.json}: image_id 1: segment id 2 is listed twice in '
     r'segments_info\.'),
    (_absent_from_png, r'{pred.json}: image_id 2: segment id 9 is in '
     r'segments_info but not in the PNG {pred}/2\.png\.'),
    (_absent_from_json, r'{pred}/2\.png: segment id 2 is in the PNG but not '
     r'in segments_info of image_id 2 in {pred.json}\.'),
])
def test_bad_prediction_json(case, edit, message, run_cli):
  _edit_pred_json(case, edit)
  _assert_error(run_cli(case), message, case)


def _png_missing(case):
  os.remove(os.path.join(case['pred'], '2.png'))
  return r'{pred}/2\.png \(image_id 2 of {pred.json}\): file not found\.'


def _png_unreadable(case):
  with open(os.path.join(case['pred'], '2.png'), 'wb') as f:
    f.write(b'not a png')
  return (r'{pred}/2\.png \(image_id 2 of {pred.json}\): cannot read the '
          r'PNG: cannot identify image file .*')


def _png_other_size(case):
  coco_panoptic_files.write_id_png(os.path.join(case['pred'], '2.png'),
                                   np.ones((20, 32), np.int64))
  _edit_pred_json(case, lambda data: _segments(1)(data).pop())
  return (r'{pred}/2\.png: 32x20 pixels, but the ground truth {gt}/2\.png of '
          r'image_id 2 has 32x24\.')


def _gt_json_missing(case):
  os.remove(case['gt.json'])
  return r'{gt.json}: file not found\.'


@pytest.mark.parametrize('damage', [_png_missing, _png_unreadable,
                                    _png_other_size, _gt_json_missing])
def test_bad_files(case, damage, run_cli):
  message = damage(case)
  _assert_error(run_cli(case), message, case)


def _assert_error(run, message, case):
  assert run.returncode == 1
  assert run.stdout == ''
  assert not os.path.exists(os.path.join(case['root'],
                                         'panoptic_metrics.json'))
  pattern = message
  for name, path in case.items():
    pattern = pattern.replace('{' + name + '}', re.escape(path))
  lines = run.stderr.splitlines()
  assert len(lines) == 1, run.stderr
  assert re.fullmatch('error: ' + pattern, lines[0]), (lines[0], pattern)


def test_missing_flag_is_a_usage_error(case, capsys):
  run = cli_runner.run_main(evaluate_panoptic.main,
                            [f'--gt_json={case["gt.json"]}'], capsys)
  assert run.returncode == 2
  assert 'error: the following arguments are required' in run.stderr


def test_table_adds_iou_and_ap_columns_when_given():
  metrics = {'pq_all': 0.5, 'sq_all': 0.8, 'rq_all': 0.625,
             'pq_things': 0.5, 'sq_things': 0.8, 'rq_things': 0.625,
             'pq_stuff': 0.0, 'sq_stuff': 0.0, 'rq_stuff': 0.0,
             'num_classes_all': 1, 'num_classes_things': 1,
             'num_classes_stuff': 0,
             'per_class': {1: {'pq': 0.5, 'sq': 0.8, 'rq': 0.625, 'tp': 5,
                               'fp': 3, 'fn': 3}},
             'per_class_iou': {0: 0.25, 1: 0.5}, 'miou': 0.375,
             'per_class_ap': {1: 0.123456}}
  lines = report.format_table(metrics, ('road', 'car')).splitlines()
  assert [line.split() for line in lines] == [
      ['id', 'name', 'PQ', 'SQ', 'RQ', 'TP', 'FP', 'FN', 'IoU', 'AP'],
      ['0', 'road', '-', '-', '-', '-', '-', '-', '25.00', '-'],
      ['1', 'car', '50.00', '80.00', '62.50', '5', '3', '3', '50.00',
       '12.35'],
      ['-' * len(lines[0])],
      ['PQ', 'SQ', 'RQ', 'N', 'IoU', 'AP'],
      ['All', '50.00', '80.00', '62.50', '1', '37.50', '-'],
      ['Things', '50.00', '80.00', '62.50', '1'],
      ['Stuff', '0.00', '0.00', '0.00', '0']]
