"""MaskAP against pycocotools run on the whole eval set at once."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import coco
from pycocotools import cocoeval
from pycocotools import mask as mask_utils

from deeplab2 import label_spec
from deeplab2.evaluation import mask_ap

DIVISOR = 1000
IGNORE = 255
STUFF_A, PERSON, CAR, BIKE, STUFF_B = range(5)
THINGS = (PERSON, CAR, BIKE)
NEVER_IN_GT = BIKE     # only ever predicted
SPEC = label_spec.LabelSpec(num_classes=5, ignore_label=IGNORE,
                            label_divisor=DIVISOR, thing_class_ids=THINGS)
KEYS = ('ap', 'ap50', 'ap75', 'ap_small', 'ap_medium', 'ap_large')


def _rectangle(rng, height, width, min_size, max_size):
  h = int(rng.integers(min_size, min(max_size, height) + 1))
  w = int(rng.integers(min_size, min(max_size, width) + 1))
  y = int(rng.integers(0, height - h + 1))
  x = int(rng.integers(0, width - w + 1))
  return slice(y, y + h), slice(x, x + w)


def _random_image(rng, size, num_instances, crowd):
  """gt, prediction int64 [size, size] and the predicted scores."""
  gt = np.full((size, size), STUFF_A * DIVISOR, np.int64)
  gt[_rectangle(rng, size, size, 2, size // 2)] = STUFF_B * DIVISOR
  gt[_rectangle(rng, size, size, 1, 6)] = IGNORE * DIVISOR
  gt[:2, :3] = -1
  for instance in range(1, num_instances + 1):
    cls = (PERSON, CAR)[int(rng.integers(2))]
    # On a large image the last instance is large (> 96**2 px).
    min_size = 98 if size > 98 and instance == num_instances else 2
    gt[_rectangle(rng, size, size, min_size, size)] = cls * DIVISOR + instance
  if crowd:
    gt[_rectangle(rng, size, size, 3, size // 2)] = CAR * DIVISOR

  pred = np.where(gt // DIVISOR == STUFF_B, STUFF_B, STUFF_A) * DIVISOR
  scores = {}
  next_instance = 1
  for segment_id in np.unique(gt):
    cls, instance = divmod(int(segment_id), DIVISOR)
    if cls not in THINGS or instance == 0 or rng.random() < 0.2:
      continue
    mask = np.roll(gt == segment_id, rng.integers(-2, 3, size=2), (0, 1))
    if rng.random() < 0.1:
      cls = (PERSON, CAR)[int(rng.integers(2))]
    pred[mask] = cls * DIVISOR + next_instance
    next_instance += 1
  for _ in range(int(rng.integers(0, 4))):   # false positives, BIKE too
    cls = THINGS[int(rng.integers(3))]
    pred[_rectangle(rng, size, size, 2, size // 2)] = (
        cls * DIVISOR + next_instance)
    next_instance += 1
  if rng.random() < 0.3:   # a predicted crowd is not a detection
    pred[_rectangle(rng, size, size, 2, 6)] = PERSON * DIVISOR
  pred[_rectangle(rng, size, size, 1, 4)] = IGNORE * DIVISOR
  for segment_id in np.unique(pred):
    cls, instance = divmod(int(segment_id), DIVISOR)
    if cls in THINGS and instance > 0:
      # A coarse grid of scores, so ties within and across images happen.
      scores[int(segment_id)] = (float(rng.choice([0.25, 0.5, 0.75]))
                                 if rng.random() < 0.5 else float(rng.random()))
  scores[123456] = 0.5   # an id not in the prediction is not read
  return gt, pred, scores


def _eval_set(seed=0):
  rng = np.random.default_rng(seed)
  images = []
  for index in range(24):
    if index % 6 == 5:   # no instance at all
      size = int(rng.integers(20, 61))
      gt = np.full((size, size), STUFF_A * DIVISOR, np.int64)
      gt[3:9, 4:12] = IGNORE * DIVISOR
      images.append((gt, gt.copy(), {}))
      continue
    size = 120 if index % 4 == 0 else int(rng.integers(20, 61))
    images.append(_random_image(rng, size, int(rng.integers(0, 7)),
                                crowd=index % 3 == 0))
  return images


def _reference_coco_eval(images, max_dets=(1, 10, 100)):
  """pycocotools on one COCO set that holds every image's annotations."""
  dataset = {'images': [], 'annotations': [],
             'categories': [{'id': c} for c in THINGS]}
  detections = []
  for image_id, (gt, pred, scores) in enumerate(images, start=1):
    dataset['images'].append({'id': image_id, 'height': gt.shape[0],
                              'width': gt.shape[1]})
    for segment_id in np.unique(gt):
      cls, instance = divmod(int(segment_id), DIVISOR)
      if segment_id < 0 or cls not in THINGS:
        continue
      mask = gt == segment_id
      dataset['annotations'].append({
          'id': len(dataset['annotations']) + 1, 'image_id': image_id,
          'category_id': cls, 'iscrowd': int(instance == 0),
          'area': int(mask.sum()),
          'segmentation': mask_utils.encode(np.asfortranarray(
              mask.astype(np.uint8)))})
    for segment_id in np.unique(pred):
      cls, instance = divmod(int(segment_id), DIVISOR)
      if cls not in THINGS or instance == 0:
        continue
      detections.append({
          'image_id': image_id, 'category_id': cls,
          'score': scores[int(segment_id)],
          'segmentation': mask_utils.encode(np.asfortranarray(
              (pred == segment_id).astype(np.uint8)))})
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = coco.COCO()
    coco_gt.dataset = dataset
    coco_gt.createIndex()
    evaluator = cocoeval.COCOeval(coco_gt, coco_gt.loadRes(detections),
                                  'segm')
    evaluator.params.maxDets = list(max_dets)
    evaluator.evaluate()
    evaluator.accumulate()
    if tuple(max_dets) == (1, 10, 100):
      evaluator.summarize()
  return evaluator, dataset


def _per_class_ap(evaluator, m):
  precision = evaluator.eval['precision']
  per_class = {}
  for k, c in enumerate(evaluator.params.catIds):
    values = precision[:, :, k, 0, m]
    per_class[c] = (float(np.mean(values[values > -1]))
                    if (values > -1).any() else -1.0)
  return per_class


def _mask_ap(images, **kwargs):
  metric = mask_ap.MaskAP(SPEC, **kwargs)
  for gt, pred, scores in images:
    metric.update(gt, pred, scores)
  return metric


@pytest.fixture(scope='module', params=[0, 1, 2])
def eval_set(request):
  return _eval_set(seed=request.param)


@pytest.fixture(scope='module')
def reference(eval_set):
  return _reference_coco_eval(eval_set)


def test_eval_set_covers_the_cases(eval_set, reference):
  _, dataset = reference
  anns = dataset['annotations']
  areas = [a['area'] for a in anns if not a['iscrowd']]
  assert any(a['iscrowd'] for a in anns)
  assert min(areas) < 32 ** 2 and max(areas) > 96 ** 2
  assert any(32 ** 2 < a < 96 ** 2 for a in areas)
  assert NEVER_IN_GT not in {a['category_id'] for a in anns}
  assert any(np.any(pred // DIVISOR == NEVER_IN_GT) for _, pred, _ in eval_set)
  with_instances = {a['image_id'] for a in anns}
  assert len(with_instances) < len(eval_set)
  scores = [s for _, _, image_scores in eval_set
            for s in image_scores.values()]
  assert len(scores) > len(set(scores))   # ties


def test_matches_pycocotools(eval_set, reference):
  evaluator, _ = reference
  result = _mask_ap(eval_set).result()
  for index, key in enumerate(KEYS):
    assert result[key] == pytest.approx(evaluator.stats[index], abs=1e-12), key
    assert isinstance(result[key], float)
  assert 0 < result['ap'] < 1
  expected = _per_class_ap(evaluator, m=2)
  assert result['per_class_ap'].keys() == expected.keys()
  for c in THINGS:
    assert result['per_class_ap'][c] == pytest.approx(expected[c], abs=1e-12)
  assert result['per_class_ap'][NEVER_IN_GT] == -1.0


def test_max_detections_matches_pycocotools(eval_set):
  evaluator, _ = _reference_coco_eval(eval_set, max_dets=(1, 2, 100))
  result = _mask_ap(eval_set, max_detections=2).result()
  expected = _per_class_ap(evaluator, m=1)
  for c in THINGS:
    assert result['per_class_ap'][c] == pytest.approx(expected[c], abs=1e-12)
  values = evaluator.eval['precision'][:, :, :, 0, 1]
  assert result['ap'] == pytest.approx(np.mean(values[values > -1]),
                                       abs=1e-12)
  assert result['ap'] != _mask_ap(eval_set).result()['ap']   # dets were cut


def test_merged_states_give_the_same_result(eval_set):
  whole = _mask_ap(eval_set).result()
  first, second = _mask_ap(eval_set[:10]), _mask_ap(eval_set[10:])
  merged = mask_ap.MaskAP(SPEC)
  merged.add_state(first.state())
  merged.add_state(second.state())
  assert merged.result() == whole
  first.add_state(second.state())
  assert first.result() == whole


def test_state_layout(eval_set):
  state = _mask_ap(eval_set[:6]).state()
  assert state['image_id'].tolist() == list(range(1, 7))
  num_dets, num_gts = len(state['det_score']), len(state['gt_class'])
  assert num_dets and num_gts
  assert state['det_matched'].shape == (num_dets, 4, 10)
  assert state['det_ignored'].dtype == np.bool_
  assert state['gt_ignored'].shape == (num_gts, 4)
  assert state['det_score'].dtype == np.float64
  assert state['det_image_id'].dtype == np.int64
  empty = mask_ap.MaskAP(SPEC).state()
  assert {k: v.shape[1:] for k, v in empty.items()} == {
      k: v.shape[1:] for k, v in state.items()}
  assert all(len(v) == 0 for v in empty.values())


def test_add_state_rejects_a_bad_state(eval_set):
  state = _mask_ap(eval_set[:6]).state()
  metric = mask_ap.MaskAP(SPEC)
  with pytest.raises(ValueError, match='no "det_score"'):
    metric.add_state({k: v for k, v in state.items() if k != 'det_score'})
  with pytest.raises(ValueError, match='ids outside 1..0'):
    metric.add_state(dict(state, image_id=state['image_id'][:0]))
  with pytest.raises(ValueError, match='not thing classes'):
    metric.add_state(dict(state, gt_class=state['gt_class'] * 0 + STUFF_B))


def test_missing_score_raises():
  gt = np.zeros((20, 20), np.int64)
  pred = gt.copy()
  pred[2:6, 2:6] = CAR * DIVISOR + 7
  pred[10:14, 2:6] = PERSON * DIVISOR + 3
  metric = mask_ap.MaskAP(SPEC)
  with pytest.raises(ValueError, match=f'segment {PERSON * DIVISOR + 3} '):
    metric.update(gt, pred, {CAR * DIVISOR + 7: 0.9})
  with pytest.raises(ValueError, match='score nan'):
    metric.update(gt, pred, {CAR * DIVISOR + 7: 0.9,
                             PERSON * DIVISOR + 3: float('nan')})


def test_bad_inputs_raise():
  metric = mask_ap.MaskAP(SPEC)
  with pytest.raises(ValueError, match='must both be'):
    metric.update(np.zeros((4, 4), int), np.zeros((4, 5), int), {})
  with pytest.raises(ValueError, match='outside 0..4'):
    metric.update(np.zeros((4, 4), int), np.full((4, 4), 7 * DIVISOR), {})
  with pytest.raises(ValueError, match='max_detections'):
    mask_ap.MaskAP(SPEC, max_detections=0)


def test_perfect_prediction():
  # Two objects per class and area range: with one, pycocotools' precision
  # would be 1 - 2**-52 (see the test below).
  gt = np.full((200, 200), STUFF_A * DIVISOR, np.int64)
  for cls, left in ((PERSON, 0), (CAR, 20)):
    gt[0:4, left:left + 5] = cls * DIVISOR + 1               # small
    gt[0:4, left + 10:left + 15] = cls * DIVISOR + 2         # small
  for cls, top in ((PERSON, 10), (CAR, 55)):
    gt[top:top + 40, 0:40] = cls * DIVISOR + 3               # medium
    gt[top:top + 40, 50:90] = cls * DIVISOR + 4              # medium
  gt[100:200, 0:100] = CAR * DIVISOR + 5                     # large
  gt[100:200, 100:200] = CAR * DIVISOR + 6                   # large
  gt[10:30, 100:120] = CAR * DIVISOR                         # crowd
  gt[60:70, 100:110] = IGNORE * DIVISOR
  scores = {int(i): 0.5 for i in np.unique(gt) if i // DIVISOR in THINGS}
  scores[CAR * DIVISOR + 5] = 0.9
  metric = mask_ap.MaskAP(SPEC)
  metric.update(gt, gt.copy(), scores)
  result = metric.result()
  for key in KEYS:
    assert result[key] == 1.0, key
  assert result['per_class_ap'] == {PERSON: 1.0, CAR: 1.0, BIKE: -1.0}


def test_single_perfect_instance_is_just_below_one():
  # pycocotools' precision tp / (tp + fp + eps) is 1 - 2**-52 at tp = 1.
  gt = np.zeros((30, 30), np.int64)
  gt[5:15, 5:15] = CAR * DIVISOR + 1
  metric = mask_ap.MaskAP(SPEC)
  metric.update(gt, gt.copy(), {CAR * DIVISOR + 1: 0.5})
  assert metric.result()['ap'] == 1 - 2.0 ** -52


def test_no_image_and_no_instance_give_minus_one():
  empty = mask_ap.MaskAP(SPEC).result()
  assert empty == {**{k: -1.0 for k in KEYS},
                   'per_class_ap': {c: -1.0 for c in THINGS}}
  metric = mask_ap.MaskAP(SPEC)
  stuff_only = np.zeros((20, 20), np.int64)
  metric.update(stuff_only, stuff_only, {})
  assert metric.result() == empty


def test_library_prints_nothing(eval_set, capsys):
  _mask_ap(eval_set[:4]).result()
  assert capsys.readouterr().out == ''
