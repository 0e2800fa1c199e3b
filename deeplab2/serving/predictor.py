"""A predictor for one image or a batch, as Detectron2's DefaultPredictor.

  predictor = Predictor.from_saved_model('runs/synthetic/export')
  result = predictor(image)             # uint8 [H, W, 3] (or grey, RGBA)
  result.panoptic, result.segments      # NumPy maps, a list of Segment
  picture = result.overlay(image, labels=True, legend=True)
  result.save('out.png', image)         # or .npz (the maps), .json

  # Only things scored 0.5 or more, the 20 best of them per image:
  predictor = Predictor.from_saved_model(path, score_threshold=0.5,
                                         max_instances=20)

It loads an exported SavedModel (TensorFlow only), an experiment config +
checkpoint (`Predictor.from_experiment`: the same inference path, built in
this process), or a .tflite model (LiteRT), and returns NumPy arrays.
"""

import dataclasses
import json
import numbers
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2 import inference
from deeplab2.data import dataset_descriptor
from deeplab2.evaluation import segments as segments_lib
from deeplab2.serving import export
from deeplab2.serving import image_io
from deeplab2.serving import onnx_export
from deeplab2.utils import atomic
from deeplab2.utils import visualization


@dataclasses.dataclass(frozen=True)
class Segment:
  """One non-void segment of a panoptic prediction.

  Attributes:
    id: its panoptic id (class * label_divisor + instance).
    class_id: the class index; class_name its name.
    category_id: the dataset's own category id (COCO's, say), or None.
    is_thing: whether the class has instances.
    score: in [0, 1]. Things: the instance score, the center heatmap's
      value at the instance's center times the mean probability of its
      class over its pixels, clipped to [0, 1] (the heatmap regresses a
      Gaussian of peak 1 and can overshoot it); evaluation's mask AP ranks
      by the unclipped product, as deeplab2. Stuff: the mean probability
      of its class over it.
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

  def overlay(self, image: np.ndarray | None = None, alpha: float = 0.55,
              borders: bool = True, labels: bool = False,
              legend: bool = False) -> np.ndarray:
    """The prediction's colours over `image` (visualization.overlay_panoptic).

    Args:
      image: the image predicted (uint8 [H, W, 3], or see
        image_io.to_rgb_uint8); None: the colours alone.
      alpha: weight of the colours.
      borders: a white line between segments.
      labels: name each segment where the name fits (things with their
        score), in a font sized to the image.
      legend: a strip below the picture: each class present, its colour,
        and for things the instance count.

    Returns:
      uint8 [H, W, 3], or [H + strip, W, 3] with the legend.
    """
    if image is None:
      image = np.zeros(self.panoptic.shape + (3,), np.uint8)
      alpha = 1.0
    texts = None
    if labels:
      ranked = sorted(self.segments, key=lambda s: (not s.is_thing, -s.area))
      texts = [(_label_text(s), _label_point(self.panoptic, s), s.area)
               for s in ranked]
    return visualization.overlay_panoptic(
        image_io.to_rgb_uint8(image), self.panoptic, self.descriptor, alpha,
        borders, texts, self._legend() if legend else None)

  def _legend(self) -> list[tuple[str, tuple[int, ...]]]:
    """[(text, colour)] of the classes present, in class order."""
    counts: dict[int, int] = {}
    for segment in self.segments:
      counts[segment.class_id] = counts.get(segment.class_id, 0) + 1
    entries = []
    for class_id in sorted(counts):
      text = self.descriptor.class_names[class_id]
      if class_id in self.descriptor.thing_class_ids:
        text += f' x{counts[class_id]}'
      entries.append((text, tuple(self.descriptor.colormap[class_id])))
    return entries

  def coco_segments_info(self) -> list[dict[str, Any]]:
    """The COCO panoptic `segments_info` of the segments (ids 1..K in the
    order of `segments`, as the PNG of prediction_files encodes them)."""
    return segments_lib.Segments(self.panoptic,
                                 self.descriptor).segments_info()

  def save(self, path: str, image: np.ndarray | None = None,
           overwrite: bool = False) -> None:
    """Writes the prediction to `path`, whole or not at all; the extension
    chooses what:

    - .png, .jpg, .jpeg: the overlay over `image` (or the colours alone)
      with labels and the legend strip;
    - .npz: every map (`maps`) as NumPy arrays;
    - .json: the segments (Segment fields) and the image size.

    Raises:
      ValueError: another extension.
      FileExistsError: `path` exists and not overwrite.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in _SAVE_FORMATS:
      raise ValueError(f'{path}: Prediction.save writes '
                       f'{", ".join(_SAVE_FORMATS)} files, not '
                       f'{extension or "a file without extension"}.')
    if os.path.exists(path) and not overwrite:
      raise FileExistsError(f'{path} exists; pass overwrite=True to replace '
                            'it.')
    with atomic.staged_file(path) as temporary:
      if extension == '.npz':
        with open(temporary, 'wb') as f:
          np.savez_compressed(f, **self.maps)  # type: ignore[arg-type]
      elif extension == '.json':
        with open(temporary, 'w', encoding='utf-8') as f:
          json.dump({'height': int(self.panoptic.shape[0]),
                     'width': int(self.panoptic.shape[1]),
                     'segments': [dataclasses.asdict(s)
                                  for s in self.segments]}, f, indent=1)
      else:
        picture = self.overlay(image, labels=True, legend=True)
        Image.fromarray(picture).save(
            temporary, format='PNG' if extension == '.png' else 'JPEG')


_SAVE_FORMATS = ('.png', '.jpg', '.jpeg', '.npz', '.json')


def _label_text(segment: Segment) -> str:
  """A thing's class and score ('car 0.87'); a stuff segment's class."""
  if segment.is_thing and np.isfinite(segment.score):
    return f'{segment.class_name} {segment.score:.2f}'
  return segment.class_name


def _label_point(panoptic: np.ndarray, segment: Segment) -> tuple[int, int]:
  """(y, x): the segment's pixel nearest to its mean position."""
  ys, xs = np.nonzero(panoptic == segment.id)
  k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
  return int(ys[k]), int(xs[k])


def kept_instances(prediction: Prediction, score_threshold: float,
                   max_instances: int | None) -> Prediction:
  """The prediction without the thing segments scored under
  `score_threshold` or ranked past `max_instances` (by score): their
  pixels become void in `panoptic` and 0 in `instance`; `semantic` and the
  other maps stay as predicted. Stuff segments are always kept."""
  things = sorted((s for s in prediction.segments if s.is_thing),
                  key=lambda s: -s.score)
  dropped = [s for s in things if s.score < score_threshold]
  kept = [s for s in things if s.score >= score_threshold]
  if max_instances is not None:
    dropped += kept[max_instances:]
  if not dropped:
    return prediction
  removed = np.isin(prediction.panoptic, [s.id for s in dropped])
  panoptic = np.where(removed, prediction.descriptor.void_label,
                      prediction.panoptic).astype(prediction.panoptic.dtype)
  instance = np.where(removed, 0, prediction.instance).astype(
      prediction.instance.dtype)
  gone = {s.id for s in dropped}
  maps = dict(prediction.maps, panoptic_pred=panoptic, instance_pred=instance)
  return dataclasses.replace(
      prediction, panoptic=panoptic, instance=instance, maps=maps,
      segments=[s for s in prediction.segments if s.id not in gone])


MODEL_KINDS = ('saved_model', 'tflite', 'onnx', 'openvino')
OPENVINO_PRECISIONS = ('f32', 'bf16')


def model_kind(path: str) -> str:
  """Which MODEL_KINDS an exported model's path is (by the file).

  Raises:
    ValueError: none of them, naming what each looks like.
  """
  if os.path.isdir(path) and os.path.exists(
      os.path.join(path, 'saved_model.pb')):
    return 'saved_model'
  kinds = {'.tflite': 'tflite', '.onnx': 'onnx', '.xml': 'openvino'}
  kind = kinds.get(os.path.splitext(path)[1].lower())
  if kind and os.path.isfile(path):
    return kind
  raise ValueError(f'{path} is no exported model: give a SavedModel folder '
                   '(with saved_model.pb), or a .tflite, .onnx or OpenVINO '
                   '.xml file.')


def _one_image_at_a_time(run_one: Callable[[np.ndarray], Mapping[
    str, np.ndarray]]) -> 'BatchFunction':
  """A BatchFunction over a model of batch 1: run_one(uint8 [1, H, W, 3])
  -> {name: [1, ...] array}, called per image, results concatenated."""

  def run(images: np.ndarray) -> dict[str, np.ndarray]:
    outputs = [run_one(image[None]) for image in images]
    return {key: np.concatenate([o[key] for o in outputs])
            for key in outputs[0]}
  return run


def _descriptor(descriptor: str | dataset_descriptor.DatasetDescriptor |
                None, metadata: Mapping[str, str], path: str
                ) -> dataset_descriptor.DatasetDescriptor:
  """The descriptor given (a JSON path or an object), else the model's."""
  if isinstance(descriptor, dataset_descriptor.DatasetDescriptor):
    return descriptor
  if descriptor:
    return dataset_descriptor.read_json(descriptor)
  if onnx_export.DESCRIPTOR_KEY not in metadata:
    raise ValueError(f'{path} holds no dataset descriptor (it was not '
                     'written by export_model.py); give its '
                     'dataset_descriptor.json.')
  return dataset_descriptor.from_json_dict(
      json.loads(metadata[onnx_export.DESCRIPTOR_KEY]),
      f'{path} (its metadata)')


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
    score = (min(max(thing_score[k + 1], 0.0), 1.0)
             if is_thing and thing_score is not None else stuff_score[k + 1])
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


def check_instance_options(score_threshold: float, max_instances: int | None
                           ) -> tuple[float, int | None]:
  """(score_threshold, max_instances) checked: see Predictor.

  Raises:
    ValueError: naming the value.
  """
  if (isinstance(score_threshold, bool) or
      not isinstance(score_threshold, numbers.Real) or
      not 0.0 <= score_threshold <= 1.0):
    raise ValueError(f'score_threshold is {score_threshold!r}; scores are '
                     'in [0, 1], give a threshold in [0, 1].')
  if max_instances is not None and (
      isinstance(max_instances, bool) or
      not isinstance(max_instances, numbers.Integral) or max_instances < 0):
    raise ValueError(f'max_instances is {max_instances!r}; give an integer '
                     '>= 0, or None for no limit.')
  return float(score_threshold), (None if max_instances is None
                                  else int(max_instances))


class Predictor:
  """Runs one inference path on NumPy images; see the module docstring.

  Args:
    batch_function: callable(uint8 [B, H, W, 3] array) -> {name: [B, ...]
      array}.
    descriptor: DatasetDescriptor of the model's classes.
    input_size: the only (height, width) the model takes, or None.
    score_threshold: things scored under it are dropped (0: keep all);
      see kept_instances.
    max_instances: at most this many things per image, the best scored
      (None: no limit).

  Raises:
    ValueError: score_threshold outside [0, 1], max_instances negative.
  """

  def __init__(self, batch_function: BatchFunction,
               descriptor: dataset_descriptor.DatasetDescriptor,
               input_size: Sequence[int] | None = None,
               score_threshold: float = 0.0,
               max_instances: int | None = None):
    self.score_threshold, self.max_instances = check_instance_options(
        score_threshold, max_instances)
    self._batch_function = batch_function
    self.descriptor = descriptor
    self.input_size = (tuple(int(v) for v in input_size) if input_size
                       else None)
    # What batch_function needs alive (a loaded SavedModel, an interpreter).
    self._resources: Any = None

  @classmethod
  def from_saved_model(cls, path: str, score_threshold: float = 0.0,
                       max_instances: int | None = None) -> 'Predictor':
    """An export of export_model.py (its serving_batch signature);
    score_threshold, max_instances: see Predictor."""
    loaded = tf.saved_model.load(path)
    meta = export.read_metadata(path)
    signature = loaded.signatures['serving_batch']

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
      outputs = signature(images=tf.constant(images))
      return {key: value.numpy() for key, value in outputs.items()}
    descriptor = dataset_descriptor.read_json(
        os.path.join(path, 'assets', export.DESCRIPTOR_FILE))
    predictor = cls(run, descriptor, meta.get('input_size'),
                    score_threshold, max_instances)
    predictor._resources = loaded     # keeps the functions alive
    return predictor

  @classmethod
  def from_experiment(cls, config_path: 'config_lib.ConfigSource',
                      checkpoint_path: str,
                      eval_scales: Sequence[float] | None = None,
                      add_flipped_images: bool | None = None,
                      score_threshold: float = 0.0,
                      max_instances: int | None = None) -> 'Predictor':
    """An experiment config's model with a checkpoint, in this process.

    Args:
      config_path: the experiment textproto, or a config.ConfigFile (its path
      and command-line overrides).
      checkpoint_path: see export.restored_model (a prefix or a model_dir).
      eval_scales, add_flipped_images: see export.export_from_config.
      score_threshold, max_instances: see Predictor.
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
    return cls(run, parts.descriptor('eval'), None, score_threshold,
               max_instances)

  @classmethod
  def from_tflite(cls, path: str,
                  descriptor: str | dataset_descriptor.DatasetDescriptor,
                  num_threads: int | None = None,
                  score_threshold: float = 0.0,
                  max_instances: int | None = None) -> 'Predictor':
    """A .tflite model of export_model.py --tflite, run by LiteRT.

    Args:
      path: the .tflite file.
      descriptor: the DatasetDescriptor of its classes (a .tflite file
        holds none): a JSON path or an object.
      num_threads: LiteRT's CPU threads (None: its default).
      score_threshold, max_instances: see Predictor.
    """
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    runner = litert.Interpreter(model_path=path, num_threads=num_threads)
    signature = runner.get_signature_runner()
    shape = signature.get_input_details()['images']['shape']
    run = _one_image_at_a_time(lambda image: signature(images=image))
    predictor = cls(run, _descriptor(descriptor, {}, path),
                    tuple(int(v) for v in shape[1:3]), score_threshold,
                    max_instances)
    predictor._resources = runner
    return predictor

  @classmethod
  def from_onnx(cls, path: str,
                descriptor: str | dataset_descriptor.DatasetDescriptor | None
                = None, providers: Sequence[str] | None = None,
                score_threshold: float = 0.0,
                max_instances: int | None = None) -> 'Predictor':
    """An .onnx model of export_model.py --format=onnx, run by ONNX Runtime.

    Args:
      path: the .onnx file.
      descriptor: its classes (a JSON path or an object); None: the one
        the model's metadata holds.
      providers: ONNX Runtime's execution providers (None: CPU).
      score_threshold, max_instances: see Predictor.
    """
    runtime = onnx_export.optional_module('onnxruntime', 'onnx',
                                          'Predictor.from_onnx')
    session = runtime.InferenceSession(
        path, providers=list(providers or ['CPUExecutionProvider']))
    metadata = session.get_modelmeta().custom_metadata_map
    shape = session.get_inputs()[0].shape
    names = [output.name for output in session.get_outputs()]

    run = _one_image_at_a_time(
        lambda image: dict(zip(names, session.run(None, {'images': image}))))
    predictor = cls(run, _descriptor(descriptor, metadata, path),
                    tuple(int(v) for v in shape[1:3]), score_threshold,
                    max_instances)
    predictor._resources = session
    return predictor

  @classmethod
  def from_openvino(cls, path: str,
                    descriptor: str | dataset_descriptor.DatasetDescriptor |
                    None = None, device: str = 'CPU',
                    score_threshold: float = 0.0,
                    max_instances: int | None = None,
                    precision: str = 'f32') -> 'Predictor':
    """An OpenVINO IR (.xml with its .bin) of export_model.py
    --format=openvino, run by the OpenVINO runtime on `device`.

    Args:
      precision: 'f32' (default: the SavedModel's maps) or 'bf16': the
        network in bfloat16 where the CPU has bfloat16 units (AVX512_BF16,
        AMX), about 1.5x faster there for ResNet-50, with maps that differ
        (tied bfloat16 center scores renumber instances, borders move;
        docs/deployment.md gives the measured agreement); elsewhere
        OpenVINO computes in float32.
      other arguments: as from_onnx.

    Raises:
      ValueError: an unknown precision.
    """
    if precision not in OPENVINO_PRECISIONS:
      raise ValueError(f'precision={precision!r}: OpenVINO precision must be '
                       f'one of {", ".join(OPENVINO_PRECISIONS)}.')
    openvino = onnx_export.optional_module('openvino', 'openvino',
                                           'Predictor.from_openvino')
    core = openvino.Core()
    model = core.read_model(path)
    metadata = {}
    for key in (onnx_export.DESCRIPTOR_KEY, onnx_export.EXPORT_KEY):
      if model.has_rt_info(['deeplab2', key]):
        metadata[key] = model.get_rt_info(['deeplab2', key]).astype(str)
    # Always given: on CPUs with bfloat16 units OpenVINO would compute in
    # bfloat16 by default.
    compiled = core.compile_model(model, device,
                                  {'INFERENCE_PRECISION_HINT': precision})
    shape = [int(v) for v in compiled.input(0).shape]
    # The model's output names (a compiled output can carry several).
    outputs = {named.get_any_name(): output
               for named, output in zip(model.outputs, compiled.outputs)}

    request = compiled.create_infer_request()

    def run_one(image: np.ndarray) -> dict[str, np.ndarray]:
      request.infer({0: image})
      return {name: np.array(request.get_tensor(output).data)
              for name, output in outputs.items()}
    run = _one_image_at_a_time(run_one)
    predictor = cls(run, _descriptor(descriptor, metadata, path),
                    tuple(shape[1:3]), score_threshold, max_instances)
    predictor._resources = compiled
    return predictor

  @classmethod
  def from_file(cls, path: str,
                descriptor: str | dataset_descriptor.DatasetDescriptor | None
                = None, score_threshold: float = 0.0,
                max_instances: int | None = None,
                openvino_precision: str = 'f32') -> 'Predictor':
    """Any exported model, chosen by the path: a SavedModel folder, a
    .tflite, .onnx or OpenVINO .xml file (openvino_precision: see
    from_openvino's precision).

    Raises:
      ValueError: a path of no such kind; openvino_precision other than
        'f32' for a model that is not OpenVINO's.
    """
    kind = model_kind(path)
    if openvino_precision != 'f32' and kind != 'openvino':
      raise ValueError(f'{path}: openvino_precision={openvino_precision!r} '
                       'is for OpenVINO models (.xml) only.')
    threshold, most = score_threshold, max_instances
    if kind == 'saved_model':
      return cls.from_saved_model(path, score_threshold=threshold,
                                  max_instances=most)
    if kind == 'tflite':
      if descriptor is None:
        raise ValueError(f'{path}: a .tflite model holds no classes; give '
                         'its dataset_descriptor.json too.')
      return cls.from_tflite(path, descriptor, score_threshold=threshold,
                             max_instances=most)
    if kind == 'onnx':
      return cls.from_onnx(path, descriptor, score_threshold=threshold,
                           max_instances=most)
    return cls.from_openvino(path, descriptor, score_threshold=threshold,
                             max_instances=most,
                             precision=openvino_precision)

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
      prediction = Prediction(
          panoptic=maps['panoptic_pred'], semantic=maps['semantic_pred'],
          instance=maps['instance_pred'], maps=maps,
          segments=segments_of(maps, self.descriptor),
          descriptor=self.descriptor)
      predictions.append(kept_instances(prediction, self.score_threshold,
                                        self.max_instances))
    return predictions

