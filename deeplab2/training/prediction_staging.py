"""The prediction files of one evaluation, written by every host and
published by the chief as one whole folder."""

import os
import shutil
from typing import Callable, Mapping, cast

import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2.data import dataset_descriptor
from deeplab2.evaluation import prediction_files
from deeplab2.evaluation import writer_base
from deeplab2.training import distribution
from deeplab2.utils import atomic

# add(filename, maps, segment_scores): writes one image's predictions (the
# evaluator's prediction writer). maps: {name: [H, W] int32 array};
# segment_scores: {panoptic id: score}.
AddPrediction = Callable[[str, Mapping[str, np.ndarray], Mapping[int, float]],
                         None]


def predictions_path(model_dir: str, step: int, save_dir: str = '') -> str:
  """The folder of one evaluation's prediction files."""
  return os.path.join(save_dir or os.path.join(model_dir, 'eval'),
                      f'predictions-{step:08d}')


def prediction_writer(
    folder: str, descriptor: dataset_descriptor.DatasetDescriptor
) -> tuple[writer_base.Writer, AddPrediction]:
  """(writer, add) for the eval dataset's official format: the three
  cityscapesScripts formats for Cityscapes, COCO panoptic otherwise.

  Args:
    folder: where the writer writes.
    descriptor: the eval dataset's DatasetDescriptor.

  Returns:
    The writer (to close) and its AddPrediction.
  """
  if descriptor.name == 'cityscapes_panoptic':
    cityscapes = prediction_files.CityscapesWriter(folder, descriptor)

    def add_cityscapes(filename: str, maps: Mapping[str, np.ndarray],
                       segment_scores: Mapping[int, float]) -> None:
      cityscapes.add(filename, maps[common.PRED_PANOPTIC],
                     maps[common.PRED_SEMANTIC], segment_scores)
    return cityscapes, add_cityscapes
  coco = prediction_files.CocoPanopticWriter(folder, descriptor)

  def add(filename: str, maps: Mapping[str, np.ndarray],
          segment_scores: Mapping[int, float]) -> None:
    del segment_scores   # COCO panoptic holds none.
    coco.add(filename, maps[common.PRED_PANOPTIC])
  return coco, add


class PredictionStaging:
  """One evaluation's prediction files, written by every host.

  Each host writes its own images into `<folder>.partial/host-<i>/`. Once
  every host has closed its writer (the evaluation's cross-host sum comes
  after that), the chief merges them into `<folder>`, or, when an earlier
  evaluation of the same step left that, into `<folder>-2`, `-3`, ...:
  nothing is replaced, and a folder appears only when it is whole
  (atomic.StagedFolder).

  Args:
    strategy: the run's tf.distribute.Strategy.
    folder: the published folder (predictions_path).
    descriptor: the eval dataset's DatasetDescriptor.

  Attributes:
    add: the AddPrediction of this host's writer.
  """

  def __init__(self, strategy: tf.distribute.Strategy, folder: str,
               descriptor: dataset_descriptor.DatasetDescriptor):
    self._is_chief = distribution.is_chief(strategy)
    self._folder = folder
    self._partial = folder + '.partial'
    if self._is_chief and os.path.exists(self._partial):
      shutil.rmtree(self._partial)     # left by an interrupted evaluation
    distribution.barrier(strategy)     # ... before any host writes into it
    self._host_dir = os.path.join(
        self._partial, f'host-{distribution.worker_index(strategy)}')
    self._writer, self.add = prediction_writer(self._host_dir, descriptor)

  def close_local(self) -> None:
    """Closes this host's writer (its files are then complete)."""
    self._writer.close()

  def discard(self) -> None:
    """Deletes what this host (the chief: every host) wrote."""
    shutil.rmtree(self._partial if self._is_chief else self._host_dir,
                  ignore_errors=True)
    if self._is_chief:
      try:    # the folder made for it, unless something else is in it
        os.rmdir(os.path.dirname(self._partial))
      except OSError:
        pass

  def publish(self) -> str | None:
    """Merges the hosts' files (chief); returns the folder, or None."""
    if not self._is_chief:
      return None
    folder, count = self._folder, 1
    while os.path.exists(folder):
      count += 1
      folder = f'{self._folder}-{count}'
    hosts = sorted(os.listdir(self._partial),
                   key=lambda name: int(name.split('-')[1]))
    with atomic.StagedFolder(folder, 'an evaluation') as staged:
      prediction_files.merge_folders(
          [os.path.join(self._partial, name) for name in hosts],
          cast(str, staged.path))
    shutil.rmtree(self._partial)
    return folder
