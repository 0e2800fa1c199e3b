"""Evaluation: model (with test-time augmentation) -> post-processing ->
PQ / SQ / RQ, mIoU and mask AP, the same under every tf.distribute strategy
(mask AP up to the order of detections with exactly equal scores).

The forward pass, the crop and the maps written are deeplab2.inference's,
as the exported SavedModel's.
"""

from collections.abc import Callable
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2 import inference
from deeplab2 import label_spec as label_spec_lib
from deeplab2.evaluation import mask_ap
from deeplab2.evaluation import metric_set
from deeplab2.postprocessing import post_processor as post_processor_lib
from deeplab2.training import distribution
from deeplab2.utils import visualization

_log = logging.getLogger('deeplab2')

# Seconds between the progress lines of a long evaluation.
PROGRESS_SECONDS = 30.0


class Evaluator:
  """Evaluates a model on a finite dataset of padded eval batches.

  Each image's outputs are cropped to its original size before
  post-processing, exactly as the exported SavedModel does, and compared
  with its original, unresized label. Images whose IS_VALID is False (the
  padding that completes the last global batch) are not scored. Every
  host scores the images of its own replicas; the integer statistics
  (PQ's matches and IoU sums, the confusion matrix) are then summed across
  hosts, so the metrics do not depend on how the images were split.

  Args:
    strategy: tf.distribute.Strategy the model runs under.
    model: the Keras model (image batch -> deeplab2.common PRED_* outputs).
    post_processor: PanopticDeepLabPostProcessor.
    label_spec: label_spec.LabelSpec of the eval dataset.
    num_vis_samples: pictures of this many of the first images (this
      host's) are kept in `samples` at each evaluation.
    tta: the test-time augmentation of the forward pass
      (ExperimentParts.tta; default none).
  """

  def __init__(
      self, strategy: tf.distribute.Strategy, model: keras.Model,
      post_processor: post_processor_lib.PanopticDeepLabPostProcessor,
      label_spec: label_spec_lib.LabelSpec, num_vis_samples: int = 0,
      tta: inference.TestTimeAugmentation = inference.TestTimeAugmentation()):
    self.strategy = strategy
    self.tta = tta
    self.model = model
    self.post_processor = post_processor
    self.label_spec = label_spec
    self.num_vis_samples = num_vis_samples
    # [{name: uint8 [H, W, 3]}] of the last evaluation: input, panoptic
    # prediction, its ground truth, center heatmap and offsets (colour
    # wheel).
    self.samples: list[dict[str, np.ndarray]] = []
    # Callables write(filename, maps, segment_scores), called with each
    # scored image (this host's): maps holds inference.output_maps at
    # the image's original size, as NumPy arrays without the batch axis.
    # int64 [C, C + 1] of the last evaluation: rows ground truth, columns
    # prediction (mean_iou.MeanIoU's).
    self.confusion: np.ndarray | None = None
    self.prediction_writers: list[
        Callable[[str, dict[str, np.ndarray], dict[int, float]], None]] = []
    # reduce_retracing: crops of many sizes (resized evaluation) share one
    # trace with dynamic sides after two.
    self._predict = tf.function(self._predict_impl, autograph=False,
                                reduce_retracing=True)
    self._post_process = tf.function(post_processor.__call__, autograph=False,
                                     reduce_retracing=True)

  def _predict_impl(self, images):
    def replica_fn(replica_images):
      return inference.predict(self.model, replica_images, self.tta)
    return self.strategy.run(replica_fn, args=(images,))

  def _per_replica(self, value):
    """A dict of (per-replica) tensors -> one dict of NumPy arrays per local
    replica."""
    local = {k: self.strategy.experimental_local_results(v)
             for k, v in value.items()}
    count = len(next(iter(local.values())))
    return [{k: np.asarray(v[i]) for k, v in local.items()}
            for i in range(count)]

  def _score(self, outputs, batch, metrics):
    """Scores the valid images of one replica's batch; returns their count."""
    labels = batch[common.PANOPTIC_LABEL]
    valid = batch.get(common.IS_VALID,
                      np.ones(len(labels), bool))
    count = 0
    for i, (height, width) in enumerate(batch[common.IMAGE_SIZE]):
      if not valid[i]:
        continue
      single = inference.crop({k: v[i:i + 1] for k, v in outputs.items()},
                              [int(height), int(width)])
      predictions = self._post_process(single)
      label_height, label_width = batch[common.LABEL_SIZE][i]
      label = labels[i, :label_height, :label_width]
      maps = {k: predictions[k] for k in (common.PRED_PANOPTIC,
                                          common.PRED_SEMANTIC)}
      if self.prediction_writers:
        maps.update(inference.output_maps(single, predictions))
      if (label_height, label_width) != (height, width):
        # The input was resized to a range: predictions go back to the
        # original label's size, as deeplab2 (and the exported model).
        maps = inference.to_size(maps, [int(label_height), int(label_width)])
      maps = {k: np.asarray(v)[0] for k, v in maps.items()}
      scores = segment_scores(predictions)
      metrics.update(label, maps[common.PRED_PANOPTIC],
                     maps[common.PRED_SEMANTIC], scores)
      if self.prediction_writers:
        filename = batch[common.FILENAME][i]
        filename = (filename.decode() if isinstance(filename, bytes)
                    else str(filename))
        if not filename:
          raise ValueError('An eval record has an empty image/filename: '
                           'prediction files are named after it.')
        for write in self.prediction_writers:
          write(filename, maps, scores)
      count += 1
      if len(self.samples) < self.num_vis_samples:
        pictures = self._pictures(
            batch[common.IMAGE][i, :height, :width],
            predictions[common.PRED_PANOPTIC].numpy()[0], single)
        pictures['ground_truth'] = visualization.colorize_panoptic(
            np.asarray(label), self.label_spec)
        self.samples.append(pictures)
    return count

  def _pictures(self, image, panoptic, outputs):
    pictures = {
        'image': np.clip(image, 0, 255).astype(np.uint8),
        'panoptic': visualization.colorize_panoptic(panoptic,
                                                    self.label_spec)}
    if common.PRED_CENTER_HEATMAP in outputs:
      pictures['center_heatmap'] = visualization.colorize_scalar(
          outputs[common.PRED_CENTER_HEATMAP][0])
    if common.PRED_OFFSET_MAP in outputs:
      pictures['offset_map'] = visualization.colorize_offsets(
          outputs[common.PRED_OFFSET_MAP][0])
    return pictures

  def evaluate(self, dataset, eval_steps=-1, finish_local=None,
               check_stop=None):
    """Runs the dataset once (or its first `eval_steps` global batches).

    Args:
      dataset: a (distributed) dataset of eval batches, from
        input_pipeline.make_dataset; distributed, as by
        experiment.distributed_dataset, with
        distribution.eval_input_options (batches in host memory: only
        the images go to the replicas, through strategy.run).
      eval_steps: number of global batches, -1 for all.
      finish_local: optional callable run on each host after it scored its
        images and before the hosts' statistics are combined (e.g. closing
        its prediction writer), so that when this returns every host has
        run it.
      check_stop: optional callable run before each batch; it raises to
        end the evaluation early (e.g. on a stop signal).

    Returns:
      dict of metrics: pq/sq/rq for all/things/stuff, miou, per-class
      values, mask AP (with the instance branch) and num_images (the same
      on every host).

    Raises:
      Whatever scoring raised on this host; on several hosts, the others
      raise RuntimeError instead of waiting for it forever.
    """
    metrics = metric_set.MetricSet(
        self.label_spec, getattr(self.model, 'has_instance_branch', True))
    num_images = 0
    self.samples = []
    several_hosts = distribution.num_workers(self.strategy) > 1
    start = last_line = time.time()
    try:
      for step, batch in enumerate(dataset):
        if 0 <= eval_steps <= step:
          break
        if time.time() - last_line >= PROGRESS_SECONDS:
          last_line = time.time()
          _log.info('evaluating: %d images scored (%.1f images/s)',
                    num_images, num_images / (last_line - start))
        if check_stop is not None:
          check_stop()
        # Images only: the labels' padded shapes must not retrace the model.
        outputs = self._predict(batch[common.IMAGE])
        for replica_outputs, replica_batch in zip(
            self._per_replica(outputs), self._per_replica(batch)):
          num_images += self._score(replica_outputs, replica_batch, metrics)
      if finish_local is not None:
        finish_local()
    except Exception:  # pylint: disable=broad-except
      if several_hosts:
        # Tell the other hosts, which wait in the all-reduce, then raise.
        _merge_workers(self.strategy, metrics, num_images, failed=True)
      raise
    if several_hosts:
      num_images = _merge_workers(self.strategy, metrics, num_images)
    if num_images == 0:
      raise ValueError('The eval dataset produced no images.')
    # The mIoU's confusion matrix (all hosts' images), for its picture.
    self.confusion = metrics.mean_iou.confusion.copy()
    result = metrics.result()
    result['num_images'] = num_images
    return result


def segment_scores(predictions):
  """{panoptic id: instance score} of one post-processed image.

  Args:
    predictions: the post-processor's outputs for a batch of one image:
      panoptic_pred and instance_pred int32 [1, H, W], instance_scores
      float32 [1, K] (instance k + 1's score at index k).

  Returns:
    dict of the predicted thing segments' scores ({} without instances).
  """
  if common.PRED_INSTANCE_SCORES not in predictions:
    return {}
  instance = np.asarray(predictions[common.PRED_INSTANCE])[0]
  panoptic = np.asarray(predictions[common.PRED_PANOPTIC])[0]
  scores = np.asarray(predictions[common.PRED_INSTANCE_SCORES])[0]
  on_instance = instance > 0
  # Each instance is one panoptic segment after the merge.
  pairs = np.unique(np.stack([panoptic[on_instance], instance[on_instance]]),
                    axis=1)
  return {int(segment): float(scores[index - 1])
          for segment, index in pairs.T}


def _merge_workers(strategy, metrics, num_images, failed=False):
  """Sums the hosts' statistics into `metrics`; returns the image count.

  Every host calls it once per evaluation, also a host whose scoring
  failed (`failed`), so that no host waits forever; then all raise.
  """
  local = {'num_images': np.array([num_images], np.int64),
           'failed': np.array([int(failed)], np.int64),
           **metrics.summable_state()}
  total = distribution.sum_over_workers(strategy, local)
  if total['failed'][0]:
    if failed:
      return 0
    raise RuntimeError(f'{int(total["failed"][0])} other host(s) failed '
                       'during evaluation; see their logs.')
  metrics.set_summed_state(total)
  if metrics.mask_ap is not None:
    parts = distribution.gather_over_workers(strategy,
                                             metrics.mask_ap.state())
    metrics.mask_ap = mask_ap.MaskAP(metrics.label_spec)
    for part in parts:
      metrics.mask_ap.add_state(part)
  return int(total['num_images'][0])
