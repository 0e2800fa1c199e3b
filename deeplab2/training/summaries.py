"""What a run writes for TensorBoard beside its losses: each evaluation's
scalars (per class too) and pictures, and at the start of training the
config and a few training inputs with their targets; and the pictures it
leaves in model_dir for those who do not open TensorBoard: each
evaluation's confusion matrix and `curves.png`."""

from collections.abc import Iterator, Mapping, Sequence
import glob
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2

from deeplab2 import common
from deeplab2 import label_spec as label_spec_lib
from deeplab2.evaluation import writer_base
from deeplab2.utils import charts
from deeplab2.utils import visualization

CURVES_FILE = 'curves.png'

# Training samples drawn when training starts.
NUM_TRAIN_SAMPLES = 2


def write_evaluation(writer: tf.summary.SummaryWriter, step: int,
                     metrics: Mapping[str, Any],
                     samples: Sequence[Mapping[str, np.ndarray]],
                     class_names: Sequence[str]) -> None:
  """Every scalar metric as `eval/<name>`, PQ and IoU per class as
  `eval_per_class/{pq,iou}/<class>`, and each sample's pictures
  (input, prediction, ground truth, center heatmap, offsets) as
  `eval_images/<i>/<name>`."""
  with writer.as_default(step=step):
    for name, value in sorted(metrics.items()):
      if isinstance(value, (int, float)):
        tf.summary.scalar(f'eval/{name}', value)
    for key, table in (('pq', metrics.get('per_class', {})),
                       ('iou', metrics.get('per_class_iou', {}))):
      for class_id, value in table.items():
        value = value['pq'] if isinstance(value, Mapping) else value
        tf.summary.scalar(
            f'eval_per_class/{key}/{class_names[int(class_id)]}', value)
    for i, sample in enumerate(samples):
      for name, picture in sample.items():
        tf.summary.image(f'eval_images/{i}/{name}', picture[None])
  writer.flush()


def write_training_start(writer: tf.summary.SummaryWriter, step: int,
                         config_text: str, batch: Mapping[str, Any],
                         label_spec: label_spec_lib.LabelSpec) -> None:
  """The config as `config` text, and the first NUM_TRAIN_SAMPLES samples
  of `batch` (a training batch, dict of tensors) with their targets as
  `train_inputs/<i>/{image,panoptic,center_heatmap,offsets}`."""
  with writer.as_default(step=step):
    tf.summary.text('config', '```\n' + config_text + '\n```')
    images = np.asarray(batch[common.IMAGE])
    for i in range(min(NUM_TRAIN_SAMPLES, images.shape[0])):
      pictures = {
          'image': np.clip(images[i], 0, 255).astype(np.uint8),
          'panoptic': visualization.colorize_panoptic(
              np.asarray(batch[common.PANOPTIC_LABEL][i]), label_spec),
          'center_heatmap': visualization.colorize_scalar(
              np.asarray(batch[common.GT_CENTER_HEATMAP][i])),
          'offsets': visualization.colorize_offsets(
              np.asarray(batch[common.GT_OFFSET][i])),
      }
      for name, picture in pictures.items():
        tf.summary.image(f'train_inputs/{i}/{name}', picture[None])
  writer.flush()


def confusion_path(model_dir: str, step: int) -> str:
  """The confusion-matrix picture of the evaluation at `step`."""
  return os.path.join(model_dir, 'eval', f'confusion-{step:08d}.png')


def write_pictures(model_dir: str, step: int, confusion: np.ndarray,
                   class_names: Sequence[str]) -> None:
  """Writes the evaluation's confusion matrix and redraws curves.png:
  losses and learning rate from the train events, PQ / mIoU / mask AP from
  the metrics files of every evaluation so far."""
  writer_base.save_png(charts.confusion_matrix(confusion, class_names),
                       confusion_path(model_dir, step))
  writer_base.save_png(charts.curves(_curves(model_dir)),
                       os.path.join(model_dir, CURVES_FILE))


def _number(value: Any) -> float:
  """The float of a scalar summary value (TF2 writes it as a tensor)."""
  if value.HasField('tensor'):
    return float(tf.make_ndarray(value.tensor))
  return float(value.simple_value)


def _events(path: str) -> Iterator[event_pb2.Event]:
  """The events of one event file, up to a record still being written."""
  records = iter(tf.data.TFRecordDataset(path))
  while True:
    try:
      record = next(records)
    except (StopIteration, tf.errors.DataLossError):
      return
    yield event_pb2.Event.FromString(record.numpy())


def _curves(model_dir: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
  """{panel: {series: [(step, value)]}} of the run so far."""
  losses: dict[str, list[tuple[float, float]]] = {}
  learning_rate: list[tuple[float, float]] = []
  for path in sorted(glob.glob(os.path.join(model_dir, 'train',
                                            'events.out.tfevents.*'))):
    for event in _events(path):
      for value in event.summary.value:
        if value.tag == 'learning_rate':
          learning_rate.append((event.step, _number(value)))
        elif value.tag.startswith('losses/'):
          name = value.tag[len('losses/'):].replace('_loss', '')
          losses.setdefault(name, []).append((event.step, _number(value)))
  evaluation: dict[str, list[tuple[float, float]]] = {}
  for path in sorted(glob.glob(os.path.join(model_dir, 'eval',
                                            'metrics-*.json'))):
    with open(path) as f:
      metrics = json.load(f)
    for key, name in (('pq_all', 'PQ'), ('miou', 'mIoU'), ('ap', 'mask AP')):
      if isinstance(metrics.get(key), (int, float)):
        evaluation.setdefault(name, []).append((metrics['step'],
                                                 metrics[key]))
  return {'losses': {name: sorted(v) for name, v in losses.items()},
          'learning rate': {'lr': sorted(learning_rate)},
          'evaluation': evaluation}
