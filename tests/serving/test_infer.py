"""infer.py (deeplab2.cli.infer, its main() in this process) and the
Predictor API on images of every kind and a video."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from deeplab2.cli import infer
from deeplab2.data import synthetic
from deeplab2.serving import image_io
from deeplab2.serving import predictor as predictor_lib
import cli_runner


def _sample(seed, size=41):
  image, _, _ = synthetic.generate_sample(np.random.default_rng(seed), size)
  return image


def _inputs(folder):
  """{file: expected (height, width)}: RGB, grey, RGBA, 16-bit and
  EXIF-rotated images, a corrupt file and a 5-frame video."""
  folder.mkdir()
  expected = {}
  Image.fromarray(_sample(1)).save(folder / 'rgb.png')
  expected['rgb'] = (41, 41)
  Image.fromarray(_sample(2)[:30, :37, 0]).save(folder / 'grey.png')
  expected['grey'] = (30, 37)
  rgba = np.concatenate([_sample(3)[:35], np.full((35, 41, 1), 128,
                                                  np.uint8)], -1)
  Image.fromarray(rgba, 'RGBA').save(folder / 'rgba.png')
  expected['rgba'] = (35, 41)
  deep = (_sample(4)[:, :20, 1].astype(np.uint16) * 257)
  Image.fromarray(deep).save(folder / 'deep16.png')
  expected['deep16'] = (41, 20)
  exif = Image.Exif()
  exif[0x0112] = 6      # Orientation: rotate 90 degrees on display.
  Image.fromarray(_sample(5)[:25]).save(folder / 'rotated.jpg', exif=exif)
  expected['rotated'] = (41, 25)
  (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
  frames = [_sample(10 + i)[:33, :39] for i in range(5)]
  imageio.mimwrite(folder / 'clip.mp4', frames, fps=5, codec='libx264',
                   macro_block_size=1, pixelformat='yuv444p')
  for i in range(5):
    expected[f'clip_{i:06d}'] = (33, 39)
  return expected


def test_infer_writes_overlays_pngs_json_and_video(tiny_saved_model,
                                                   tmp_path, capsys):
  saved_model, parts = tiny_saved_model
  expected = _inputs(tmp_path / 'in')
  out = tmp_path / 'out'
  command = [f'--saved_model={saved_model}', f'--input={tmp_path / "in"}',
             f'--output_dir={out}', '--labels']
  done = cli_runner.run_main(infer.main, command, capsys)
  assert done.returncode == 1, done.stderr[-2000:]   # one file skipped
  assert 'broken.png: not a readable image' in done.stderr
  assert 'wrote 10 image(s)' in done.stdout
  assert 'skipped 1 unreadable file(s)' in done.stdout

  with open(out / 'panoptic.json') as f:
    annotations = json.load(f)['annotations']
  assert sorted(a['image_id'] for a in annotations) == sorted(expected)
  descriptor = parts.descriptor('eval')
  for name, size in expected.items():
    overlay = np.asarray(Image.open(out / 'overlay' / f'{name}.png'))
    if name.startswith('clip_'):    # a video's frames: no legend strip
      assert overlay.shape == size + (3,), name
    else:                           # the legend strip below the image
      assert overlay.shape[1:] == (size[1], 3), name
      assert overlay.shape[0] > size[0], name
    panoptic = np.asarray(Image.open(out / 'panoptic' / f'{name}.png'))
    assert panoptic.shape == size + (3,), name
  entry = next(a for a in annotations if a['image_id'] == 'rgb')
  assert all(s['category_id'] in descriptor.original_category_ids or
             s['category_id'] < descriptor.num_classes
             for s in entry['segments_info'])
  video = imageio.mimread(out / 'clip_overlay.mp4')
  assert len(video) == 5 and video[0].shape == (34, 40, 3)  # padded even

  # Existing outputs are refused without --overwrite.
  again = cli_runner.run_main(infer.main, command, capsys)
  assert again.returncode != 0
  assert 'exists' in again.stderr and '--overwrite' in again.stderr


def test_predictor_api(tiny_saved_model, tiny_dataset_dir):
  saved_model, _ = tiny_saved_model
  predictor = predictor_lib.Predictor.from_saved_model(saved_model)
  image = _sample(7, 45)
  result = predictor(image)
  assert result.panoptic.shape == (45, 45)
  assert result.maps['semantic_probs'].shape == (45, 45, 5)
  area = sum(s.area for s in result.segments)
  assert area == int((result.panoptic >= 0).sum() -
                     predictor.descriptor.is_void(result.panoptic).sum())
  for segment in result.segments:
    assert segment.class_name == predictor.descriptor.class_names[
        segment.class_id]
    assert 0.0 <= segment.score <= 1.0
    x, y, w, h = segment.bbox
    assert (result.panoptic[y:y + h, x:x + w] == segment.id).any()
  batch = predictor.predict_batch([image, image[::-1]])
  np.testing.assert_array_equal(batch[0].panoptic, result.panoptic)
  assert result.overlay(image, labels=True).shape == (45, 45, 3)
  # Grey and 16-bit arrays are converted.
  grey = predictor(image[..., 0])
  assert grey.panoptic.shape == (45, 45)
  np.testing.assert_array_equal(
      predictor(image.astype(np.uint16) * 257).panoptic, result.panoptic)
  with pytest.raises(ValueError, match='one size'):
    predictor.predict_batch([image, image[:40]])
  with pytest.raises(ValueError, match=r'\[H, W\] or \[H, W, C\]'):
    image_io.to_rgb_uint8(np.zeros((4, 4, 3, 1), np.uint8))


def test_two_inputs_with_one_name_are_refused_before_any_work(tmp_path):
  # same.png and same.jpg would write the same overlay and the same
  # panoptic.json entry: refused naming both, before the model runs and
  # before anything is written.
  from deeplab2.serving import run_inference  # pylint: disable=g-import-not-at-top
  inputs = tmp_path / 'images'
  inputs.mkdir()
  image = Image.new('RGB', (8, 8))
  image.save(inputs / 'same.png')
  image.save(inputs / 'same.jpg')
  image.save(inputs / 'other.png')
  output_dir = tmp_path / 'out'
  with pytest.raises(ValueError) as error:
    run_inference.run(None, str(inputs), str(output_dir))
  message = str(error.value)
  assert str(inputs / 'same.jpg') in message
  assert str(inputs / 'same.png') in message
  assert "'same'" in message and '\n' not in message
  assert not output_dir.exists()


def test_infer_with_the_ground_truth_json_is_scored_by_evaluate_panoptic(
    tiny_saved_model, tmp_path, capsys):
  """The ground truth names images by integer ids (as COCO does); infer's
  panoptic.json takes them, and evaluate_panoptic.py scores it."""
  # pylint: disable=g-import-not-at-top
  from deeplab2.cli import evaluate_panoptic
  from deeplab2.evaluation import prediction_files
  # pylint: enable=g-import-not-at-top
  saved_model, parts = tiny_saved_model
  descriptor = parts.descriptor('eval')
  images = tmp_path / 'images'
  images.mkdir()
  truth = tmp_path / 'truth'
  samples = list(synthetic.generate_split(7, 'val', 3, size=33))
  with prediction_files.CocoPanopticWriter(str(truth), descriptor) as writer:
    for index, (name, image, panoptic, _) in enumerate(samples):
      Image.fromarray(image).save(images / f'{name}.png')
      writer.add(f'{name}.png', panoptic, image_id=100 + index)
  out = tmp_path / 'out'
  done = cli_runner.run_main(infer.main, [
      f'--saved_model={saved_model}', f'--input={images}',
      f'--output_dir={out}', f'--ground_truth_json={writer.json_path}'],
                             capsys)
  assert done.returncode == 0, done.stderr[-2000:]
  with open(out / 'panoptic.json') as f:
    written = json.load(f)
  assert sorted(a['image_id'] for a in written['annotations']) == [
      100, 101, 102]

  scored = cli_runner.run_main(evaluate_panoptic.main, [
      f'--gt_json={writer.json_path}', f'--gt_folder={writer.png_dir}',
      f'--pred_json={out / "panoptic.json"}',
      f'--pred_folder={out / "panoptic"}',
      f'--output={tmp_path / "metrics.json"}'], capsys)
  assert scored.returncode == 0, scored.stderr[-2000:]
  with open(tmp_path / 'metrics.json') as f:
    official = json.load(f)
  # The random tiny model's PQ is 0 here: the scores' agreement is checked
  # on predictions with something right in them (the test below).
  assert official['num_images'] == 3

  # An input the ground truth does not list: refused before any work.
  Image.fromarray(samples[0][1]).save(images / 'stray.png')
  refused = cli_runner.run_main(infer.main, [
      f'--saved_model={saved_model}', f'--input={images}',
      f'--output_dir={tmp_path / "out2"}',
      f'--ground_truth_json={writer.json_path}'], capsys)
  assert refused.returncode == 1
  assert refused.stderr.strip() == (
      f'error: 1 input(s) are not in --ground_truth_json={writer.json_path}'
      f', e.g. {images / "stray.png"}: their predictions could not be '
      'scored.')
  assert not (tmp_path / 'out2').exists()


class _HalfRightPredictor:
  """Predicts an image's ground truth with its first thing segment and
  every pixel of class 1 made void: PQ well inside (0, 1)."""

  def __init__(self, descriptor, truths):
    self.descriptor = descriptor
    self._truths = truths

  def __call__(self, image):
    truth = self._truths[image.tobytes()]
    panoptic = truth.copy()
    things = [i for i in np.unique(truth) if i // 1000 in (2, 3, 4)]
    if things:
      panoptic[truth == things[0]] = 255000
    panoptic[truth // 1000 == 1] = 255000
    return _Prediction(panoptic)


class _Prediction:

  def __init__(self, panoptic):
    self.panoptic = panoptic

  def overlay(self, image, labels=False, legend=False):
    del labels, legend
    return image


def test_evaluate_panoptic_on_infer_output_gives_our_pq(tiny_saved_model,
                                                        tmp_path):
  # pylint: disable=g-import-not-at-top
  from deeplab2.evaluation import coco_panoptic_files
  from deeplab2.evaluation import panoptic_quality
  from deeplab2.evaluation import prediction_files
  from deeplab2.serving import run_inference
  # pylint: enable=g-import-not-at-top
  descriptor = tiny_saved_model[1].descriptor('eval')
  images = tmp_path / 'images'
  images.mkdir()
  truth = tmp_path / 'truth'
  samples = list(synthetic.generate_split(8, 'val', 4, size=65))
  with prediction_files.CocoPanopticWriter(str(truth), descriptor) as writer:
    for index, (name, image, panoptic, _) in enumerate(samples):
      Image.fromarray(image).save(images / f'{name}.png')
      writer.add(f'{name}.png', panoptic, image_id=7 + index)
  predictor = _HalfRightPredictor(
      descriptor, {image.tobytes(): panoptic
                   for _, image, panoptic, _ in samples})
  out = tmp_path / 'out'
  run_inference.run(predictor, str(images), str(out),
                    ground_truth_json=writer.json_path)
  official, _ = coco_panoptic_files.evaluate_folders(
      writer.json_path, writer.png_dir, str(out / 'panoptic.json'),
      str(out / 'panoptic'))
  ours = panoptic_quality.PanopticQuality(descriptor.label_spec)
  for _, image, panoptic, _ in samples:
    ours.update(panoptic, predictor(image).panoptic)
  expected = ours.result()
  assert 0.2 < expected['pq_all'] < 0.9
  for key in ('pq_all', 'sq_all', 'rq_all', 'pq_things', 'pq_stuff'):
    assert official[key] == pytest.approx(expected[key], abs=1e-9), key


def test_openvino_precision_is_for_an_openvino_model_only(tmp_path, capsys):
  result = cli_runner.run_main(
      infer.main, [f'--saved_model={tmp_path}', '--openvino_precision=bf16',
                   f'--input={tmp_path}', f'--output_dir={tmp_path / "out"}'],
      capsys)
  assert result.returncode == 2
  assert result.stderr.splitlines()[-1].endswith(
      'error: --openvino_precision is for --model=MODEL.xml (an OpenVINO '
      'model) only')
  result = cli_runner.run_main(
      infer.main, ['--model=x.xml', '--openvino_precision=f16',
                   f'--input={tmp_path}', f'--output_dir={tmp_path / "out"}'],
      capsys)
  assert result.returncode == 2
  assert "invalid choice: 'f16' (choose from" in result.stderr
  assert not (tmp_path / 'out').exists()
