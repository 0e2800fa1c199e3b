"""The target viewer and the picture helpers."""

import os

import numpy as np
from PIL import Image

from deeplab2 import label_spec
from deeplab2.cli import visualize_targets
from deeplab2.utils import visualization
import cli_runner
from conftest import tiny_config_text


def test_offsets_wheel_and_semantic_colours():
  offsets = np.zeros((3, 3, 2), np.float32)
  offsets[0, 0] = (0.0, 2.0)          # points right
  offsets[0, 1] = (0.0, -2.0)         # points left
  offsets[0, 2] = (0.0, 1.0)          # half as long
  rgb = visualization.colorize_offsets(offsets).astype(int)
  assert (rgb[1, 1] == 0).all()                         # no offset: black
  assert not np.array_equal(rgb[0, 0], rgb[0, 1])      # direction -> hue
  assert rgb[0, 2].max() < rgb[0, 0].max()              # length -> value
  colours = visualization.colorize_semantic(
      np.array([[0, 1, 255]]), ((10, 20, 30), (40, 50, 60)), 255)
  np.testing.assert_array_equal(colours[0], [[10, 20, 30], [40, 50, 60],
                                             [0, 0, 0]])


def test_offset_wheel_is_colorsys_hsv_at_full_saturation():
  import colorsys  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  offsets = rng.normal(0, 5, (17, 19, 2)).astype(np.float32)
  offsets[0, :8] = [(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1),
                    (-1, 0), (-1, 1)]           # every sector boundary
  rgb = visualization.colorize_offsets(offsets)
  norm = np.hypot(offsets[..., 0], offsets[..., 1])
  for (y, x), _ in np.ndenumerate(norm):
    dy, dx = offsets[y, x]
    hue = (np.arctan2(-dy, -dx) / (2 * np.pi)) % 1.0
    expected = colorsys.hsv_to_rgb(hue, 1.0, min(norm[y, x] / norm.max(), 1))
    np.testing.assert_array_equal(
        rgb[y, x], (255 * np.asarray(expected)).astype(np.uint8))


def test_panoptic_colours_shift_per_instance_and_keep_void_black():
  spec = label_spec.LabelSpec(3, 255, 1000, (2,), colormap=(
      (10, 20, 30), (40, 50, 60), (100, 100, 100)))
  rgb = visualization.colorize_panoptic(
      np.array([[1000, 2000, 2001, 2002, 255000, -1]]), spec).astype(int)
  np.testing.assert_array_equal(rgb[0, 0], [40, 50, 60])
  np.testing.assert_array_equal(rgb[0, 1], [100, 100, 100])   # crowd
  assert len({tuple(c) for c in rgb[0, 1:4]}) == 3             # instances
  np.testing.assert_array_equal(rgb[0, 4:], 0)                 # void, none


def test_visualize_targets_writes_one_panel_per_sample(tiny_dataset_dir,
                                                       tmp_path, capsys):
  config = tmp_path / 'tiny.textproto'
  config.write_text(tiny_config_text(tiny_dataset_dir))
  output = tmp_path / 'panels'
  command = [f'--config_file={config}', '--split=train', '--num_samples=3',
             f'--output_dir={output}']
  result = cli_runner.run_main(visualize_targets.main, command, capsys)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout == f'wrote 3 panels to {output}\n'
  panels = sorted(os.listdir(output))
  assert panels == ['train_0000.png', 'train_0001.png', 'train_0002.png']
  picture = np.asarray(Image.open(output / panels[0]))
  assert picture.shape == (2 * (33 + 14), 4 * 33, 3)
  again = cli_runner.run_main(visualize_targets.main, command, capsys)
  assert again.returncode == 1 and '--overwrite' in again.stderr
