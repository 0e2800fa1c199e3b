"""The Predictor's instance options, scores, pictures and save(), on a
hand-made batch function (no model), and TensorFlow's quiet import."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deeplab2.data import synthetic
from deeplab2.serving import predictor as predictor_lib
from deeplab2.utils import quiet_tensorflow
from deeplab2.utils import visualization

_DESCRIPTOR = synthetic.DESCRIPTOR
_SIZE = 96


def _maps():
  """One image's outputs: wall and floor halves, three discs (class 2)
  whose instance scores (the exported products of heatmap and class
  probability) are 1.06, 0.40 and 0.70, and a box (class 3) of 0.20."""
  semantic = np.zeros((_SIZE, _SIZE), np.int32)
  semantic[_SIZE // 2:] = 1
  instance = np.zeros_like(semantic)
  scores = np.zeros((_SIZE, _SIZE), np.float32)
  for k, (cls, y, x, score) in enumerate(
      [(2, 10, 10, 1.06), (2, 10, 60, 0.40), (2, 60, 10, 0.70),
       (3, 60, 60, 0.20)], 1):
    semantic[y:y + 30, x:x + 30] = cls
    instance[y:y + 30, x:x + 30] = k
    scores[y:y + 30, x:x + 30] = score
  panoptic = semantic * _DESCRIPTOR.label_divisor + instance
  probs = np.full((_SIZE, _SIZE, 5), 0.05, np.float32)
  np.put_along_axis(probs, semantic[..., None], 0.8, axis=-1)
  return {'panoptic_pred': panoptic, 'semantic_pred': semantic,
          'instance_pred': instance, 'semantic_probs': probs,
          'instance_scores': scores}


def _predictor(**options):
  maps = _maps()

  def run(images):
    return {key: np.stack([value] * len(images)) for key, value in
            maps.items()}
  return predictor_lib.Predictor(run, _DESCRIPTOR, **options)


def _image():
  return np.random.default_rng(0).integers(0, 256, (_SIZE, _SIZE, 3),
                                           dtype=np.uint8)


def test_thing_scores_are_clipped_to_one_and_stuff_scores_are_probabilities():
  result = _predictor()(_image())
  scores = {s.id: s.score for s in result.segments}
  assert scores[2001] == 1.0          # raw 1.06
  assert scores[2002] == pytest.approx(0.4)
  assert scores[3004] == pytest.approx(0.2)
  assert scores[0] == pytest.approx(0.8)
  assert all(0.0 <= s.score <= 1.0 for s in result.segments)


def test_score_threshold_drops_things_to_void_and_keeps_stuff():
  full = _predictor()(_image())
  result = _predictor(score_threshold=0.5)(_image())
  void = _DESCRIPTOR.void_label
  assert sorted(s.id for s in result.segments) == [0, 1000, 2001, 2003]
  assert (result.panoptic[10:40, 60:90] == void).all()     # 0.40 < 0.5
  assert (result.instance[10:40, 60:90] == 0).all()
  assert (result.panoptic[60:90, 60:90] == void).all()     # 0.20
  # Semantic and the other maps stay as predicted; kept pixels unchanged.
  np.testing.assert_array_equal(result.semantic, full.semantic)
  kept = result.panoptic != void
  np.testing.assert_array_equal(result.panoptic[kept], full.panoptic[kept])
  np.testing.assert_array_equal(result.maps['panoptic_pred'],
                                result.panoptic)


def test_max_instances_keeps_the_best_scored_things():
  result = _predictor(max_instances=2)(_image())
  assert sorted(s.id for s in result.segments if s.is_thing) == [2001, 2003]
  none = _predictor(max_instances=0)(_image())
  assert not [s for s in none.segments if s.is_thing]
  both = _predictor(score_threshold=0.5, max_instances=1)(_image())
  assert [s.id for s in both.segments if s.is_thing] == [2001]


@pytest.mark.parametrize('options, message', [
    ({'score_threshold': 1.5}, r'score_threshold is 1\.5; scores are in'),
    ({'score_threshold': -0.1}, r'score_threshold is -0\.1'),
    ({'max_instances': -1}, r'max_instances is -1; give an integer >= 0'),
    ({'max_instances': 2.5}, r'max_instances is 2\.5'),
])
def test_bad_options_are_refused(options, message):
  with pytest.raises(ValueError, match=message):
    _predictor(**options)


def test_labels_follow_the_image_size_and_carry_scores():
  assert visualization.label_font(129, 129).size == 10
  assert visualization.label_font(1024, 2048).size == 26
  result = _predictor()(_image())
  plain = result.overlay(_image())
  labelled = result.overlay(_image(), labels=True)
  assert labelled.shape == plain.shape
  # Labels drew white text on black boxes somewhere.
  assert (labelled != plain).any(axis=-1).sum() > 200
  ranked = sorted(result.segments, key=lambda s: (not s.is_thing, -s.area))
  assert predictor_lib._label_text(ranked[0]) == 'disc 1.00'


def test_a_label_that_would_hide_its_segment_or_another_label_is_left_out():
  canvas = np.zeros((60, 60, 3), np.uint8)
  spec = _DESCRIPTOR
  panoptic = np.zeros((60, 60), np.int32)
  base = visualization.overlay_panoptic(canvas, panoptic, spec,
                                        borders=False)
  tiny = visualization.overlay_panoptic(
      canvas, panoptic, spec, borders=False,
      labels=[('wall', (30, 30), 10)])
  np.testing.assert_array_equal(tiny, base)     # 10 px: too small
  one = visualization.overlay_panoptic(
      canvas, panoptic, spec, borders=False,
      labels=[('wall', (30, 30), 3600)])
  two = visualization.overlay_panoptic(
      canvas, panoptic, spec, borders=False,
      labels=[('wall', (30, 30), 3600), ('floor', (31, 31), 3600)])
  assert (one != base).any()
  np.testing.assert_array_equal(two, one)       # the second would cover


def test_legend_lists_the_classes_present_with_counts():
  result = _predictor()(_image())
  assert result._legend() == [
      ('wall', tuple(_DESCRIPTOR.colormap[0])),
      ('floor', tuple(_DESCRIPTOR.colormap[1])),
      ('disc x3', tuple(_DESCRIPTOR.colormap[2])),
      ('box x1', tuple(_DESCRIPTOR.colormap[3]))]
  picture = result.overlay(_image(), labels=True, legend=True)
  assert picture.shape[1] == _SIZE and picture.shape[0] > _SIZE
  strip = picture[_SIZE:]
  # Every class colour of the legend is drawn in the strip.
  for _, colour in result._legend():
    assert (strip == colour).all(axis=-1).sum() >= 20, colour
  # A narrow picture wraps the legend onto more rows.
  narrow = visualization.legend_strip(result._legend(), 60,
                                      visualization.label_font(60, 60))
  wide = visualization.legend_strip(result._legend(), 600,
                                    visualization.label_font(60, 60))
  assert narrow.shape[0] > wide.shape[0]


def test_save_writes_pictures_maps_and_segments(tmp_path):
  result = _predictor()(_image())
  result.save(str(tmp_path / 'out.png'), _image())
  picture = np.asarray(Image.open(tmp_path / 'out.png'))
  np.testing.assert_array_equal(
      picture, result.overlay(_image(), labels=True, legend=True))
  result.save(str(tmp_path / 'out.jpg'))
  assert Image.open(tmp_path / 'out.jpg').format == 'JPEG'
  result.save(str(tmp_path / 'out.npz'))
  with np.load(tmp_path / 'out.npz') as saved:
    assert sorted(saved.files) == sorted(result.maps)
    np.testing.assert_array_equal(saved['panoptic_pred'], result.panoptic)
  result.save(str(tmp_path / 'out.json'))
  saved = json.loads((tmp_path / 'out.json').read_text())
  assert (saved['height'], saved['width']) == (_SIZE, _SIZE)
  assert [s['id'] for s in saved['segments']] == [
      s.id for s in result.segments]
  assert saved['segments'][2]['score'] == 1.0
  with pytest.raises(FileExistsError, match=r'out\.json exists; pass '
                     r'overwrite=True'):
    result.save(str(tmp_path / 'out.json'))
  result.save(str(tmp_path / 'out.json'), overwrite=True)
  with pytest.raises(ValueError, match=r'out\.tif: Prediction\.save writes '
                     r'\.png, \.jpg, \.jpeg, \.npz, \.json files, not \.tif'):
    result.save(str(tmp_path / 'out.tif'))
  assert sorted(os.listdir(tmp_path)) == ['out.jpg', 'out.json', 'out.npz',
                                          'out.png']


def test_without_banner_keeps_warnings_and_errors():
  text = (
      'WARNING: All log messages before absl::InitializeLog() is called are '
      'written to STDERR\n'
      'I0000 00:00:1796419119.947828   24873 port.cc:153] oneDNN custom '
      'operations are on.\n'
      'I0000 00:00:1796419120.394916   24873 cpu_feature_guard.cc:227] This '
      'TensorFlow binary is optimized\n'
      'To enable the following instructions: AVX2 FMA, in other operations\n'
      'E0000 00:00:1796419120.5   24873 cuda_dnn.cc:8] Unable to register\n'
      'W0000 00:00:1796419120.5   24873 port.cc:9] something odd\n')
  assert quiet_tensorflow.without_banner(text) == (
      'E0000 00:00:1796419120.5   24873 cuda_dnn.cc:8] Unable to register\n'
      'W0000 00:00:1796419120.5   24873 port.cc:9] something odd\n')


def test_from_deeplab2_import_predictor_prints_no_banner():
  env = dict(os.environ)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)
  env.pop('TF_ENABLE_ONEDNN_OPTS', None)
  done = subprocess.run(
      [sys.executable, '-c',
       'import sys\nfrom deeplab2 import Predictor\n'
       'print("written", file=sys.stderr)\n'
       'import tensorflow as tf\nprint(tf.constant(2).numpy())'],
      capture_output=True, text=True, env=env, timeout=120, check=True)
  assert done.stdout == '2\n'
  assert done.stderr == 'written\n'


def test_infer_refuses_a_bad_threshold_before_loading_anything(tmp_path,
                                                               capsys):
  # pylint: disable=g-import-not-at-top
  from deeplab2.cli import infer
  import cli_runner
  # pylint: enable=g-import-not-at-top
  done = cli_runner.run_main(
      infer.main, [f'--saved_model={tmp_path / "missing"}',
                   f'--input={tmp_path}', f'--output_dir={tmp_path / "out"}',
                   '--score_threshold=2'], capsys)
  assert done.returncode == 1
  assert done.stderr.strip() == (
      'error: score_threshold is 2.0; scores are in [0, 1], give a threshold '
      'in [0, 1].')
  assert not (tmp_path / 'out').exists()
