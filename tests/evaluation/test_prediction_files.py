"""Prediction files, read by the official evaluations.

The Cityscapes ground truth is tests/testdata/cityscapes_sample shrunk to
200 x 200 (nearest neighbour) and written as gtFine labelIds / instanceIds
PNGs; csCreatePanopticImgs' own converter makes the panoptic ground truth in
label ids from them. The predictions are that ground truth as deeplab2
panoptic ids (train ids), then a perturbed copy; each is written with
CityscapesWriter and scored by the three cityscapesScripts evaluations.
"""

import dataclasses
import json
import os

from cityscapesscripts.evaluation import evalPanopticSemanticLabeling
import numpy as np
from PIL import Image
import pytest

from deeplab2.data import coco
from deeplab2.data import dataset_descriptor
from deeplab2.evaluation import panoptic_quality
from deeplab2.evaluation import prediction_files
from deeplab2.evaluation import segments as segments_lib

import cityscapes_official

TESTDATA = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                        'testdata')
COCO_SAMPLE = os.path.join(TESTDATA, 'coco_panoptic_sample')
IMAGE_ID = cityscapes_official.IMAGE_ID
SHRINK = 4                      # 800 x 800 -> 200 x 200
VOID = 255 * 1000


def _cityscapes():
  return dataset_descriptor.DATASETS.get('cityscapes_panoptic')


@pytest.fixture(scope='module')
def cityscapes_gt(tmp_path_factory):
  """(root, panoptic): the gtFine files and the same labels as deeplab2
  panoptic ids (train ids, instances 1.., crowd = instance 0, void)."""
  root = tmp_path_factory.mktemp('cityscapes')
  return root, cityscapes_official.write_ground_truth(root, SHRINK)


def _write(folder, panoptic, semantic=None, scores=None):
  with prediction_files.CityscapesWriter(str(folder), _cityscapes()) as writer:
    writer.add(f'{IMAGE_ID}_leftImg8bit.png', panoptic, semantic, scores)


def _numpy_miou(gt_semantic, pred_semantic, num_classes=19):
  """Cityscapes mIoU: void gt pixels are skipped, a void prediction counts
  as a miss of the gt class only."""
  valid = gt_semantic < num_classes
  pred = np.where(pred_semantic < num_classes, pred_semantic, num_classes)
  confusion = np.bincount(
      gt_semantic[valid] * (num_classes + 1) + pred[valid],
      minlength=num_classes * (num_classes + 1)).reshape(num_classes, -1)
  tp = np.diag(confusion).astype(np.float64)
  union = confusion.sum(1) + confusion[:, :num_classes].sum(0) - tp
  return float(np.mean(tp[union > 0] / union[union > 0]))


def test_perfect_cityscapes_predictions_score_one(cityscapes_gt, tmp_path,
                                                  monkeypatch):
  root, panoptic = cityscapes_gt
  folder = tmp_path / 'pred'
  _write(folder, panoptic)
  scores = cityscapes_official.evaluate(root, folder, tmp_path, monkeypatch)
  assert scores == {'pq': 1.0, 'miou': 1.0, 'ap': 1.0}


def test_perturbed_cityscapes_predictions_score_as_numpy_says(
    cityscapes_gt, tmp_path, monkeypatch):
  root, gt = cityscapes_gt
  descriptor = _cityscapes()
  pred = gt.copy()
  cars = [i for i in np.unique(gt) if i // 1000 == 13 and i % 1000]
  pred[gt == cars[0]] = 0                      # a car missed: road
  pred[gt == cars[2]] = cars[1]                # two cars merged
  pred[20:60, 20:60] = 10 * 1000               # a block of sky
  pred[150:170, 0:30] = VOID                   # unpredicted pixels
  semantic = descriptor.semantic_label(pred)
  semantic[100:120, 100:140] = 9               # terrain, in semantic only
  scores = {int(i): 0.5 + 0.01 * n
            for n, i in enumerate(np.unique(pred))
            if descriptor.is_thing(int(i) // 1000) and i % 1000}
  folder = tmp_path / 'pred'
  _write(folder, pred, semantic, scores)
  result = cityscapes_official.evaluate(root, folder, tmp_path, monkeypatch)

  assert result['miou'] == pytest.approx(
      _numpy_miou(descriptor.semantic_label(gt), semantic), rel=1e-12)
  assert result['miou'] < 1.0
  metric = panoptic_quality.PanopticQuality(descriptor.label_spec)
  metric.update(gt, pred)
  assert result['pq'] == pytest.approx(metric.result()['pq_all'], rel=1e-12)
  assert 0.0 < result['pq'] < 1.0
  assert 0.0 < result['ap'] < 1.0


def test_cityscapes_files_use_label_ids(cityscapes_gt, tmp_path):
  _, panoptic = cityscapes_gt
  folder = tmp_path / 'pred'
  scores = {int(i): 0.25 for i in np.unique(panoptic) if i // 1000 == 13}
  scores.pop(13000, None)                        # crowd: not an instance
  _write(folder, panoptic, scores=scores)
  label_ids = np.array(Image.open(
      folder / 'semantic' / f'{IMAGE_ID}_pred_labelIds.png'))
  assert label_ids.dtype == np.uint8
  assert set(np.unique(label_ids)) == {0, 7, 11, 21, 23, 26}
  assert (label_ids == 0).sum() == (panoptic == VOID).sum()
  lines = (folder / 'instance' / f'{IMAGE_ID}.txt').read_text().splitlines()
  things = sorted(i for i in np.unique(panoptic) if i // 1000 == 13 and
                  i % 1000)
  assert len(lines) == len(things)
  for line, panoptic_id in zip(lines, things):
    path, label_id, score = line.split(' ')
    assert (label_id, float(score)) == ('26', 0.25)
    mask = np.array(Image.open(folder / 'instance' / path).convert('L'))
    assert set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask == 255, panoptic == panoptic_id)
  data = json.loads((folder / 'panoptic.json').read_text())
  assert [c['id'] for c in data['categories']] == list(
      _cityscapes().original_category_ids)
  assert data['annotations'][0]['image_id'] == IMAGE_ID


def test_cityscapes_writer_checks_its_inputs(tmp_path):
  descriptor = _cityscapes()
  writer = prediction_files.CityscapesWriter(str(tmp_path / 'a'), descriptor)
  with pytest.raises(ValueError, match='not a Cityscapes name'):
    writer.add('image.png', np.zeros((4, 4), np.int32))
  panoptic = np.full((4, 4), 13001, np.int32)
  with pytest.raises(ValueError, match='no score for the instance of '
                     'panoptic id 13001'):
    writer.add('a_000001_000002', panoptic, instance_scores={})
  writer.add('a_000001_000002', panoptic)   # The failed add left no trace.
  with pytest.raises(ValueError, match="'a_000001_000002' was added twice"):
    writer.add('a_000001_000002_leftImg8bit.png', panoptic)
  with pytest.raises(ValueError, match='classes outside 0..18'):
    writer.add('a_000001_000003', np.full((4, 4), 19001, np.int32))
  writer.close()
  with pytest.raises(FileExistsError, match='overwrite=True'):
    prediction_files.CityscapesWriter(str(tmp_path / 'a'), descriptor)
  with pytest.raises(ValueError, match='choose from panoptic, semantic'):
    prediction_files.CityscapesWriter(str(tmp_path / 'b'), descriptor,
                                      formats=('instances',))


def _coco_gt():
  with open(os.path.join(COCO_SAMPLE, 'panoptic_examples.json')) as f:
    return json.load(f)


def _coco_panoptic(annotation, to_class, descriptor):
  """deeplab2 panoptic ids of a COCO annotation (crowd = instance 0)."""
  ids = cityscapes_official.rgb_to_id(np.array(Image.open(os.path.join(
      COCO_SAMPLE, 'panoptic_examples', annotation['file_name']))))
  panoptic = np.zeros(ids.shape, np.int64)      # class 0: void
  count = {}
  for segment in annotation['segments_info']:
    cls = to_class[segment['category_id']]
    instance = 0
    if descriptor.is_thing(cls) and not segment['iscrowd']:
      instance = count[cls] = count.get(cls, 0) + 1
    panoptic[ids == segment['id']] = descriptor.encode(cls, instance)
  return ids, panoptic


@pytest.mark.parametrize('renumber', [False, True])
def test_coco_writer_keeps_segments_and_category_ids(tmp_path, renumber):
  gt = _coco_gt()
  categories = gt['categories']
  if renumber:   # custom COCO-format data: other, sparse ids
    categories = [dict(c, id=1000 + 7 * c['id']) for c in categories]
    new_id = {c['id']: 1000 + 7 * c['id'] for c in gt['categories']}
    for annotation in gt['annotations']:
      for segment in annotation['segments_info']:
        segment['category_id'] = new_id[segment['category_id']]
  descriptor, category_map = coco.descriptor_from_categories(
      'my_data', categories)
  del category_map
  if not renumber:
    assert descriptor.original_category_ids == dataset_descriptor.DATASETS.get(
        'coco_panoptic').original_category_ids
  to_class = {c['id']: i + 1 for i, c in enumerate(
      sorted(categories, key=lambda c: c['id']))}
  folder = tmp_path / 'pred'
  expected = {}
  with prediction_files.CocoPanopticWriter(str(folder), descriptor) as writer:
    for annotation in gt['annotations']:
      ids, panoptic = _coco_panoptic(annotation, to_class, descriptor)
      writer.add(annotation['file_name'], panoptic)
      expected[annotation['image_id']] = (ids, annotation['segments_info'])
  data = json.loads((folder / 'panoptic.json').read_text())
  assert sorted(c['id'] for c in data['categories']) == sorted(
      c['id'] for c in categories)
  assert len(data['annotations']) == len(expected)
  for annotation in data['annotations']:
    gt_ids, gt_segments = expected[annotation['image_id']]
    written = cityscapes_official.rgb_to_id(np.array(Image.open(
        folder / 'panoptic' / annotation['file_name'])))
    by_id = {s['id']: s for s in annotation['segments_info']}
    assert set(np.unique(written)) - {0} == set(by_id)
    assert sorted(by_id) == list(range(1, len(by_id) + 1))
    for segment in gt_segments:
      if segment['iscrowd']:
        continue
      written_ids = np.unique(written[gt_ids == segment['id']])
      assert len(written_ids) == 1
      out = by_id[int(written_ids[0])]
      assert (written == written_ids[0]).sum() == segment['area']
      assert out['category_id'] == segment['category_id']
      assert (out['area'], out['bbox']) == (segment['area'], segment['bbox'])
      assert out['iscrowd'] == 0
    assert (written == 0).sum() == (gt_ids == 0).sum()


def test_coco_predictions_of_the_ground_truth_have_pq_one(tmp_path,
                                                          monkeypatch):
  """The COCO PQ rules (the same code as the panopticapi's) on the sample,
  with the image ids the writer derives from the file names."""
  gt = _coco_gt()
  descriptor = dataset_descriptor.DATASETS.get('coco_panoptic')
  to_class = {c: i for i, c in enumerate(descriptor.original_category_ids)
              if c is not None}
  folder = tmp_path / 'pred'
  with prediction_files.CocoPanopticWriter(str(folder), descriptor) as writer:
    for image in gt['images']:
      annotation = next(a for a in gt['annotations']
                        if a['image_id'] == image['id'])
      writer.add(image['file_name'],
                 _coco_panoptic(annotation, to_class, descriptor)[1])
  cityscapes_official.one_process(monkeypatch)
  result = evalPanopticSemanticLabeling.evaluatePanoptic(
      os.path.join(COCO_SAMPLE, 'panoptic_examples.json'),
      os.path.join(COCO_SAMPLE, 'panoptic_examples'),
      writer.json_path, writer.png_dir, str(tmp_path / 'pq.json'))
  assert result['All']['pq'] == 1.0
  assert result['All']['n'] == len(
      {s['category_id'] for a in gt['annotations']
       for s in a['segments_info']})


def test_void_and_ignore_pixels_get_segment_id_zero():
  descriptor = _cityscapes()
  panoptic = np.array([[VOID, -1, 0, 13001],
                       [13001, 13002, 2000, 0]])
  segments = segments_lib.Segments(panoptic, descriptor)
  np.testing.assert_array_equal(segments.index,
                                [[0, 0, 1, 3], [3, 4, 2, 1]])
  assert segments.segments_info() == [
      {'id': 1, 'category_id': 7, 'iscrowd': 0, 'area': 2,
       'bbox': [2, 0, 2, 2]},
      {'id': 2, 'category_id': 11, 'iscrowd': 0, 'area': 1,
       'bbox': [2, 1, 1, 1]},
      {'id': 3, 'category_id': 26, 'iscrowd': 0, 'area': 2,
       'bbox': [0, 0, 4, 2]},
      {'id': 4, 'category_id': 26, 'iscrowd': 0, 'area': 1,
       'bbox': [1, 1, 1, 1]}]
  rgb = segments.rgb()
  assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
  np.testing.assert_array_equal(cityscapes_official.rgb_to_id(rgb), segments.index)


# The descriptor field the writers read.


def test_original_category_ids_round_trip_and_old_files_load(tmp_path):
  cityscapes = _cityscapes()
  assert 'original_category_ids' not in cityscapes.to_json_dict()
  path = str(tmp_path / 'old.json')
  cityscapes.write_json(path)    # As converters wrote it before the field.
  assert dataset_descriptor.read_json(path) == cityscapes
  custom = dataclasses.replace(cityscapes, name='my_city',
                               original_category_ids=tuple(range(40, 59)))
  custom.write_json(path)
  assert json.loads(open(path).read())['original_category_ids'] == list(
      range(40, 59))
  assert dataset_descriptor.read_json(path) == custom
  without = dataclasses.replace(cityscapes, original_category_ids=())
  without.write_json(path)
  assert dataset_descriptor.read_json(path) == without
  coco_descriptor = dataset_descriptor.DATASETS.get('coco_panoptic')
  renamed = dataclasses.replace(coco_descriptor, name='my_coco')
  renamed.write_json(path)
  assert dataset_descriptor.read_json(path) == renamed
  assert renamed.original_category_id(0) is None
  assert renamed.original_category_id(133) == 200


def test_original_category_ids_are_checked():
  cityscapes = _cityscapes()
  with pytest.raises(ValueError, match=r'Dataset "cityscapes_panoptic": 2 '
                     r'original category ids for num_classes=19'):
    dataclasses.replace(cityscapes, original_category_ids=(1, 2))
  with pytest.raises(ValueError, match=r'original category ids \[7\] are '
                     'listed twice'):
    dataclasses.replace(cityscapes, original_category_ids=(7,) * 19)
  with pytest.raises(ValueError, match=r'original category ids must be '
                     r'integers >= 0 or None, got -1'):
    dataclasses.replace(cityscapes, original_category_ids=(-1,) + (None,) * 18)
