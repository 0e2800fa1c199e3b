"""Our PQ against cityscapesScripts' (the panopticapi rules) on COCO files.

Every case is written as COCO-panoptic-format folders and JSONs, scored by
coco_panoptic_files.evaluate_folders and by cityscapesScripts'
evalPanopticSemanticLabeling.evaluatePanoptic, and the two must agree on
PQ, SQ, RQ and N for all / things / stuff, and on PQ, SQ, RQ, TP, FP and FN
of every category.
"""

import json
import os

import numpy as np
import pytest

from cityscapesscripts.evaluation import (
    evalPanopticSemanticLabeling as official)
from cityscapesscripts.helpers import labels as cityscapes_labels

from deeplab2 import label_spec
from deeplab2.data import panoptic_format
from deeplab2.evaluation import coco_panoptic_files
from deeplab2.evaluation import metric_set
from deeplab2.evaluation import panoptic_quality

TEST_DATA = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'testdata')
COCO_SAMPLE = os.path.join(TEST_DATA, 'coco_panoptic_sample')
CITYSCAPES_SAMPLE = os.path.join(TEST_DATA, 'cityscapes_sample', 'gtFine')

# Non-contiguous category ids, in a non-sorted order.
PERSON, WALL, SKY, CAR = 7, 19, 200, 42
CATEGORIES = [
    {'id': PERSON, 'name': 'person', 'isthing': 1},
    {'id': WALL, 'name': 'wall', 'isthing': 0},
    {'id': SKY, 'name': 'sky', 'isthing': 0},
    {'id': CAR, 'name': 'car', 'isthing': 1},
]
TOLERANCE = 1e-9


def _paint(shape, rectangles):
  """int64 [H, W] ids: (id, y0, y1, x0, x1) rectangles painted in order."""
  ids = np.zeros(shape, np.int64)
  for segment_id, y0, y1, x0, x1 in rectangles:
    ids[y0:y1, x0:x1] = segment_id
  return ids


def _write_side(root, name, images, categories=None):
  """Writes <root>/<name>.json and the PNGs in <root>/<name>/.

  Args:
    root: pathlib.Path.
    name: 'gt' or 'pred'.
    images: list of (image_id, ids int [H, W], segments) where segments is
      {segment id: category id} (prediction) or {segment id: (category id,
      iscrowd)} (ground truth), in segments_info order.
    categories: the JSON's categories (ground truth).

  Returns:
    (json path, folder) as strings.
  """
  folder = root / name
  folder.mkdir(exist_ok=True)
  annotations = []
  for image_id, ids, segments in images:
    file_name = f'{image_id}.png'
    coco_panoptic_files.write_id_png(str(folder / file_name), ids)
    info = []
    for segment_id, value in segments.items():
      if isinstance(value, tuple):
        category_id, iscrowd = value
        info.append({'id': segment_id, 'category_id': category_id,
                     'iscrowd': int(iscrowd),
                     'area': int((ids == segment_id).sum())})
      else:
        info.append({'id': segment_id, 'category_id': value})
    annotations.append({'image_id': image_id, 'file_name': file_name,
                        'segments_info': info})
  data = {'annotations': annotations}
  if categories is not None:
    data['categories'] = categories
  json_path = root / f'{name}.json'
  json_path.write_text(json.dumps(data))
  return str(json_path), str(folder)


def _official(monkeypatch, tmp_path, gt_json, gt_folder, pred_json,
              pred_folder):
  """cityscapesScripts' results dict and its per-category PQStat.

  Its images are scored in this process (pq_compute_single_core on all of
  them) instead of a pool of one process per core: the same rules and sums,
  without forking the test process.
  """
  stats = []

  def one_core(matched, gt_dir, pred_dir, categories):
    stats.append(official.pq_compute_single_core(0, matched, gt_dir,
                                                 pred_dir, categories))
    return stats[-1]

  monkeypatch.setattr(official, 'pq_compute_multi_core', one_core)
  results = official.evaluatePanoptic(gt_json, gt_folder, pred_json,
                                      pred_folder,
                                      str(tmp_path / 'official.json'))
  return results, stats[0]


def _compare(monkeypatch, tmp_path, gt_json, gt_folder, pred_json,
             pred_folder):
  """Scores with both tools, asserts they agree; returns our metrics."""
  ours, categories = coco_panoptic_files.evaluate_folders(
      gt_json, gt_folder, pred_json, pred_folder)
  theirs, stat = _official(monkeypatch, tmp_path, gt_json, gt_folder,
                           pred_json, pred_folder)
  for group, their_group in (('all', 'All'), ('things', 'Things'),
                             ('stuff', 'Stuff')):
    assert ours[f'num_classes_{group}'] == theirs[their_group]['n']
    for key in ('pq', 'sq', 'rq'):
      assert ours[f'{key}_{group}'] == pytest.approx(
          theirs[their_group][key], abs=TOLERANCE), (group, key)
  for category_id in categories:
    counts = stat[category_id]
    mine = ours['per_class'].get(
        category_id, {'pq': 0.0, 'sq': 0.0, 'rq': 0.0, 'tp': 0, 'fp': 0,
                      'fn': 0})
    assert (mine['tp'], mine['fp'], mine['fn']) == (
        counts.tp, counts.fp, counts.fn), category_id
    for key in ('pq', 'sq', 'rq'):
      assert mine[key] == pytest.approx(
          theirs['per_class'][category_id][key], abs=TOLERANCE)
  assert ours['num_images'] == len(json.loads(
      open(gt_json, encoding='utf-8').read())['annotations'])
  return ours


def _compare_images(monkeypatch, tmp_path, gt_images, pred_images,
                    categories=None):
  gt = _write_side(tmp_path, 'gt', gt_images, categories or CATEGORIES)
  pred = _write_side(tmp_path, 'pred', pred_images)
  return _compare(monkeypatch, tmp_path, *gt, *pred)


def _counts(metrics, category_id):
  scores = metrics['per_class'][category_id]
  return scores['tp'], scores['fp'], scores['fn']


def _assert_mixed(metrics):
  """The case has true positives, false positives and false negatives."""
  for key in ('tp', 'fp', 'fn'):
    assert sum(c[key] for c in metrics['per_class'].values()) > 0, key


def test_crowd_regions_absorb_only_predictions_of_their_category(
    monkeypatch, tmp_path):
  gt = _paint((40, 40), [(1, 0, 40, 0, 40),      # wall
                         (2, 0, 20, 0, 20),      # person crowd
                         (3, 25, 35, 25, 35),    # person
                         (4, 20, 40, 0, 15)])    # car crowd
  pred = _paint((40, 40), [(10, 0, 40, 0, 40),   # wall
                           (11, 2, 12, 2, 12),   # person, in the crowd
                           (12, 12, 26, 12, 26),  # person, 64/196 on crowd
                           (13, 2, 8, 14, 20),   # car in the person crowd
                           (14, 25, 35, 26, 35),  # person, IoU 0.9
                           (15, 30, 40, 2, 8)])  # car in the car crowd
  ours = _compare_images(
      monkeypatch, tmp_path,
      [(1, gt, {1: (WALL, False), 2: (PERSON, True), 3: (PERSON, False),
                4: (CAR, True)})],
      [(1, pred, {10: WALL, 11: PERSON, 12: PERSON, 13: CAR, 14: PERSON,
                  15: CAR})])
  assert _counts(ours, PERSON) == (1, 1, 0)
  assert _counts(ours, CAR) == (0, 1, 0)


@pytest.mark.parametrize('order, person_fp', [((2, 3), 1), ((3, 2), 2)])
def test_only_the_last_crowd_segment_of_a_category_absorbs(
    monkeypatch, tmp_path, order, person_fp):
  # panopticapi keeps one crowd segment per category and image: the last in
  # segments_info. One prediction lies in crowd 2, two in crowd 3.
  gt = _paint((30, 30), [(1, 0, 30, 0, 30), (2, 0, 10, 0, 10),
                         (3, 20, 30, 20, 30)])
  pred = _paint((30, 30), [(10, 0, 30, 0, 30), (11, 1, 9, 1, 9),
                           (12, 21, 25, 21, 29), (13, 26, 29, 21, 29)])
  segments = {1: (WALL, False), 2: (PERSON, True), 3: (PERSON, True)}
  ours = _compare_images(
      monkeypatch, tmp_path,
      [(1, gt, {s: segments[s] for s in (1,) + order})],
      [(1, pred, {10: WALL, 11: PERSON, 12: PERSON, 13: PERSON})])
  assert _counts(ours, PERSON) == (0, person_fp, 0)


@pytest.mark.parametrize('on_crowd, official_fp', [('first', 1), ('last', 0)])
def test_in_training_pq_merges_the_crowd_regions_of_a_class(
    monkeypatch, tmp_path, on_crowd, official_fp):
  """A documented difference (docs/evaluation.md): the label encoding gives
  every crowd region of a class instance 0, so the in-training evaluator
  sees one crowd segment per class, where the official tools see each
  crowd segment apart and only the last listed absorbs predictions."""
  # On a wall: two person crowds, 2 (listed first) and 3 (listed last), and
  # person 4, predicted exactly. One more predicted person lies inside one
  # of the crowds.
  gt = _paint((30, 30), [(1, 0, 30, 0, 30), (2, 0, 10, 0, 10),
                         (3, 20, 30, 20, 30), (4, 20, 30, 0, 10)])
  start = {'first': 1, 'last': 21}[on_crowd]
  pred = _paint((30, 30), [(10, 0, 30, 0, 30), (11, 20, 30, 0, 10),
                           (12, start, start + 8, start, start + 8)])
  official = _compare_images(
      monkeypatch, tmp_path,
      [(1, gt, {1: (WALL, False), 2: (PERSON, True), 3: (PERSON, True),
                4: (PERSON, False)})],
      [(1, pred, {10: WALL, 11: PERSON, 12: PERSON})])
  # The in-training path: the converter's label (what the TFRecords hold)
  # and the evaluator's MetricSet. Classes: CATEGORIES' order.
  spec = label_spec.LabelSpec(num_classes=4, ignore_label=255,
                              label_divisor=1000, thing_class_ids=(0, 3))
  category_map = panoptic_format.CategoryMap(
      {c['id']: i for i, c in enumerate(CATEGORIES)}, spec)
  with open(tmp_path / 'gt.json', encoding='utf-8') as f:
    segments = json.load(f)['annotations'][0]['segments_info']
  label = panoptic_format.panoptic_label(str(tmp_path / 'gt' / '1.png'),
                                         segments, category_map)
  # Both crowds became one id: person (class 0), instance 0.
  assert np.unique(label[(gt == 2) | (gt == 3)]).tolist() == [0]
  semantic = np.where(pred == 10, 1, 0)           # wall 1, person 0
  instance = np.where(pred == 10, 0, pred - 10)   # persons 1 and 2
  in_training = metric_set.MetricSet(spec, with_mask_ap=False)
  in_training.update(label, semantic * 1000 + instance, semantic, {})
  in_training = in_training.result()

  # Matches and false negatives agree; so does every other class.
  assert in_training['per_class'][1] == official['per_class'][WALL]
  assert _counts(official, PERSON) == (1, official_fp, 0)
  assert _counts(in_training, 0) == (1, 0, 0)
  if official_fp:
    # Inside the first crowd: a false positive for the official tools,
    # absorbed in training, whose PQ is higher.
    assert official['per_class'][PERSON]['pq'] == pytest.approx(2 / 3)
    assert in_training['per_class'][0]['pq'] == 1.0
    assert in_training['pq_all'] > official['pq_all']
  else:
    # Inside the last crowd: absorbed by both, the same metrics.
    for key in ('pq', 'sq', 'rq'):
      for group in ('all', 'things', 'stuff'):
        assert in_training[f'{key}_{group}'] == pytest.approx(
            official[f'{key}_{group}'], abs=TOLERANCE)


def test_void_pixels(monkeypatch, tmp_path):
  gt = _paint((30, 40), [(1, 0, 30, 0, 40), (2, 5, 15, 5, 15),
                         (0, 20, 30, 0, 40)])       # bottom third void
  pred = _paint((30, 40), [(10, 0, 30, 0, 40),
                           (11, 5, 15, 5, 12),     # 70 px of person 2 ...
                           (0, 5, 15, 12, 15),     # ... its 30 others void
                           (12, 18, 30, 20, 30),   # 100 of 120 px on void
                           (13, 12, 25, 30, 40),   # 50 of 130 px on void
                           (14, 0, 4, 0, 4)])      # sky on wall
  ours = _compare_images(
      monkeypatch, tmp_path,
      [(1, gt, {1: (WALL, False), 2: (PERSON, False)})],
      [(1, pred, {10: WALL, 11: PERSON, 12: PERSON, 13: PERSON, 14: SKY})])
  assert _counts(ours, PERSON) == (1, 1, 0)
  assert ours['per_class'][PERSON]['sq'] == pytest.approx(0.7)


def test_tiny_segments(monkeypatch, tmp_path):
  gt = _paint((20, 20), [(1, 0, 20, 0, 20), (2, 1, 2, 1, 2),
                         (3, 5, 6, 5, 7), (4, 10, 11, 10, 11),
                         (5, 15, 16, 15, 16)])
  pred = _paint((20, 20), [(10, 0, 20, 0, 20),
                           (11, 1, 2, 1, 2),       # 1 px, IoU 1
                           (12, 5, 6, 5, 6),       # 1 of 2 px: IoU 0.5
                           (13, 10, 11, 10, 13),   # 3 px over 1: IoU 1/3
                           (14, 18, 19, 18, 19),   # 1 px on the wall
                           (15, 15, 16, 15, 16)])  # 1 px, wrong category
  ours = _compare_images(
      monkeypatch, tmp_path,
      [(1, gt, {1: (WALL, False), 2: (PERSON, False), 3: (PERSON, False),
                4: (PERSON, False), 5: (CAR, False)})],
      [(1, pred, {10: WALL, 11: PERSON, 12: PERSON, 13: PERSON, 14: PERSON,
                  15: PERSON})])
  assert _counts(ours, PERSON) == (1, 4, 2)
  assert _counts(ours, CAR) == (0, 0, 1)


def test_mismatched_categories(monkeypatch, tmp_path):
  gt = _paint((24, 32), [(1, 0, 12, 0, 32), (2, 12, 24, 0, 32),
                         (3, 2, 8, 2, 8)])
  pred = _paint((24, 32), [(5, 0, 12, 0, 32), (6, 12, 24, 0, 32),
                           (7, 2, 8, 2, 8)])
  ours = _compare_images(
      monkeypatch, tmp_path,
      [(1, gt, {1: (WALL, False), 2: (SKY, False), 3: (PERSON, False)})],
      [(1, pred, {5: WALL, 6: WALL, 7: CAR})])
  assert _counts(ours, WALL) == (1, 1, 0)
  assert _counts(ours, SKY) == (0, 0, 1)
  assert _counts(ours, PERSON) == (0, 0, 1)
  assert _counts(ours, CAR) == (0, 1, 0)


@pytest.mark.parametrize('split_column, wall_counts', [(13, (1, 1, 0)),
                                                       (10, (0, 2, 1))])
def test_two_predicted_segments_of_one_stuff_category(
    monkeypatch, tmp_path, split_column, wall_counts):
  # (A thing too: the official tool cannot score a set without things.)
  gt = _paint((40, 40), [(1, 0, 40, 0, 20), (2, 0, 40, 20, 40),
                         (3, 0, 5, 30, 35)])
  pred = _paint((40, 40), [(5, 0, 40, 0, split_column),
                           (6, 0, 40, split_column, 20),
                           (7, 0, 40, 20, 40), (8, 0, 5, 30, 35)])
  ours = _compare_images(
      monkeypatch, tmp_path,
      [('a', gt, {1: (WALL, False), 2: (SKY, False), 3: (CAR, False)})],
      [('a', pred, {5: WALL, 6: WALL, 7: SKY, 8: CAR})])
  assert _counts(ours, WALL) == wall_counts


def test_images_without_things_among_others(monkeypatch, tmp_path):
  stuff_only = _paint((20, 30), [(1, 0, 10, 0, 30), (2, 10, 20, 0, 30)])
  stuff_pred = _paint((20, 30), [(3, 0, 11, 0, 30), (4, 11, 20, 0, 30)])
  things = _paint((30, 20), [(1, 0, 30, 0, 20), (2, 5, 15, 5, 15)])
  things_pred = _paint((30, 20), [(1, 0, 30, 0, 20), (2, 6, 15, 5, 15)])
  _compare_images(
      monkeypatch, tmp_path,
      [(1, stuff_only, {1: (SKY, False), 2: (WALL, False)}),
       (2, things, {1: (WALL, False), 2: (CAR, False)}),
       (3, stuff_only, {1: (WALL, False), 2: (SKY, False)})],
      [(3, stuff_pred, {3: WALL, 4: SKY}),
       (2, things_pred, {1: WALL, 2: CAR}),
       (1, stuff_pred, {3: SKY, 4: SKY}),
       (99, stuff_pred, {3: SKY, 4: SKY})])   # no ground truth: not read


def test_no_thing_at_all_is_zero_where_the_official_tool_divides_by_zero(
    monkeypatch, tmp_path):
  ids = _paint((20, 20), [(1, 0, 10, 0, 20), (2, 10, 20, 0, 20)])
  gt = _write_side(tmp_path, 'gt', [(1, ids, {1: (SKY, False),
                                              2: (WALL, False)})],
                   CATEGORIES)
  pred = _write_side(tmp_path, 'pred', [(1, ids, {1: SKY, 2: WALL})])
  ours, _ = coco_panoptic_files.evaluate_folders(*gt, *pred)
  assert (ours['pq_things'], ours['num_classes_things']) == (0.0, 0)
  assert (ours['pq_stuff'], ours['num_classes_stuff']) == (1.0, 2)
  with pytest.raises(ZeroDivisionError):
    _official(monkeypatch, tmp_path, *gt, *pred)


def _perturb(rng, gt, segments, categories):
  """A prediction near the ground truth, in COCO form.

  Each ground-truth segment (crowds included) is kept, shifted, given
  another category of its kind, dropped (left unpredicted) or split in two
  segments of its category; then a few spurious rectangles and pixels.

  Returns:
    (ids int64 [H, W], {segment id: category id}).
  """
  height, width = gt.shape
  things = [c['id'] for c in categories if c['isthing']]
  stuff = [c['id'] for c in categories if not c['isthing']]
  new_ids = iter((rng.permutation(50000) + 1).tolist())
  pred = np.zeros_like(gt)
  pred_segments = {}
  step = max(1, min(height, width) // 12)
  for segment_id, (category_id, _) in segments.items():
    mask = gt == segment_id
    action = rng.choice(['keep', 'shift', 'relabel', 'drop', 'split'],
                        p=[0.3, 0.3, 0.15, 0.1, 0.15])
    if action == 'drop':
      continue
    if action == 'shift':
      mask = np.roll(mask, tuple(rng.integers(-step, step + 1, 2)), (0, 1))
    if action == 'relabel':
      category_id = int(rng.choice(things if category_id in things
                                   else stuff))
    parts = [mask]
    if action == 'split':
      columns = np.nonzero(mask)[1]
      cut = int(np.median(columns)) if columns.size else 0
      left = mask & (np.arange(width) < cut)[None, :]
      parts = [left, mask & ~left]
    for part in parts:
      new_id = next(new_ids)
      pred[part] = new_id
      pred_segments[new_id] = category_id
  for _ in range(rng.integers(1, 3)):
    y0, x0 = rng.integers(0, height), rng.integers(0, width)
    new_id = next(new_ids)
    pred[y0:y0 + rng.integers(1, 4 * step + 2),
         x0:x0 + rng.integers(1, 4 * step + 2)] = new_id
    pred_segments[new_id] = int(rng.choice(things + stuff))
  noise = rng.random(gt.shape) < 0.01
  pred[noise] = rng.choice(list(pred_segments) + [0], int(noise.sum()))
  present = set(np.unique(pred).tolist())
  return pred, {s: c for s, c in pred_segments.items() if s in present}


def _random_image(rng):
  """Ground truth of random rectangles: (ids, {id: (category, iscrowd)})."""
  height, width = rng.integers(20, 81, 2)
  ids = np.zeros((height, width), np.int64)
  segments = {}
  for segment_id in range(1, rng.integers(4, 12)):
    category = CATEGORIES[rng.integers(len(CATEGORIES))]
    y0, x0 = rng.integers(0, height - 2), rng.integers(0, width - 2)
    size = 1 + rng.integers(0, max(height, width), 2)
    ids[y0:y0 + size[0], x0:x0 + size[1]] = segment_id
    segments[segment_id] = (category['id'],
                            bool(category['isthing'] and rng.random() < 0.3))
  if rng.random() < 0.5:    # a void band
    y0 = rng.integers(0, height)
    ids[y0:y0 + rng.integers(1, height // 3 + 2)] = 0
  present = set(np.unique(ids).tolist())
  return ids, {s: v for s, v in segments.items() if s in present}


@pytest.mark.parametrize('seed', range(6))
def test_random_images(monkeypatch, tmp_path, seed):
  rng = np.random.default_rng(seed)
  gt_images, pred_images = [], []
  for image_id in range(4):
    ids, segments = _random_image(rng)
    pred, pred_segments = _perturb(rng, ids, segments, CATEGORIES)
    gt_images.append((image_id, ids, segments))
    pred_images.append((image_id, pred, pred_segments))
  gt = _write_side(tmp_path, 'gt', gt_images, CATEGORIES)
  pred = _write_side(tmp_path, 'pred', pred_images)
  _assert_mixed(_compare(monkeypatch, tmp_path, *gt, *pred))


def _perturbed_copy(tmp_path, gt_json, gt_folder, categories, seed):
  """Writes a perturbed prediction of every ground-truth image."""
  rng = np.random.default_rng(seed)
  with open(gt_json, encoding='utf-8') as f:
    annotations = json.load(f)['annotations']
  pred_images = []
  for annotation in annotations:
    ids = coco_panoptic_files.read_id_png(
        os.path.join(gt_folder, annotation['file_name']))
    segments = {s['id']: (s['category_id'], bool(s['iscrowd']))
                for s in annotation['segments_info']}
    pred, pred_segments = _perturb(rng, ids, segments, categories)
    pred_images.append((annotation['image_id'], pred, pred_segments))
  return _write_side(tmp_path, 'pred', pred_images)


@pytest.mark.parametrize('seed', [0, 1])
def test_coco_sample(monkeypatch, tmp_path, seed):
  gt_json = os.path.join(COCO_SAMPLE, 'panoptic_examples.json')
  gt_folder = os.path.join(COCO_SAMPLE, 'panoptic_examples')
  with open(gt_json, encoding='utf-8') as f:
    categories = json.load(f)['categories']
  pred = _perturbed_copy(tmp_path, gt_json, gt_folder, categories, seed)
  ours = _compare(monkeypatch, tmp_path, gt_json, gt_folder, *pred)
  assert ours['num_images'] == 2
  _assert_mixed(ours)


def test_cityscapes_sample(monkeypatch, tmp_path):
  # The sample's JSON has no categories: the train ids of cityscapesScripts'
  # label table, as its createPanopticImgs --use-train-id writes them.
  categories = [{'id': label.trainId, 'name': label.name,
                 'isthing': int(label.hasInstances)}
                for label in cityscapes_labels.labels
                if not label.ignoreInEval]
  with open(os.path.join(CITYSCAPES_SAMPLE,
                         'cityscapes_panoptic_dummy_trainId.json'),
            encoding='utf-8') as f:
    data = json.load(f)
  data['categories'] = categories
  gt_json = tmp_path / 'cityscapes_gt.json'
  gt_json.write_text(json.dumps(data))
  gt_folder = os.path.join(CITYSCAPES_SAMPLE,
                           'cityscapes_panoptic_dummy_trainId')
  pred = _perturbed_copy(tmp_path, str(gt_json), gt_folder, categories, 0)
  ours = _compare(monkeypatch, tmp_path, str(gt_json), gt_folder, *pred)
  _assert_mixed(ours)
  perfect = _compare(monkeypatch, tmp_path, str(gt_json), gt_folder,
                     str(gt_json), gt_folder)
  assert perfect['pq_all'] == 1.0


def test_label_spec_maps_score_as_the_folders(tmp_path):
  """update() on panoptic ids == evaluate_folders on the same segments."""
  # Classes 0..3 are the categories in CATEGORIES' order.
  spec = label_spec.LabelSpec(num_classes=4, ignore_label=255,
                              label_divisor=1000, thing_class_ids=(0, 3))
  category_ids = [c['id'] for c in CATEGORIES]
  rng = np.random.default_rng(7)
  metric = panoptic_quality.PanopticQuality(spec)
  gt_images, pred_images = [], []
  for image_id in range(5):
    ids, segments = _random_image(rng)
    pred, pred_segments = _perturb(rng, ids, segments, CATEGORIES)
    # Panoptic ids: class * 1000 + instance, crowd = instance 0; one crowd
    # segment per class can be written so, and void is the ignore label.
    index = {c: i for i, c in enumerate(category_ids)}
    crowd_classes = set()
    gt_panoptic = np.full(ids.shape, 255 * 1000, np.int64)
    for s, (category_id, iscrowd) in segments.items():
      c = index[category_id]
      if iscrowd and c in crowd_classes:
        iscrowd = False
      crowd_classes |= {c} if iscrowd else set()
      gt_panoptic[ids == s] = c * 1000 + (0 if iscrowd else s)
    pred_panoptic = np.full(pred.shape, 255 * 1000, np.int64)
    for s, category_id in pred_segments.items():
      pred_panoptic[pred == s] = index[category_id] * 1000 + s % 999 + 1
    metric.update(gt_panoptic, pred_panoptic)
    # The same, as COCO segments: one per panoptic id.
    gt_images.append((image_id, _coco_ids(gt_panoptic), {
        p + 1: (category_ids[p // 1000], p % 1000 == 0 and p // 1000 in (0, 3))
        for p in np.unique(gt_panoptic).tolist() if p != 255000}))
    pred_images.append((image_id, _coco_ids(pred_panoptic), {
        p + 1: category_ids[p // 1000]
        for p in np.unique(pred_panoptic).tolist() if p != 255000}))
  gt = _write_side(tmp_path, 'gt', gt_images, CATEGORIES)
  pred = _write_side(tmp_path, 'pred', pred_images)
  folders, _ = coco_panoptic_files.evaluate_folders(*gt, *pred)
  expected = metric.result()
  expected['per_class'] = {category_ids[c]: v
                           for c, v in expected['per_class'].items()}
  expected['num_images'] = 5
  assert folders == expected


def _coco_ids(panoptic):
  """Segment id = panoptic id + 1, void (255000) = 0."""
  return np.where(panoptic == 255000, 0, panoptic + 1)


def _one_image(tmp_path, gt_info, pred_info, gt_annotations=1):
  """Writes a 10 x 10 image of segments 1 (left) and 2 (right) both ways,
  with the given segments_info lists; returns evaluate_folders' arguments."""
  ids = np.ones((10, 10), np.int64)
  ids[:, 5:] = 2
  for name, info, count in (('gt', gt_info, gt_annotations),
                            ('pred', pred_info, 1)):
    (tmp_path / name).mkdir()
    coco_panoptic_files.write_id_png(str(tmp_path / name / '1.png'), ids)
    data = {'annotations': [{'image_id': 1, 'file_name': '1.png',
                             'segments_info': info}] * count,
            'categories': CATEGORIES}
    (tmp_path / f'{name}.json').write_text(json.dumps(data))
  return [str(tmp_path / name) for name in ('gt.json', 'gt', 'pred.json',
                                            'pred')]


GOOD_GT = [{'id': 1, 'category_id': WALL, 'iscrowd': 0, 'area': 50},
           {'id': 2, 'category_id': PERSON, 'iscrowd': 0, 'area': 50}]
GOOD_PRED = [{'id': 1, 'category_id': WALL}, {'id': 2, 'category_id': CAR}]


@pytest.mark.parametrize('gt_info, pred_info, gt_annotations, message', [
    # The official tools would take the ground truth's area from the JSON.
    ([dict(GOOD_GT[0], area=49), GOOD_GT[1]], GOOD_PRED, 1,
     r'gt\.json: image_id 1: segment id 1 has area 49 but 50 pixels in the '
     r'PNG .*gt/1\.png\.'),
    # ... score an image twice.
    (GOOD_GT, GOOD_PRED, 2, r'gt\.json: image_id 1 has two annotations\.'),
    # ... score segment id 0 as a segment and void at once.
    (GOOD_GT, GOOD_PRED + [{'id': 0, 'category_id': WALL}], 1,
     r'pred\.json: image_id 1: segment id 0 is outside 1\.\.16777215 \(0 is '
     r'for unlabeled pixels\)\.'),
    # ... count a ground-truth category that no average reports.
    ([GOOD_GT[0], dict(GOOD_GT[1], category_id=3)], GOOD_PRED, 1,
     r'gt\.json: image_id 1: segment id 2 has category_id 3, not one of the '
     r'ground truth\'s categories\.'),
    (GOOD_GT, [GOOD_PRED[0], dict(GOOD_PRED[1], category_id=None)], 1,
     r'pred\.json: image_id 1: segment id 2 has category_id None, not one of '
     r'the ground truth\'s categories\.'),
])
def test_inconsistent_files_are_errors(tmp_path, gt_info, pred_info,
                                       gt_annotations, message):
  arguments = _one_image(tmp_path, gt_info, pred_info, gt_annotations)
  with pytest.raises(coco_panoptic_files.FormatError, match=message):
    coco_panoptic_files.evaluate_folders(*arguments)


def test_consistent_files_score(tmp_path):
  metrics, categories = coco_panoptic_files.evaluate_folders(
      *_one_image(tmp_path, GOOD_GT, GOOD_PRED))
  assert list(categories) == [PERSON, WALL, SKY, CAR]
  assert categories[CAR] == coco_panoptic_files.Category(CAR, 'car', True)
  assert {c: (v['tp'], v['fp'], v['fn'])
          for c, v in metrics['per_class'].items()} == {
              PERSON: (0, 0, 1), WALL: (1, 0, 0), CAR: (0, 1, 0)}


def _stuff_and_thing_spec():
  return label_spec.LabelSpec(num_classes=2, ignore_label=255,
                              label_divisor=1000, thing_class_ids=(1,))


def test_update_segments_counts_listed_ground_truth_without_pixels():
  # As the official tools: a listed ground-truth segment absent from the
  # map is a false negative (a crowd one is nothing).
  metric = panoptic_quality.PanopticQuality(_stuff_and_thing_spec())
  ids = np.ones((4, 4), np.int64)
  metric.update_segments(ids, {1: (0, False), 5: (1, False), 6: (1, True)},
                         ids, {1: 0})
  assert metric.result()['per_class'][1]['fn'] == 1


@pytest.mark.parametrize('gt_segments, pred_segments, message', [
    ({1: (0, False)}, {1: 0, 2: 1}, r'Predicted segments \[2\] have no pixel'),
    ({}, {1: 0}, r'Ground-truth segment ids \[1\] are in the map but not in '
     r'the segments'),
    ({1: (0, False)}, {1: 2}, r'Predicted segment 1 has class 2, not a class '
     r'in 0\.\.1'),
    ({1: (0, False), 0: (0, False)}, {1: 0},
     r'Ground-truth segment id 0 is reserved for void pixels'),
])
def test_update_segments_rejects_inconsistent_segments(
    gt_segments, pred_segments, message):
  metric = panoptic_quality.PanopticQuality(_stuff_and_thing_spec())
  ids = np.ones((4, 4), np.int64)
  with pytest.raises(ValueError, match=message):
    metric.update_segments(ids, gt_segments, ids, pred_segments)
