"""What a run writes for TensorBoard beside its losses: each evaluation's
scalars (per class too) and pictures, and at the start of training the
config and a few training inputs with their targets."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2 import label_spec as label_spec_lib
from deeplab2.utils import visualization

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
