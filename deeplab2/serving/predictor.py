"""A predictor for one image or a batch, as Detectron2's DefaultPredictor.

  predictor = Predictor.from_saved_model('runs/synthetic/export')
  result = predictor(image)             # uint8 [H, W, 3] (or grey, RGBA)
  result.panoptic, result.segments      # NumPy maps, a list of Segment
  picture = result.overlay(image)

It loads an exported SavedModel (TensorFlow only), an experiment config +
checkpoint (`Predictor.from_experiment`: the same inference path, built in
this process), or a .tflite model (LiteRT), and returns NumPy arrays.
"""

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2 import inference
from deeplab2.data import dataset_descriptor
from deeplab2.evaluation import segments as segments_lib
from deeplab2.serving import export
from deeplab2.serving import image_io
from deeplab2.utils import visualization


@dataclasses.dataclass(frozen=True)
class Segment:
  """One non-void segment of a panoptic prediction.

  Attributes:
    id: its panoptic id (class * label_divisor + instance).
    class_id: the class index; class_name its name.
    category_id: the dataset's own category id (COCO's, say), or None.
    is_thing: whether the class has instances.
    score: things: the instance score (center heatmap x mean class
      probability); stuff: the mean probability of its class over it.
    area: pixels.
    bbox: (x, y, width, height).
  """
  id: int
  class_id: int
  class_name: str
  category_id: int | None
  is_thing: bool
  score: float
  area: int
  bbox: tuple[int, int, int, int]


@dataclasses.dataclass
class Prediction:
  """The maps of one image (at its size) and its segments.

  Attributes:
    panoptic, semantic, instance: int32 [H, W].
    maps: every output by name (export's names), NumPy, without batch axis.
    segments: list of Segment, in increasing panoptic id.
    descriptor: the DatasetDescriptor of the ids.
  """
  panoptic: np.ndarray
  semantic: np.ndarray
  instance: np.ndarray
  maps: dict[str, np.ndarray]
  segments: list[Segment]
  descriptor: dataset_descriptor.DatasetDescriptor

  def overlay(self, image: np.ndarray, alpha: float = 0.55,
              borders: bool = True, labels: bool = False) -> np.ndarray:
    """uint8 [H, W, 3]: the prediction's colours over `image` (see
    visualization.overlay_panoptic); labels names each segment."""
    texts = None
    if labels:
      texts = [(s.class_name, _label_point(self.panoptic, s))
               for s in self.segments]
    return visualization.overlay_panoptic(
        image_io.to_rgb_uint8(image), self.panoptic, self.descriptor, alpha,
        borders, texts)

  def coco_segments_info(self) -> list[dict[str, Any]]:
    """The COCO panoptic `segments_info` of the segments (ids 1..K in the
    order of `segments`, as the PNG of prediction_files encodes them)."""
    return segments_lib.Segments(self.panoptic,
                                 self.descriptor).segments_info()


def _label_point(panoptic: np.ndarray, segment: Segment) -> tuple[int, int]:
  """(y, x): the segment's pixel nearest to its mean position."""
  ys, xs = np.nonzero(panoptic == segment.id)
  k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
  return int(ys[k]), int(xs[k])


def segments_of(maps: Mapping[str, np.ndarray],
                descriptor: dataset_descriptor.DatasetDescriptor
                ) -> list[Segment]:
  """[Segment] of one image's output maps (panoptic_pred, semantic_probs,
  instance_scores as exported)."""
  panoptic = maps['panoptic_pred']
  found = segments_lib.Segments(panoptic, descriptor)
  probs = maps.get(inference.SEMANTIC_PROBS)
  instance_scores = maps.get('instance_scores')
  # Per-segment sums over the pixels, in one pass each (index 0: void).
  index = found.index.ravel()
  counts = np.maximum(np.bincount(index, minlength=len(found) + 1), 1)
  stuff_score = np.full(len(found) + 1, np.nan)
  if probs is not None:
    pixel_class = np.append(0, found.classes)[index]
    pixel_prob = np.take_along_axis(probs.reshape(index.size, -1),
                                    pixel_class[:, None], axis=1)[:, 0]
    stuff_score = np.bincount(index, pixel_prob, len(found) + 1) / counts
  thing_score = None
  if instance_scores is not None:
    thing_score = np.zeros(len(found) + 1)
    np.maximum.at(thing_score, index, instance_scores.ravel())
  segments = []
  for k in range(len(found)):
    class_id = int(found.classes[k])
    is_thing = class_id in descriptor.thing_class_ids
    score = (thing_score[k + 1] if is_thing and thing_score is not None
             else stuff_score[k + 1])
    category = int(found.category_ids[k])
    x, y, w, h = found.bboxes[k]
    segments.append(Segment(
        id=int(found.panoptic_ids[k]), class_id=class_id,
        class_name=descriptor.class_names[class_id],
        category_id=category if category >= 0 else None,
        is_thing=is_thing, score=float(score), area=int(found.areas[k]),
        bbox=(int(x), int(y), int(w), int(h))))
  return segments


# uint8 [B, H, W, 3] -> {output name: [B, ...] array}.
BatchFunction = Callable[[np.ndarray], dict[str, np.ndarray]]


class Predictor:
  """Runs one inference path on NumPy images; see the module docstring.

  Args:
    batch_function: callable(uint8 [B, H, W, 3] array) -> {name: [B, ...]
      array}.
    descriptor: DatasetDescriptor of the model's classes.
    input_size: the only (height, width) the model takes, or None.
  """

  def __init__(self, batch_function: BatchFunction,
               descriptor: dataset_descriptor.DatasetDescriptor,
               input_size: Sequence[int] | None = None):
    self._batch_function = batch_function
    self.descriptor = descriptor
    self.input_size = (tuple(int(v) for v in input_size) if input_size
                       else None)
    # What batch_function needs alive (a loaded SavedModel, an interpreter).
    self._resources: Any = None

  @classmethod
  def from_saved_model(cls, path: str) -> 'Predictor':
    """An export of export_model.py (its serving_batch signature)."""
    loaded = tf.saved_model.load(path)
    meta = export.read_metadata(path)
    signature = loaded.signatures['serving_batch']

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
      outputs = signature(images=tf.constant(images))
      return {key: value.numpy() for key, value in outputs.items()}
    descriptor = dataset_descriptor.read_json(
        os.path.join(path, 'assets', export.DESCRIPTOR_FILE))
    predictor = cls(run, descriptor, meta.get('input_size'))
    predictor._resources = loaded     # keeps the functions alive
    return predictor

  @classmethod
  def from_experiment(cls, config_path: 'config_lib.ConfigSource',
                      checkpoint_path: str,
                      eval_scales: Sequence[float] | None = None,
                      add_flipped_images: bool | None = None) -> 'Predictor':
    """An experiment config's model with a checkpoint, in this process.

    Args:
      config_path: the experiment textproto, or a config.ConfigFile (its path
      and command-line overrides).
      checkpoint_path: see export.restored_model (a prefix or a model_dir).
      eval_scales, add_flipped_images: see export.export_from_config.
    """
    parts = config_lib.load_experiment(config_path)
    module = export.PanopticDeepLabModule(
        export.restored_model(parts, checkpoint_path),
        parts.build_post_processor(),
        parts.inference_options(eval_scales, add_flipped_images))
    serve = tf.function(module.predict_rgb, reduce_retracing=True,
                        autograph=False)

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
      return {key: value.numpy()
              for key, value in serve(tf.constant(images)).items()}
    return cls(run, parts.descriptor('eval'))

  @classmethod
  def from_tflite(cls, path: str,
                  descriptor: str | dataset_descriptor.DatasetDescriptor,
                  num_threads: int | None = None) -> 'Predictor':
    """A .tflite model of export_model.py --tflite, run by LiteRT.

    Args:
      path: the .tflite file.
      descriptor: the DatasetDescriptor of its classes (a .tflite file
        holds none): a JSON path or an object.
      num_threads: LiteRT's CPU threads (None: its default).
    """
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    runner = litert.Interpreter(model_path=path, num_threads=num_threads)
    signature = runner.get_signature_runner()
    shape = signature.get_input_details()['images']['shape']
    if isinstance(descriptor, str):
      descriptor = dataset_descriptor.read_json(descriptor)

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
      outputs = [signature(images=image[None]) for image in images]
      return {key: np.concatenate([o[key] for o in outputs])
              for key in outputs[0]}
    predictor = cls(run, descriptor, tuple(int(v) for v in shape[1:3]))
    predictor._resources = runner
    return predictor

  def __call__(self, image: np.ndarray) -> Prediction:
    """One image (uint8 [H, W, 3], or see image_io.to_rgb_uint8) ->
    Prediction."""
    return self.predict_batch(image_io.to_rgb_uint8(image)[None])[0]

  def predict_batch(self, images: np.ndarray | Sequence[np.ndarray]
                    ) -> list[Prediction]:
    """uint8 [B, H, W, 3] (or a list of same-size images) -> [Prediction].

    Raises:
      ValueError: images of different sizes, or not the model's fixed size.
    """
    images = [image_io.to_rgb_uint8(image) for image in images]
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
      raise ValueError(f'A batch holds images of one size, got '
                       f'{sorted(s[:2] for s in sizes)}.')
    size = images[0].shape[:2]
    if self.input_size and size != self.input_size:
      raise ValueError(f'This model takes {self.input_size[0]} x '
                       f'{self.input_size[1]} images only, got {size[0]} x '
                       f'{size[1]}.')
    outputs = self._batch_function(np.stack(images))
    predictions = []
    for i in range(len(images)):
      maps = {key: value[i] for key, value in outputs.items()}
      predictions.append(Prediction(
          panoptic=maps['panoptic_pred'], semantic=maps['semantic_pred'],
          instance=maps['instance_pred'], maps=maps,
          segments=segments_of(maps, self.descriptor),
          descriptor=self.descriptor))
    return predictions

