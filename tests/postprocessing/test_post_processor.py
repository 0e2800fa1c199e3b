"""Post-processing on hand-made heatmaps, offsets and semantic maps."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import common
from deeplab2 import label_spec
from deeplab2.postprocessing import centers
from deeplab2.postprocessing import post_processor

DIVISOR = 1000
IGNORE = 255
STUFF_A, STUFF_B, THING_A, THING_B = 0, 1, 2, 3
NUM_CLASSES = 4


SPEC = label_spec.LabelSpec(num_classes=NUM_CLASSES, ignore_label=IGNORE,
                            label_divisor=DIVISOR,
                            thing_class_ids=(THING_A, THING_B))


def _processor(**overrides):
  values = dict(label_spec=SPEC, center_score_threshold=0.1, nms_kernel=3,
                keep_k_centers=10, stuff_area_limit=0)
  values.update(overrides)
  return post_processor.PanopticDeepLabPostProcessor(
      post_processor.PostProcessorOptions(**values))


def _logits(semantic):
  return tf.one_hot(semantic, NUM_CLASSES, on_value=5.0, off_value=0.0)


def _offsets_to(points, assignment):
  """Offsets that send each pixel to points[assignment[y, x]]."""
  height, width = assignment.shape
  yy, xx = np.mgrid[0:height, 0:width]
  target = np.asarray(points, np.float32)[assignment]
  return np.stack([target[..., 0] - yy, target[..., 1] - xx], -1).astype(
      np.float32)


def _run(semantic, heatmap, offsets, **overrides):
  outputs = {
      common.PRED_SEMANTIC_LOGITS: _logits(np.asarray(semantic)[None]),
      common.PRED_CENTER_HEATMAP: tf.constant(np.asarray(heatmap,
                                                         np.float32)[None]),
      common.PRED_OFFSET_MAP: tf.constant(offsets[None]),
  }
  result = _processor(**overrides)(outputs)
  return {k: v.numpy()[0] for k, v in result.items()}


def test_two_instances_and_majority_vote():
  semantic = np.full((10, 12), STUFF_A)
  semantic[1:5, 1:5] = THING_A
  semantic[6:9, 7:11] = THING_B
  semantic[6, 7] = THING_A        # a minority pixel inside the second object
  heatmap = np.zeros((10, 12))
  heatmap[3, 3] = 0.9
  heatmap[7, 9] = 0.7
  assignment = np.where(np.arange(10)[:, None] < 5, 0, 1) * np.ones(
      (1, 12), int)
  result = _run(semantic, heatmap, _offsets_to([(3, 3), (7, 9)], assignment))
  panoptic = result[common.PRED_PANOPTIC]
  expected = np.full((10, 12), STUFF_A * DIVISOR)
  expected[1:5, 1:5] = THING_A * DIVISOR + 1
  expected[6:9, 7:11] = THING_B * DIVISOR + 1   # majority: B, minority absorbed
  np.testing.assert_array_equal(panoptic, expected)
  instance = result[common.PRED_INSTANCE]
  assert instance[2, 2] == 1 and instance[7, 8] == 2 and instance[0, 0] == 0
  np.testing.assert_array_equal(result[common.PRED_CENTER_POINTS][:2],
                                [[3, 3], [7, 9]])
  np.testing.assert_allclose(result[common.PRED_CENTER_SCORES][:3],
                             [0.9, 0.7, 0.0], rtol=1e-6)


def test_instance_ids_count_from_one_per_class():
  semantic = np.full((6, 12), STUFF_A)
  semantic[:, 0:3] = THING_A
  semantic[:, 4:7] = THING_B
  semantic[:, 8:11] = THING_A
  heatmap = np.zeros((6, 12))
  heatmap[3, 1], heatmap[3, 5], heatmap[3, 9] = 0.9, 0.8, 0.7
  assignment = np.broadcast_to((np.arange(12) // 4)[None], (6, 12))
  result = _run(semantic, heatmap,
                _offsets_to([(3, 1), (3, 5), (3, 9)], assignment))
  panoptic = result[common.PRED_PANOPTIC]
  assert panoptic[0, 0] == THING_A * DIVISOR + 1
  assert panoptic[0, 5] == THING_B * DIVISOR + 1
  assert panoptic[0, 9] == THING_A * DIVISOR + 2


def test_thing_pixels_without_center_become_void():
  semantic = np.full((8, 8), STUFF_A)
  semantic[2:5, 2:5] = THING_A
  result = _run(semantic, np.zeros((8, 8)), np.zeros((8, 8, 2), np.float32))
  panoptic = result[common.PRED_PANOPTIC]
  assert (panoptic[2:5, 2:5] == IGNORE * DIVISOR).all()
  assert (panoptic[0] == STUFF_A * DIVISOR).all()
  assert not result[common.PRED_CENTER_SCORES].any()


def test_stuff_area_limit_boundary_is_kept():
  semantic = np.full((6, 6), STUFF_A)
  semantic[0, 0:4] = STUFF_B      # exactly 4 pixels of STUFF_B
  kept = _run(semantic, np.zeros((6, 6)), np.zeros((6, 6, 2), np.float32),
              stuff_area_limit=4)[common.PRED_PANOPTIC]
  assert (kept[0, 0:4] == STUFF_B * DIVISOR).all()
  dropped = _run(semantic, np.zeros((6, 6)), np.zeros((6, 6, 2), np.float32),
                 stuff_area_limit=5)[common.PRED_PANOPTIC]
  assert (dropped[0, 0:4] == IGNORE * DIVISOR).all()
  assert (dropped[1:] == STUFF_A * DIVISOR).all()


def test_nms_keeps_exactly_k_of_more_candidates():
  heatmap = np.zeros((1, 9, 30), np.float32)
  for i in range(10):
    heatmap[0, 4, 3 * i] = 0.2 + 0.05 * i   # 10 separate peaks
  points, scores = centers.find_centers(tf.constant(heatmap), 0.1, 3, 4)
  np.testing.assert_array_equal(points.numpy()[0, :, 1], [18, 21, 24, 27])
  assert (scores.numpy() > 0).sum() == 4


def test_nms_threshold_and_suppression():
  heatmap = np.zeros((1, 7, 7), np.float32)
  heatmap[0, 3, 3] = 0.5
  heatmap[0, 3, 4] = 0.4      # suppressed by its neighbour
  heatmap[0, 0, 6] = 0.1      # not above the threshold
  heatmap[0, 6, 0] = 0.3      # a center on the border
  points, scores = centers.find_centers(tf.constant(heatmap), 0.1, 3, 5)
  valid = scores.numpy()[0] > 0
  np.testing.assert_array_equal(points.numpy()[0][valid], [[3, 3], [6, 0]])


def test_batch_of_two_is_processed_independently():
  semantic = np.full((2, 6, 6), STUFF_A)
  semantic[0, 1:4, 1:4] = THING_A
  heatmap = np.zeros((2, 6, 6), np.float32)
  heatmap[0, 2, 2] = 0.8
  offsets = np.stack([_offsets_to([(2, 2)], np.zeros((6, 6), int))] * 2)
  result = _processor()({
      common.PRED_SEMANTIC_LOGITS: _logits(semantic),
      common.PRED_CENTER_HEATMAP: tf.constant(heatmap),
      common.PRED_OFFSET_MAP: tf.constant(offsets)})
  panoptic = result[common.PRED_PANOPTIC].numpy()
  assert panoptic[0, 2, 2] == THING_A * DIVISOR + 1
  assert (panoptic[1] == STUFF_A * DIVISOR).all()


def test_runs_inside_tf_function_with_dynamic_size():
  processor = _processor()
  fn = tf.function(processor.__call__, input_signature=[{
      common.PRED_SEMANTIC_LOGITS: tf.TensorSpec([None, None, None,
                                                  NUM_CLASSES]),
      common.PRED_CENTER_HEATMAP: tf.TensorSpec([None, None, None]),
      common.PRED_OFFSET_MAP: tf.TensorSpec([None, None, None, 2])}])
  for height, width in ((5, 7), (9, 4)):
    semantic = np.full((1, height, width), THING_B)
    heatmap = np.zeros((1, height, width), np.float32)
    heatmap[0, 1, 1] = 0.5
    result = fn({common.PRED_SEMANTIC_LOGITS: _logits(semantic),
                 common.PRED_CENTER_HEATMAP: tf.constant(heatmap),
                 common.PRED_OFFSET_MAP: tf.zeros((1, height, width, 2))})
    assert (result[common.PRED_PANOPTIC].numpy() ==
            THING_B * DIVISOR + 1).all()


def test_instance_score_is_center_score_times_mean_class_probability():
  semantic = np.full((6, 6), STUFF_A)
  semantic[1:4, 1:4] = THING_A
  heatmap = np.zeros((6, 6), np.float32)
  heatmap[2, 2] = 0.8
  result = _run(semantic, heatmap,
                _offsets_to([(2, 2)], np.zeros((6, 6), int)))
  probability = np.exp(5.0) / (np.exp(5.0) + NUM_CLASSES - 1)
  np.testing.assert_allclose(result[common.PRED_INSTANCE_SCORES][0],
                             0.8 * probability, rtol=1e-6)


@pytest.mark.parametrize('height', [5, 64, 130])
@pytest.mark.parametrize('jit_compile', [False, True])
def test_log_normaliser_is_logsumexp_and_skipped_when_not_needed(
    height, jit_compile):
  # Heights below, at and past one block of rows (130: the last block
  # overlaps the one before under XLA); a pixel with a -inf logit, one with
  # all -inf and one with +inf.
  rng = np.random.default_rng(height)
  logits = rng.normal(0, 8, size=(2, height, 7, 19)).astype(np.float32)
  logits[0, 1, 2, 3] = -np.inf
  logits[1, 2, 3, :] = -np.inf
  logits[1, -1, 0, 5] = np.inf
  expected = tf.reduce_logsumexp(logits, axis=-1).numpy()
  fn = tf.function(post_processor.log_normaliser, jit_compile=jit_compile)
  got = fn(tf.constant(logits), needed=tf.constant(True)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
  assert got[1, 2, 3] == -np.inf and got[1, -1, 0] == np.inf
  skipped = fn(tf.constant(logits), needed=tf.constant(False)).numpy()
  np.testing.assert_array_equal(skipped, np.zeros_like(expected))


# COCO's divisor: instance ids of a class run 1..255.
SPEC_256 = label_spec.LabelSpec(num_classes=NUM_CLASSES, ignore_label=IGNORE,
                                label_divisor=256,
                                thing_class_ids=(THING_A, THING_B))


def _single_pixel_instances(height, width, count):
  """`count` one-pixel THING_A instances (raster order), STUFF_A after.

  nms_kernel 1 keeps every heatmap pixel above the threshold as a center,
  and zero offsets group each thing pixel to its own center. THING_B is
  THING_A + 1: an id of 256 would encode THING_B's instance 0.
  """
  semantic = np.full(height * width, STUFF_A)
  semantic[:count] = THING_A
  semantic = semantic.reshape(height, width)
  heatmap = np.where(semantic == THING_A, 0.5, 0.0)
  return semantic, heatmap, np.zeros((height, width, 2), np.float32)


def test_keep_k_centers_reaching_the_label_divisor_is_refused():
  semantic, heatmap, offsets = _single_pixel_instances(16, 20, 300)
  with pytest.raises(ValueError, match=r'keep_k_centers=300 can give one '
                     r'class 300 instances, but label_divisor=256 holds '
                     r'instance ids 1\.\.255 only'):
    _run(semantic, heatmap, offsets, label_spec=SPEC_256, nms_kernel=1,
         keep_k_centers=300)
  with pytest.raises(ValueError, match=r'keep_k_centers=256 .* '
                     r'label_divisor=256'):
    _processor(label_spec=SPEC_256, keep_k_centers=256)


def test_label_divisor_minus_one_instances_of_one_class_stay_in_it():
  semantic, heatmap, offsets = _single_pixel_instances(16, 17, 255)
  result = _run(semantic, heatmap, offsets, label_spec=SPEC_256,
                nms_kernel=1, keep_k_centers=255)
  panoptic = result[common.PRED_PANOPTIC]
  assert (result[common.PRED_CENTER_SCORES] > 0).sum() == 255
  np.testing.assert_array_equal(panoptic // 256, semantic)
  np.testing.assert_array_equal(panoptic.reshape(-1)[:255] % 256,
                                np.arange(1, 256))


def test_keep_all_centers_voids_instances_past_the_label_divisor():
  """keep_k_centers -1 is not bounded: the merge voids ids >= 256."""
  semantic, heatmap, offsets = _single_pixel_instances(16, 20, 300)
  result = _run(semantic, heatmap, offsets, label_spec=SPEC_256,
                nms_kernel=1, keep_k_centers=-1)
  panoptic = result[common.PRED_PANOPTIC].reshape(-1)
  instance = result[common.PRED_INSTANCE].reshape(-1)
  assert (result[common.PRED_CENTER_SCORES] > 0).sum() == 300
  np.testing.assert_array_equal(panoptic[:255],
                                THING_A * 256 + np.arange(1, 256))
  assert (panoptic[255:300] == SPEC_256.void_label).all()
  assert (panoptic[300:] == STUFF_A * 256).all()
  np.testing.assert_array_equal(instance[:255], np.arange(1, 256))
  assert not instance[255:].any()
  scores = result[common.PRED_INSTANCE_SCORES]
  assert (scores[:255] > 0).all() and not scores[255:].any()


@pytest.mark.parametrize('num_valid', [0, 1, 5, 32, 33, 50])
@pytest.mark.parametrize('jit_compile', [False, True])
def test_grouping_finds_the_nearest_valid_center(num_valid, jit_compile):
  # 50 slots, the valid ones first (as find_centers returns them): up to
  # 32 valid, each vote is compared with the used slots (under XLA the first
  # 32), above it with its cell's candidates (as many columns as the fullest
  # cell has, under XLA 32) or every used slot, in chunks as much longer; a
  # chunk of 7 pixels puts chunk boundaries everywhere.
  from deeplab2.postprocessing import grouping  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(num_valid)
  height, width, slots = 13, 17, 50
  points = rng.integers(0, [height, width], size=(1, slots, 2)).astype(
      np.int32)
  scores = np.zeros((1, slots), np.float32)
  scores[0, :num_valid] = rng.uniform(0.2, 1.0, num_valid)
  offsets = rng.normal(0, 4, size=(1, height, width, 2)).astype(np.float32)
  mask = rng.uniform(size=(1, height, width)) < 0.7
  fn = tf.function(lambda *args: grouping.group_pixels(*args, chunk_size=7),
                   jit_compile=jit_compile)
  got = fn(tf.constant(points), tf.constant(scores), tf.constant(offsets),
           tf.constant(mask)).numpy()
  expected = np.zeros((height, width), np.int32)
  if num_valid:
    expected = _nearest_by_numpy(points[0], num_valid, offsets[0], mask[0])
  np.testing.assert_array_equal(got[0], expected)


def _nearest_by_numpy(points, num_valid, offsets, mask):
  """int32 [H, W]: 1 + argmin of the float32 squared distances from each
  masked pixel's vote to the first num_valid points, as group_pixels."""
  height, width = mask.shape
  grid = np.stack(np.meshgrid(np.arange(height), np.arange(width),
                              indexing='ij'), -1).astype(np.float32)
  voted = grid + offsets
  centers = points[:num_valid].astype(np.float32)
  distance = (np.square(voted[:, :, None, 0] - centers[:, 0]) +
              np.square(voted[:, :, None, 1] - centers[:, 1]))
  return np.where(mask, np.argmin(distance, -1) + 1, 0).astype(np.int32)


@pytest.mark.parametrize('layout', ['spread', 'far_votes', 'clustered',
                                    'non_finite_votes'])
@pytest.mark.parametrize('mode', ['loop', 'loop_xla', 'every_pixel',
                                  'every_pixel_min'])
def test_grouping_by_candidate_cells_equals_every_center(layout, mode):
  # An image of 6 x 8 cells of grouping.CELL_SIZE: each pixel compares its
  # vote with its cell's candidates only (in the loop, with and without XLA,
  # and in the converters' every-pixel modes). Whole-pixel votes and duplicated
  # centers make exact ties (the lower slot wins). 'spread': few candidates
  # per cell; 'far_votes': some votes land far outside the
  # image (the outermost cells reach out to them); 'clustered': 120 centers
  # in one corner, more candidates than 64 (all slots).
  from deeplab2.postprocessing import grouping  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(7)
  cell = grouping.CELL_SIZE
  height, width, slots, num_valid = 6 * cell - 5, 8 * cell + 3, 150, 120
  if layout == 'clustered':
    points = rng.integers(0, 12, size=(slots, 2))
  else:
    points = rng.integers(0, [height, width], size=(slots, 2))
  points[10] = points[4]
  offsets = np.round(rng.normal(0, 12, size=(height, width, 2)))
  if layout == 'far_votes':
    offsets[:5, :5] = [-3 * height, 2 * width]
    offsets[-3:, -7:] = [2.5 * height, -40.0]
  # A broken network's NaN and infinite votes change only their own pixels.
  broken = np.zeros((height, width), bool)
  if layout == 'non_finite_votes':
    offsets[0, 3] = [np.nan, 1.0]
    offsets[40, 50] = [np.inf, 0.0]
    offsets[-1, -2] = [2.0, -np.inf]
    broken[0, 3] = broken[40, 50] = broken[-1, -2] = True
  offsets = offsets.astype(np.float32)
  mask = rng.uniform(size=(height, width)) < 0.6
  scores = np.where(np.arange(slots) < num_valid,
                    rng.uniform(0.2, 1.0, slots), 0.0).astype(np.float32)
  fn = tf.function(lambda *args: grouping.group_pixels(
      *args, chunk_size=500, mode=mode.replace('_xla', '')),
                   jit_compile=mode.endswith('_xla'))
  got = fn(tf.constant(points[None], tf.int32), tf.constant(scores[None]),
           tf.constant(offsets[None]), tf.constant(mask[None])).numpy()[0]
  expected = _nearest_by_numpy(points, num_valid, offsets, mask)
  np.testing.assert_array_equal(got[~broken], expected[~broken])
  assert not (got == 11).any()
  grid = np.stack(np.meshgrid(np.arange(height), np.arange(width),
                              indexing='ij'), -1).astype(np.float32)
  center_y = np.where(scores > 0, points[:, 0], np.inf).astype(np.float32)
  table = grouping._CandidateTable(  # pylint: disable=protected-access
      tf.constant(np.reshape(grid + offsets, [-1, 2])),
      tf.constant(mask.reshape(-1)), tf.constant(center_y),
      tf.constant(points[:, 1], tf.float32), height, width)
  most = int(table.most_candidates)
  # 120 valid centers: 'spread' takes the table (at most 32 columns),
  # 'far_votes' and 'clustered' every slot.
  assert most <= 32 if layout in ('spread', 'non_finite_votes') else (
      most > 64), most


@pytest.mark.parametrize('mode', ['every_pixel', 'every_pixel_min'])
def test_loop_free_grouping_equals_the_loop(mode):
  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import grouping
  # pylint: enable=g-import-not-at-top
  rng = np.random.default_rng(5)
  height, width, slots = 37, 45, 40
  points = rng.integers(0, [height, width], (1, slots, 2))
  # Two slots at one point: a tie, which goes to the lower slot.
  points[0, 7] = points[0, 3]
  points = tf.constant(points, tf.int32)
  scores = tf.constant(np.where(np.arange(slots) < 35,
                                rng.uniform(0.2, 1, slots), 0)[None],
                       tf.float32)
  # Whole-pixel offsets make exact ties between distinct centers too.
  offsets = tf.constant(np.round(rng.normal(0, 6, (1, height, width, 2))),
                        tf.float32)
  mask = tf.constant(rng.uniform(size=(1, height, width)) < 0.4)

  def grouped(grouping_mode):
    # Chunks of 256 pixels: 7 of them, a few without masked pixels left.
    return tf.function(lambda *args: grouping.group_pixels(
        *args, chunk_size=256, mode=grouping_mode))(
            points, scores, offsets, mask).numpy()
  loop = grouped('loop')
  np.testing.assert_array_equal(grouped(mode), loop)
  assert (loop > 0).sum() == int(mask.numpy().sum())
  assert not (loop == 8).any() and (loop == 4).any()
  with pytest.raises(ValueError, match='needs a fixed input size'):
    dynamic = tf.TensorSpec([1, None, None, 2], tf.float32)
    tf.function(lambda offsets: grouping.group_pixels(
        points, scores, offsets, mode=mode),
                input_signature=[dynamic]).get_concrete_function()


def test_unknown_grouping_mode_is_refused():
  with pytest.raises(ValueError, match="grouping_mode='fast': must be one of"
                     ' loop, every_pixel, every_pixel_min'):
    post_processor.PostProcessorOptions(label_spec=SPEC,
                                        grouping_mode='fast')


@pytest.mark.parametrize('num_valid,layout', [(20, 'spread'), (45, 'spread'),
                                              (45, 'clustered')])
def test_grouping_in_tflite_equals_tf(num_valid, layout):
  # TF's kernels and TFLite compare each vote with the columns there are
  # (the used slots; the fullest cell's candidates, a dynamic top_k), or
  # with every used slot where a cell has too many ('clustered'); both give
  # NumPy's nearest center.
  from deeplab2.postprocessing import grouping  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  height, width, slots = 128, 192, 60
  corner = 8 if layout == 'clustered' else [height, width]
  inputs = [
      rng.integers(0, corner, (1, slots, 2)).astype(np.int32),
      np.where(np.arange(slots) < num_valid, rng.uniform(0.2, 1, slots),
               0)[None].astype(np.float32),
      np.round(rng.normal(0, 4, (1, height, width, 2))).astype(np.float32),
      rng.uniform(size=(1, height, width)) < 0.6]
  group = tf.function(
      lambda *args: grouping.group_pixels(*args, chunk_size=500),
      input_signature=[tf.TensorSpec(a.shape, a.dtype) for a in inputs])
  expected = group(*inputs).numpy()
  np.testing.assert_array_equal(expected[0], _nearest_by_numpy(
      inputs[0][0], num_valid, inputs[2][0], inputs[3][0]))
  assert (expected > 0).sum() > 12000
  grid = np.stack(np.meshgrid(np.arange(height), np.arange(width),
                              indexing='ij'), -1).astype(np.float32)
  table = grouping._CandidateTable(  # pylint: disable=protected-access
      tf.constant(np.reshape(grid + inputs[2][0], [-1, 2])),
      tf.constant(inputs[3].reshape(-1)),
      tf.constant(np.where(inputs[1][0] > 0, inputs[0][0, :, 0], np.inf),
                  tf.float32),
      tf.constant(inputs[0][0, :, 1], tf.float32), height, width)
  most = int(table.most_candidates)
  if num_valid == 45:
    # 'spread': its cells' candidates, 22 columns (not 32); 'clustered':
    # too many, every used slot.
    assert most == (22 if layout == 'spread' else 45), most
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [group.get_concrete_function()], group)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  interpreter = litert.Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  for detail in interpreter.get_input_details():
    # The four inputs differ in shape or dtype.
    value = next(a for a in inputs if tuple(detail['shape']) == a.shape and
                 detail['dtype'] == a.dtype)
    interpreter.set_tensor(detail['index'], value)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize('mode', ['loop', 'loop_xla', 'every_pixel'])
def test_grouping_compares_each_vote_with_every_candidate_of_its_cell(mode):
  # Three clusters of 11 centers along one row of cells, each cluster's
  # slots from its rightmost center to its leftmost: the fullest cells, on
  # the bisector of the last two clusters, list 22 candidates, and the last
  # of them (slot 32, the leftmost center of the third cluster) is the
  # nearest center of some of their votes. One column too few loses it.
  from deeplab2.postprocessing import grouping  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  cell = grouping.CELL_SIZE
  height, width, slots = cell, 32 * cell, 40
  points = np.zeros((slots, 2), np.int32)
  for i, left in enumerate((0, 15 * cell, 31 * cell)):
    xs = np.sort(rng.choice(cell, 11, replace=False))[::-1] + left
    points[11 * i:11 * i + 11] = np.stack([rng.integers(0, cell, 11), xs], 1)
  scores = np.where(np.arange(slots) < 33, 0.5, 0.0).astype(np.float32)
  offsets = np.zeros((height, width, 2), np.float32)
  mask = np.ones((height, width), bool)
  expected = _nearest_by_numpy(points, 33, offsets, mask)
  grid = np.stack(np.meshgrid(np.arange(height), np.arange(width),
                              indexing='ij'), -1).astype(np.float32)
  table = grouping._CandidateTable(  # pylint: disable=protected-access
      tf.constant(np.reshape(grid, [-1, 2])), tf.constant(mask.reshape(-1)),
      tf.constant(np.where(scores > 0, points[:, 0], np.inf), tf.float32),
      tf.constant(points[:, 1], tf.float32), height, width)
  counts = np.sum(table.candidates.numpy(), axis=1)
  assert counts.max() == 22
  # The image's cells are the ring's third row (grouping._RING = 2).
  fullest = [c for c in np.flatnonzero(counts == 22)
             if c // (width // cell + 4) == 2]
  assert fullest
  image_cell = (fullest[0] % (width // cell + 4) - 2) * cell
  assert (expected[:, image_cell:image_cell + cell] == 33).any()
  fn = tf.function(
      lambda *args: grouping.group_pixels(
          *args, chunk_size=4096, mode=mode.replace('_xla', '')),
      jit_compile=mode.endswith('_xla'))
  got = fn(tf.constant(points[None]), tf.constant(scores[None]),
           tf.constant(offsets[None]), tf.constant(mask[None])).numpy()[0]
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize('batch,jit_compile', [(1, False), (2, False),
                                               (1, True)])
def test_semantic_argmax_forms_give_the_same_maps(batch, jit_compile):
  # top_k(1) (TF's kernels) and argmax (TFLite's choice): the same classes,
  # ties to the lower one, and the same instance scores; a batch of one
  # takes the per-image code whole, a larger one through map_fn.
  rng = np.random.default_rng(11)
  logits = np.round(rng.normal(0, 1, (batch, 29, 31, NUM_CLASSES)), 1)
  logits[:, :5, :5] = 1.0    # every class tied
  heatmap = np.zeros((batch, 29, 31), np.float32)
  heatmap[:, 10, 10] = heatmap[:, 20, 25] = 0.9
  outputs = {
      common.PRED_SEMANTIC_LOGITS: tf.constant(logits, tf.float32),
      common.PRED_CENTER_HEATMAP: tf.constant(heatmap),
      common.PRED_OFFSET_MAP: tf.constant(
          rng.normal(0, 3, (batch, 29, 31, 2)), tf.float32)}
  by_top_k = tf.function(_processor(), jit_compile=jit_compile)(outputs)
  by_argmax = tf.function(
      _processor(semantic_argmax=post_processor.ARGMAX),
      jit_compile=jit_compile)(outputs)
  assert (by_top_k[common.PRED_SEMANTIC].numpy()[:, :5, :5] == 0).all()
  assert by_top_k[common.PRED_INSTANCE].numpy().max() > 0
  for key, value in by_top_k.items():
    np.testing.assert_array_equal(value.numpy(), by_argmax[key].numpy(),
                                  err_msg=key)


def test_unknown_semantic_argmax_is_refused():
  with pytest.raises(ValueError, match="semantic_argmax='sort': must be one "
                     'of top_k, argmax'):
    post_processor.PostProcessorOptions(label_spec=SPEC,
                                        semantic_argmax='sort')
