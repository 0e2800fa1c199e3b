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
    assert overlay.shape == size + (3,), name
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
