"""COCO mask AP through pycocotools, streamed over an eval set.

Each image is evaluated on its own by pycocotools (`COCOeval.evaluate` with
`params.imgIds` = that image, iouType 'segm'), and only what
`COCOeval.accumulate` reads of its per-image results is kept: per detection
its score and, per area range and IoU threshold, whether it matched and
whether it is ignored; per ground-truth object whether it is ignored in each
area range. No mask outlives its image. `result()` turns those rows back
into `evalImgs`, runs pycocotools' own `accumulate` and averages its
precision table as `COCOeval.summarize` does.

COCO's rules, as pycocotools applies them:
- Category ids are the thing class ids; image ids are 1, 2, ... in update
  order (they only order ties in score between images).
- A ground-truth thing pixel with instance 0 is a crowd region: one
  iscrowd=1 annotation per class and image. It is ignored in every area
  range, and a detection that covers it (IoU = intersection / detection
  area) is ignored instead of counted as a false positive.
- Area ranges are COCO's: all, small [0, 32^2], medium [32^2, 96^2], large
  [96^2, 1e10], both ends inclusive, on the pixel count of a mask.
- At most `max_detections` detections per image and class, the highest
  scores first (ties: the lower panoptic id first).
- A class without ground truth in any image has AP -1 (undefined) and is
  left out of the averages; its detections count nowhere.
"""

import contextlib
import io

import numpy as np
from pycocotools import coco
from pycocotools import cocoeval
from pycocotools import mask as mask_utils

from deeplab2 import label_spec as label_spec_lib

_DEFAULT_PARAMS = cocoeval.Params(iouType='segm')
_AREA_LABELS = tuple(_DEFAULT_PARAMS.areaRngLbl)   # all, small, medium, large
NUM_AREA_RANGES = len(_DEFAULT_PARAMS.areaRng)     # 4
NUM_IOU_THRESHOLDS = len(_DEFAULT_PARAMS.iouThrs)  # 10: 0.50, 0.55 .. 0.95

# The state's keys, dtypes and shapes after the row axis (A = area ranges,
# T = IoU thresholds); see MaskAP.state.
_STATE_LAYOUT = {
    'image_id': (np.int64, ()),
    'det_image_id': (np.int64, ()),
    'det_class': (np.int64, ()),
    'det_rank': (np.int64, ()),
    'det_score': (np.float64, ()),
    'det_matched': (np.bool_, (NUM_AREA_RANGES, NUM_IOU_THRESHOLDS)),
    'det_ignored': (np.bool_, (NUM_AREA_RANGES, NUM_IOU_THRESHOLDS)),
    'gt_image_id': (np.int64, ()),
    'gt_class': (np.int64, ()),
    'gt_ignored': (np.bool_, (NUM_AREA_RANGES,)),
}


def _quiet():
  """A context that swallows pycocotools' prints to stdout."""
  return contextlib.redirect_stdout(io.StringIO())


def _rle(mask):
  """COCO's compressed RLE of a bool [H, W] mask."""
  return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _coco_api(dataset):
  """A pycocotools COCO object over an in-memory dataset dict."""
  api = coco.COCO()
  api.dataset = dataset
  with _quiet():
    api.createIndex()
  return api


def _mean_defined(values):
  """COCO's average: the mean of the entries > -1, or -1 when none is."""
  defined = values[values > -1]
  return float(np.mean(defined)) if defined.size else -1.0


class MaskAP:
  """COCO mask AP of the thing classes, accumulated image by image.

  Args:
    label_spec: label_spec.LabelSpec of the dataset: its thing classes are
      the COCO categories; the ignore class and negative ids are void.
    max_detections: detections kept per image and class (COCO's maxDets:
      100).

  Raises:
    ValueError: max_detections is not a positive integer.
  """

  def __init__(self, label_spec: label_spec_lib.LabelSpec,
               max_detections: int = 100):
    if (isinstance(max_detections, bool) or
        not isinstance(max_detections, (int, np.integer)) or
        max_detections < 1):
      raise ValueError(f'max_detections must be a positive integer, got '
                       f'{max_detections!r}.')
    self.label_spec = label_spec
    self.max_detections = int(max_detections)
    self.class_ids = tuple(sorted(label_spec.thing_class_ids))
    self.reset()

  def reset(self):
    """Forgets every image."""
    self._num_images = 0
    self._tables = {key: [] for key in _STATE_LAYOUT if key != 'image_id'}

  def _params(self, image_ids):
    """pycocotools' segm parameters for these images and the thing classes."""
    params = cocoeval.Params(iouType='segm')
    params.imgIds = list(image_ids)
    params.catIds = list(self.class_ids)
    params.maxDets = [self.max_detections]
    return params

  def update(self, groundtruth: np.ndarray, prediction: np.ndarray,
             instance_scores: dict):
    """Adds one image.

    Args:
      groundtruth: int [H, W] panoptic ids; negative ids and the ignore
        class are void; a thing pixel with instance 0 is a crowd region.
      prediction: int [H, W] panoptic ids; void and stuff are not part of
        AP, nor thing pixels with instance 0.
      instance_scores: {predicted panoptic id: float score}, a score for
        every predicted thing segment with instance > 0 (other keys are not
        read).

    Raises:
      ValueError: the shapes differ or are not [H, W], a predicted class is
        outside the dataset's classes, or a predicted thing segment has no
        score or a score that is not finite (the message names the id).
      TypeError: the ids are not integers.
    """
    gt = np.asarray(groundtruth)
    pred = np.asarray(prediction)
    if gt.ndim != 2 or gt.shape != pred.shape:
      raise ValueError(f'Ground truth {gt.shape} and prediction {pred.shape} '
                       'must both be [H, W].')
    if gt.dtype.kind not in 'iu' or pred.dtype.kind not in 'iu':
      raise TypeError(f'Panoptic ids must be integers, got {gt.dtype} and '
                      f'{pred.dtype}.')
    gt = gt.astype(np.int64)
    pred = pred.astype(np.int64)
    spec = self.label_spec
    outside = np.unique(pred[~spec.is_void(pred) &
                             (spec.split(pred)[0] >= spec.num_classes)])
    if outside.size:
      raise ValueError(f'Predicted ids {outside.tolist()} have classes '
                       f'outside 0..{spec.num_classes - 1}.')
    scores = {int(k): v for k, v in instance_scores.items()}

    self._num_images += 1
    image_id = self._num_images
    gt_anns = []
    for segment_id in np.unique(gt).tolist():
      semantic, instance = spec.split(segment_id)
      if segment_id < 0 or not spec.is_thing(semantic):
        continue
      mask = gt == segment_id
      gt_anns.append({
          'id': len(gt_anns) + 1,   # pycocotools reads id 0 as "no match"
          'image_id': image_id, 'category_id': semantic,
          'segmentation': _rle(mask), 'area': int(mask.sum()),
          'iscrowd': int(instance == 0)})
    dt_anns = []
    for segment_id in np.unique(pred).tolist():
      semantic, instance = spec.split(segment_id)
      if segment_id < 0 or instance == 0 or not spec.is_thing(semantic):
        continue
      if segment_id not in scores:
        raise ValueError(f'Predicted thing segment {segment_id} (class '
                         f'{semantic}, instance {instance}) has no score in '
                         'instance_scores.')
      score = float(scores[segment_id])
      if not np.isfinite(score):
        raise ValueError(f'Predicted thing segment {segment_id} has score '
                         f'{score}.')
      rle = _rle(pred == segment_id)
      dt_anns.append({
          'id': len(dt_anns) + 1, 'image_id': image_id,
          'category_id': semantic, 'segmentation': rle, 'score': score,
          'area': float(mask_utils.area(rle)), 'iscrowd': 0})
    if not gt_anns and not dt_anns:
      return   # Every evalImgs entry of the image would be None.

    height, width = gt.shape
    dataset = {'images': [{'id': image_id, 'height': height,
                           'width': width}],
               'categories': [{'id': c, 'name': spec.class_names[c]}
                              for c in self.class_ids]}
    evaluator = cocoeval.COCOeval(
        _coco_api(dict(dataset, annotations=gt_anns)),
        _coco_api(dict(dataset, annotations=dt_anns)), iouType='segm')
    evaluator.params = self._params([image_id])
    with _quiet():
      evaluator.evaluate()
    self._keep_rows(image_id, evaluator.evalImgs)

  def _keep_rows(self, image_id, eval_imgs):
    """Appends the rows of one image's evalImgs (order: class, area)."""
    tables = self._tables
    for k, class_id in enumerate(self.class_ids):
      entries = eval_imgs[k * NUM_AREA_RANGES:(k + 1) * NUM_AREA_RANGES]
      if entries[0] is None:
        continue   # No gt and no detection of this class.
      # Detections come in the same (score) order in every area range; the
      # ground truth is sorted by its ignore flag, so align it by id.
      num_dets = len(entries[0]['dtIds'])
      tables['det_image_id'].append(np.full(num_dets, image_id, np.int64))
      tables['det_class'].append(np.full(num_dets, class_id, np.int64))
      tables['det_rank'].append(np.arange(num_dets, dtype=np.int64))
      tables['det_score'].append(
          np.asarray(entries[0]['dtScores'], np.float64))
      tables['det_matched'].append(np.stack(
          [e['dtMatches'].T != 0 for e in entries], axis=1))
      tables['det_ignored'].append(np.stack(
          [np.asarray(e['dtIgnore'], bool).T for e in entries], axis=1))
      gt_ids = sorted(entries[0]['gtIds'])
      ignored = np.zeros((len(gt_ids), NUM_AREA_RANGES), bool)
      for a, entry in enumerate(entries):
        flags = dict(zip(entry['gtIds'], entry['gtIgnore']))
        ignored[:, a] = [bool(flags[g]) for g in gt_ids]
      tables['gt_image_id'].append(np.full(len(gt_ids), image_id, np.int64))
      tables['gt_class'].append(np.full(len(gt_ids), class_id, np.int64))
      tables['gt_ignored'].append(ignored)

  def state(self) -> dict:
    """The per-image records, as row tables of fixed-dtype NumPy arrays.

    Three tables; each key's leading axis is its table's rows (N images, D
    kept detections, G ground-truth objects). A = 4 area ranges (all, small,
    medium, large), T = 10 IoU thresholds (0.50, 0.55, ..., 0.95).

      image_id      int64 [N]         1..N, one row per image seen.
      det_image_id  int64 [D]         image of the detection.
      det_class     int64 [D]         its class (COCO category).
      det_rank      int64 [D]         0.. its place among the kept
                                      detections of its image and class,
                                      highest score first.
      det_score     float64 [D]       its score.
      det_matched   bool [D, A, T]    pycocotools' dtMatches != 0.
      det_ignored   bool [D, A, T]    pycocotools' dtIgnore.
      gt_image_id   int64 [G]         image of the object (crowds too).
      gt_class      int64 [G]         its class.
      gt_ignored    bool [G, A]       pycocotools' gtIgnore (crowd, or
                                      outside the area range).

    Image ids are local to the instance: pass each instance's state to
    add_state (which renumbers them) rather than concatenating states.
    """
    state = {'image_id': np.arange(1, self._num_images + 1, dtype=np.int64)}
    for key, rows in self._tables.items():
      dtype, shape = _STATE_LAYOUT[key]
      state[key] = (np.concatenate(rows) if rows
                    else np.zeros((0,) + shape, dtype))
    return state

  def add_state(self, state: dict):
    """Appends the images of another instance's state() after this one's.

    Their image ids are renumbered to follow this instance's, so the result
    is that of one instance that saw this one's images, then those.

    Raises:
      ValueError: a key is missing, a shape or dtype does not fit, an image
        id is outside the state's images, or a class is not a thing class.
    """
    arrays = {}
    for key, (dtype, shape) in _STATE_LAYOUT.items():
      if key not in state:
        raise ValueError(f'The state has no "{key}".')
      value = np.asarray(state[key])
      if value.shape[1:] != shape or not np.can_cast(value.dtype, dtype,
                                                      'same_kind'):
        raise ValueError(f'State "{key}" is {value.dtype} {value.shape}; '
                         f'expected {np.dtype(dtype)} [rows, *{shape}].')
      arrays[key] = value.astype(dtype)
    num_images = len(arrays['image_id'])
    for table in ('det', 'gt'):
      images = arrays[f'{table}_image_id']
      if images.size and (images.min() < 1 or images.max() > num_images):
        raise ValueError(f'State "{table}_image_id" holds ids outside '
                         f'1..{num_images}.')
      unknown = np.setdiff1d(arrays[f'{table}_class'], self.class_ids)
      if unknown.size:
        raise ValueError(f'State "{table}_class" holds {unknown.tolist()}, '
                         f'not thing classes {list(self.class_ids)}.')
      lengths = {len(arrays[k]) for k in _STATE_LAYOUT
                 if k.startswith(table + '_')}
      if len(lengths) != 1:
        raise ValueError(f'The state\'s "{table}_" arrays differ in rows.')
    for key in ('det_image_id', 'gt_image_id'):
      arrays[key] = arrays[key] + self._num_images
    self._num_images += num_images
    for key, rows in self._tables.items():
      rows.append(arrays[key])

  def _eval_imgs(self, state):
    """pycocotools' evalImgs (order: class, area, image) from the rows."""
    num_images = len(state['image_id'])
    class_ids = np.array(self.class_ids, np.int64)   # sorted
    num_slots = len(class_ids) * num_images

    def slots(table):
      # One slot per (class, image), class-major as pycocotools orders them.
      class_index = np.searchsorted(class_ids, state[f'{table}_class'])
      return class_index * num_images + state[f'{table}_image_id'] - 1

    det_slots = slots('det')
    det_order = np.lexsort((state['det_rank'], det_slots))
    det_bounds = np.searchsorted(det_slots[det_order],
                                 np.arange(num_slots + 1))
    gt_slots = slots('gt')
    gt_order = np.argsort(gt_slots, kind='stable')
    gt_bounds = np.searchsorted(gt_slots[gt_order], np.arange(num_slots + 1))

    eval_imgs = [None] * (num_slots * NUM_AREA_RANGES)
    for slot in np.union1d(det_slots, gt_slots).tolist():
      dets = det_order[det_bounds[slot]:det_bounds[slot + 1]]
      gts = gt_order[gt_bounds[slot]:gt_bounds[slot + 1]]
      k, i = divmod(slot, num_images)
      scores = state['det_score'][dets]
      matched = state['det_matched'][dets]     # [D, A, T]
      ignored = state['det_ignored'][dets]
      gt_ignored = state['gt_ignored'][gts]    # [G, A]
      for a in range(NUM_AREA_RANGES):
        eval_imgs[(k * NUM_AREA_RANGES + a) * num_images + i] = {
            'dtScores': scores,
            'dtMatches': matched[:, a, :].T,
            'dtIgnore': ignored[:, a, :].T,
            'gtIgnore': gt_ignored[:, a],
        }
    return eval_imgs

  def result(self) -> dict:
    """COCO mask AP over the images seen.

    Returns:
      {'ap': AP at IoU 0.50:0.95, 'ap50', 'ap75', 'ap_small', 'ap_medium',
      'ap_large' (IoU 0.50:0.95): Python floats in [0, 1], -1 where no
      ground truth defines them (as COCO); 'per_class_ap': {thing class id:
      AP at IoU 0.50:0.95, all areas, or -1}}. All at max_detections.
    """
    state = self.state()
    image_ids = state['image_id'].tolist()
    evaluator = cocoeval.COCOeval(iouType='segm')
    evaluator.params = self._params(image_ids)
    # What evaluate() would have left: the parameters it ran with.
    evaluator._paramsEval = self._params(image_ids)
    evaluator.evalImgs = self._eval_imgs(state)
    with _quiet():
      evaluator.accumulate()
    precision = evaluator.eval['precision']   # [T, R, K, A, M]
    params = evaluator.params

    def average(iou=None, area='all'):
      # COCOeval.summarize's _summarize, for average precision.
      values = precision
      if iou is not None:
        values = values[np.where(iou == params.iouThrs)[0]]
      area_index = [_AREA_LABELS.index(area)]
      return _mean_defined(values[:, :, :, area_index, [0]])

    metrics = {'ap': average(), 'ap50': average(iou=.5),
               'ap75': average(iou=.75), 'ap_small': average(area='small'),
               'ap_medium': average(area='medium'),
               'ap_large': average(area='large')}
    metrics['per_class_ap'] = {
        c: _mean_defined(precision[:, :, k, 0, 0])
        for k, c in enumerate(self.class_ids)}
    return metrics
