"""The prediction writers and the metrics JSON write through utils/atomic.py:
whole files only, one stale-file recovery per folder, killed writers'
leftovers cleaned up."""

import json
import logging
import os
import subprocess

import numpy as np
import pytest

from deeplab2.data import dataset_descriptor
from deeplab2.evaluation import prediction_files
from deeplab2.evaluation import report
from deeplab2.evaluation import writer_base
from deeplab2.utils import atomic

IMAGE = 'a_000001_{:06d}_leftImg8bit.png'


def _cityscapes():
  return dataset_descriptor.DATASETS.get('cityscapes_panoptic')


def _panoptic():
  panoptic = np.zeros((6, 8), np.int32)           # road
  panoptic[1:3, 1:4] = 13001                      # two cars
  panoptic[4:6, 5:8] = 13002
  return panoptic


def _dead_pid():
  process = subprocess.Popen(['true'])
  process.wait()
  return process.pid


def _temporary(folder, name, pid):
  """A temporary file of atomic.py's naming, as writer `pid` leaves it."""
  path = atomic.sibling_path(os.path.join(folder, name)).replace(
      f'-{os.getpid()}-', f'-{pid}-')
  with open(path, 'w') as f:
    f.write('half written')
  return path


def _files(folder):
  return sorted(os.path.relpath(os.path.join(parent, name), folder)
                for parent, _, names in os.walk(folder) for name in names)


def test_writers_leave_only_whole_files(tmp_path):
  folder = str(tmp_path / 'pred')
  with prediction_files.CityscapesWriter(folder, _cityscapes()) as writer:
    writer.add(IMAGE.format(1), _panoptic())
  assert _files(folder) == [
      'instance/a_000001_000001.txt',
      'instance/masks/a_000001_000001_0.png',
      'instance/masks/a_000001_000001_1.png',
      'panoptic.json', 'panoptic/a_000001_000001.png',
      'semantic/a_000001_000001_pred_labelIds.png']


def test_writers_recover_once_per_folder_not_per_file(tmp_path, monkeypatch):
  calls = []
  recover_stale = atomic.recover_stale
  monkeypatch.setattr(atomic, 'recover_stale',
                      lambda path, *a: calls.append(path) or
                      recover_stale(path, *a))
  listed = []
  listdir = os.listdir
  monkeypatch.setattr(os, 'listdir',
                      lambda path='.': listed.append(path) or listdir(path))
  writer = prediction_files.CityscapesWriter(str(tmp_path), _cityscapes())
  calls.clear()
  listed.clear()
  for n in range(3):
    writer.add(IMAGE.format(n), _panoptic())
  writer.close()
  assert (calls, listed) == ([], [])     # 18 PNGs, 3 txt, 1 JSON


def test_killed_writers_leftovers_are_removed_when_a_writer_starts(
    tmp_path, caplog):
  folder = str(tmp_path / 'pred')
  for name in ('panoptic', 'semantic', 'instance/masks'):
    os.makedirs(os.path.join(folder, name))
  dead = _dead_pid()
  stale = [
      _temporary(os.path.join(folder, 'panoptic'), 'a_000001_000001.png',
                 dead),
      _temporary(os.path.join(folder, 'semantic'),
                 'a_000001_000001_pred_labelIds.png', dead),
      _temporary(os.path.join(folder, 'instance', 'masks'),
                 'a_000001_000001_0.png', dead),
      _temporary(folder, 'panoptic.json', dead)]
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    # Without overwrite: folders that hold only leftovers are free.
    with prediction_files.CityscapesWriter(folder, _cityscapes()) as writer:
      writer.add(IMAGE.format(1), _panoptic())
  assert not any(os.path.exists(path) for path in stale)
  assert all(os.path.basename(path) in caplog.text for path in stale)
  assert 'a prediction writer that was killed' in caplog.text
  assert not [f for f in _files(folder)
              if atomic.is_temporary(os.path.basename(f))]


def test_a_running_writers_files_keep_the_folder_taken(tmp_path, caplog):
  folder = str(tmp_path / 'pred')
  os.makedirs(os.path.join(folder, 'panoptic'))
  running = _temporary(os.path.join(folder, 'panoptic'), '1.png',
                       os.getppid())
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    with pytest.raises(FileExistsError, match='overwrite=True'):
      prediction_files.CocoPanopticWriter(folder, _cityscapes())
  assert os.path.exists(running)
  assert 'may still run' in caplog.text


def test_failed_png_write_leaves_no_file(tmp_path):
  path = str(tmp_path / 'x.png')
  with pytest.raises((TypeError, ValueError)):
    writer_base.save_png(np.zeros((2, 2), np.complex64), path)
  assert os.listdir(tmp_path) == []


def test_merge_skips_leftovers_and_merges_the_json(tmp_path):
  descriptor = _cityscapes()
  hosts = [str(tmp_path / f'host-{i}') for i in range(2)]
  for i, host in enumerate(hosts):
    with prediction_files.CocoPanopticWriter(host, descriptor) as writer:
      writer.add(f'{i}.png', _panoptic())
  leftover = _temporary(os.path.join(hosts[1], 'panoptic'), '7.png',
                        _dead_pid())
  merged = str(tmp_path / 'merged')
  prediction_files.merge_folders(hosts, merged)
  assert _files(merged) == ['panoptic.json', 'panoptic/0.png',
                            'panoptic/1.png']
  with open(os.path.join(merged, 'panoptic.json')) as f:
    assert [a['image_id'] for a in json.load(f)['annotations']] == [0, 1]
  assert os.path.exists(leftover)


def test_metrics_json_is_whole_and_refuses_to_replace(tmp_path):
  path = str(tmp_path / 'metrics.json')
  assert report.write_metrics_json({'pq': 0.5}, path) == path
  with pytest.raises(FileExistsError, match='pass overwrite'):
    report.write_metrics_json({'pq': 0.6}, path)
  report.write_metrics_json({'pq': 0.7}, path, overwrite=True)
  with open(path) as f:
    assert json.load(f) == {'pq': 0.7}
  with pytest.raises(TypeError):
    report.write_metrics_json({'pq': object()}, path, overwrite=True)
  with open(path) as f:
    assert json.load(f) == {'pq': 0.7}
  assert os.listdir(tmp_path) == ['metrics.json']
