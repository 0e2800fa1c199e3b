"""Evaluation: model -> post-processing -> PQ / SQ / RQ and mIoU."""

import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2.evaluation import mean_iou
from deeplab2.evaluation import panoptic_quality
from deeplab2.utils import resize


class Evaluator:
  """Evaluates a model on a (finite) dataset of padded eval batches.

  Each image's outputs are cropped to its original size before
  post-processing, exactly as the exported SavedModel does, and compared
  with its original, unresized label.

  Args:
    strategy: tf.distribute.Strategy the model runs under.
    model: the Keras model (image batch -> deeplab2.common PRED_* outputs).
    post_processor: PanopticDeepLabPostProcessor.
    label_spec: label_spec.LabelSpec of the eval dataset.
  """

  def __init__(self, strategy, model, post_processor, label_spec):
    self.strategy = strategy
    self.model = model
    self.post_processor = post_processor
    self.label_spec = label_spec
    self._predict = tf.function(self._predict_impl)
    self._post_process = tf.function(post_processor.__call__,
                                     reduce_retracing=True)

  def _predict_impl(self, batch):
    def replica_fn(images):
      return self.model(images, training=False)
    return self.strategy.run(replica_fn, args=(batch[common.IMAGE],))

  def _local(self, value):
    parts = self.strategy.experimental_local_results(value)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)

  def evaluate(self, dataset, eval_steps=-1):
    """Runs the dataset once (or `eval_steps` batches).

    Args:
      dataset: distributed dataset of eval batches.
      eval_steps: number of batches, -1 for all.

    Returns:
      dict of metrics: pq/sq/rq for all/things/stuff, miou, per-class
      values and num_images.
    """
    spec = self.label_spec
    pq = panoptic_quality.PanopticQuality(spec)
    miou = mean_iou.MeanIoU(spec.num_classes, spec.ignore_label)
    num_images = 0
    for step, batch in enumerate(dataset):
      if 0 <= eval_steps <= step:
        break
      outputs = {k: self._local(v) for k, v in self._predict(batch).items()}
      labels = self._local(batch[common.PANOPTIC_LABEL])
      sizes = self._local(batch[common.IMAGE_SIZE])
      label_sizes = self._local(batch[common.LABEL_SIZE])
      for i, (height, width) in enumerate(sizes):
        single = {k: v[i:i + 1, :height, :width] for k, v in outputs.items()}
        predictions = self._post_process(single)
        label_height, label_width = label_sizes[i]
        label = labels[i, :label_height, :label_width]
        panoptic = predictions[common.PRED_PANOPTIC]
        semantic = predictions[common.PRED_SEMANTIC]
        if (label_height, label_width) != (height, width):
          # The input was resized to a range: predictions go back to the
          # original label's size (nearest, align corners), as deeplab2.
          size = tf.constant([label_height, label_width], tf.int32)
          panoptic = resize.resize_nearest(panoptic[..., None], size)[..., 0]
          semantic = resize.resize_nearest(semantic[..., None], size)[..., 0]
        pq.update(label, panoptic.numpy()[0])
        miou.update(spec.semantic_label(label), semantic.numpy()[0])
        num_images += 1
    if num_images == 0:
      raise ValueError('The eval dataset produced no images.')
    metrics = pq.result()
    metrics.update(miou.result())
    metrics['num_images'] = num_images
    return metrics
