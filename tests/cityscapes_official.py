"""cityscapesScripts' three evaluations run from Python on a small
Cityscapes-format ground truth made from tests/testdata/cityscapes_sample.

Shared by the prediction-file tests and the end-to-end evaluation test.
"""

import glob
import json
import os
import shutil

from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling
from cityscapesscripts.evaluation import evalPanopticSemanticLabeling
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling
from cityscapesscripts.helpers import labels
from cityscapesscripts.preparation import createPanopticImgs
import numpy as np
from PIL import Image

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        'testdata')
CITYSCAPES_SAMPLE = os.path.join(TESTDATA, 'cityscapes_sample', 'gtFine')
IMAGE_ID = 'dummy_000000_000000'
VOID = 255 * 1000


def rgb_to_id(rgb):
  rgb = rgb.astype(np.int64)
  return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]



def copy_sample_as_val(root, with_json=True):
  """Lays the sample out under `root` (a pathlib.Path) as the converter
  reads Cityscapes: split 'val', train-id panoptic PNG and JSON (unless
  not with_json), and the leftImg8bit image."""
  gt = root / 'gtFine'
  gt.mkdir(parents=True)
  if with_json:
    shutil.copy(os.path.join(CITYSCAPES_SAMPLE,
                             'cityscapes_panoptic_dummy_trainId.json'),
                gt / 'cityscapes_panoptic_val_trainId.json')
    shutil.copytree(os.path.join(CITYSCAPES_SAMPLE,
                                 'cityscapes_panoptic_dummy_trainId'),
                    gt / 'cityscapes_panoptic_val_trainId')
  images = root / 'leftImg8bit' / 'val' / 'dummy'
  images.mkdir(parents=True)
  shutil.copy(os.path.join(TESTDATA, 'cityscapes_sample', 'leftImg8bit',
                           f'{IMAGE_ID}_leftImg8bit.png'), images)


def write_ground_truth(root, shrink):
  """Writes gtFine (labelIds, instanceIds, label-id panoptic PNG + JSON,
  split 'val', city 'dummy') of the sample taken every `shrink` pixels
  under `root` (a pathlib.Path); returns the same labels as deeplab2
  panoptic ids (train ids, instances 1.., crowd = instance 0, void)."""
  png = os.path.join(CITYSCAPES_SAMPLE, 'cityscapes_panoptic_dummy_trainId',
                     f'{IMAGE_ID}_gtFine_panoptic.png')
  # Segment ids of the sample are Cityscapes instanceIds (label id * 1000 +
  # k, or the label id for stuff and crowd).
  instance_ids = rgb_to_id(np.array(Image.open(png)))[::shrink, ::shrink]
  label_ids = np.where(instance_ids >= 1000, instance_ids // 1000,
                       instance_ids)
  city_dir = root / 'gtFine' / 'val' / 'dummy'
  city_dir.mkdir(parents=True)
  Image.fromarray(label_ids.astype(np.uint8)).save(
      city_dir / f'{IMAGE_ID}_gtFine_labelIds.png')
  Image.fromarray(instance_ids.astype(np.uint16)).save(
      city_dir / f'{IMAGE_ID}_gtFine_instanceIds.png')
  createPanopticImgs.convert2panoptic(str(root / 'gtFine'),
                                      str(root / 'gtFine'), False, ['val'])

  panoptic = np.full(instance_ids.shape, VOID, np.int64)
  next_instance = {}
  for segment_id in np.unique(instance_ids):
    label = labels.id2label[int(label_ids[instance_ids == segment_id][0])]
    if label.ignoreInEval:
      continue
    instance = 0
    if segment_id >= 1000:
      instance = next_instance.get(label.trainId, 1)
      next_instance[label.trainId] = instance + 1
    panoptic[instance_ids == segment_id] = label.trainId * 1000 + instance
  return panoptic



def one_process(monkeypatch):
  """Runs evaluatePanoptic's per-image code in this process: its pool of
  one worker per core would fork the test process (TensorFlow and all)."""
  pq = evalPanopticSemanticLabeling
  monkeypatch.setattr(
      pq, 'pq_compute_multi_core',
      lambda matched, gt_folder, pred_folder, categories:
      pq.pq_compute_single_core(0, matched, gt_folder, pred_folder,
                                categories))


def _in1d(values, test_values, assume_unique=False, invert=False):
  return np.isin(np.ravel(values), test_values, assume_unique=assume_unique,
                 invert=invert)


def _write_json(data, path):
  with open(path, 'w') as f:
    json.dump(data, f, default=lambda o: o.item() if isinstance(
        o, np.generic) else o.__dict__)


def evaluate(root, folder, tmp_path, monkeypatch):
  """{'pq', 'miou', 'ap'} of the three official evaluations."""
  if not hasattr(np, 'in1d'):
    # cityscapesScripts 2.3.0 calls np.in1d, which NumPy 2.4 removed.
    monkeypatch.setattr(np, 'in1d', _in1d, raising=False)
  one_process(monkeypatch)
  gt_dir = root / 'gtFine'
  panoptic = evalPanopticSemanticLabeling.evaluatePanoptic(
      str(gt_dir / 'cityscapes_panoptic_val.json'),
      str(gt_dir / 'cityscapes_panoptic_val'),
      str(folder / 'panoptic.json'), str(folder / 'panoptic'),
      str(tmp_path / 'pq.json'))

  # The module-level `args` stand for the environment variables read at
  # import (CITYSCAPES_DATASET, CITYSCAPES_RESULTS).
  pixel = evalPixelLevelSemanticLabeling
  monkeypatch.setattr(pixel.args, 'predictionPath', str(folder / 'semantic'))
  monkeypatch.setattr(pixel.args, 'predictionWalk', None)
  monkeypatch.setattr(pixel.args, 'JSONOutput', False)
  monkeypatch.setattr(pixel.args, 'quiet', True)
  gts = sorted(glob.glob(str(gt_dir / 'val' / '*' /
                             '*_gtFine_labelIds.png')))
  preds = [pixel.getPrediction(pixel.args, gt) for gt in gts]
  semantic = pixel.evaluateImgLists(preds, gts, pixel.args)

  instance = evalInstanceLevelSemanticLabeling
  monkeypatch.setattr(instance.args, 'predictionPath',
                      os.path.abspath(folder / 'instance'))
  monkeypatch.setattr(instance.args, 'predictionWalk', None)
  # Its ground-truth cache defaults to a file beside the installed script.
  monkeypatch.setattr(instance.args, 'gtInstancesFile',
                      str(tmp_path / 'gtInstances.json'))
  monkeypatch.setattr(instance.args, 'JSONOutput', False)
  monkeypatch.setattr(instance.args, 'quiet', True)
  monkeypatch.chdir(tmp_path)          # It writes matches.json here,
  # with NumPy 2's np.int64 counts that its JSON writer cannot take.
  monkeypatch.setattr(instance, 'writeDict2JSON', _write_json)
  gts = sorted(glob.glob(str(gt_dir / 'val' / '*' /
                             '*_gtFine_instanceIds.png')))
  preds = [instance.getPrediction(gt, instance.args) for gt in gts]
  instances = instance.evaluateImgLists(preds, gts, instance.args)
  return {'pq': panoptic['All']['pq'],
          'miou': semantic['averageScoreClasses'],
          'ap': instances['averages']['allAp']}


