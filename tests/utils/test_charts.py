"""The run's pictures drawn without a plotting library."""

import numpy as np

from deeplab2.utils import charts


def test_the_confusion_matrix_shades_each_cell_by_its_row_fraction():
  confusion = np.array([[90, 10, 0, 5], [0, 0, 0, 0], [0, 50, 50, 0]])
  picture = charts.confusion_matrix(confusion, ['wall', 'floor', 'disc'])
  assert picture.dtype == np.uint8 and picture.shape[2] == 3
  # The cell centres (class names take the first 110 pixels).
  def cell(row, column):
    return picture[110 + row * 24 + 20, 110 + column * 24 + 20]
  assert cell(0, 0).sum() < cell(2, 2).sum() < cell(0, 1).sum()
  assert tuple(cell(1, 1)) == (255, 255, 255)   # a class never seen


def test_curves_draw_every_series_and_survive_empty_panels():
  picture = charts.curves({
      'losses': {'total': [(100, 2.0), (200, 1.0), (300, 0.5)],
                 'center': [(100, 1.0), (200, 0.4), (300, float('nan'))]},
      'evaluation': {'PQ': [(300, 0.7)]},
      'learning rate': {}})
  assert picture.shape == (2 * 260, 2 * 430, 3)
  colours = {tuple(c) for c in picture.reshape(-1, 3)}
  assert (31, 119, 180) in colours and (214, 39, 40) in colours
