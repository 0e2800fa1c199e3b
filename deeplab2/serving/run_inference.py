"""Runs a Predictor over image files, folders and videos, and writes:

  <output_dir>/overlay/<name>.png     the panoptic colours over the image
  <output_dir>/panoptic/<name>.png    the raw panoptic PNG (COCO: segment
                                      ids as R + 256 G + 256^2 B)
  <output_dir>/panoptic.json          one COCO panoptic entry per image
                                      (image_id: the file's stem, or the
                                      ground truth JSON's id of it)
  <output_dir>/<video>_overlay.mp4    per video, beside its frames, which
                                      are named <video>_<frame>

Unreadable files are reported and skipped; existing outputs are refused
unless overwrite is set, before anything is written. Every file is written
whole or not at all (deeplab2/utils/atomic.py).
"""

import dataclasses
import json
import os
from typing import Callable, Iterator

import numpy as np

from deeplab2.evaluation import prediction_files
from deeplab2.evaluation import writer_base
from deeplab2.serving import image_io
from deeplab2.serving import predictor as predictor_lib
from deeplab2.utils import atomic

OVERLAY_DIR = 'overlay'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm')


@dataclasses.dataclass
class Summary:
  """What a run did: images (and frames) written, files skipped with why."""
  written: int = 0
  # [(path, why)]
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


# (name, uint8 [H, W, 3] image) -> uint8 [H, W, 3] overlay, written.
_PredictAndWrite = Callable[[str, np.ndarray, bool], np.ndarray]


def list_inputs(path: str) -> list[str]:
  """The files to run: `path` itself, or the images and videos directly in
  the folder `path` (sorted; other files are ignored).

  Raises:
    FileNotFoundError: `path` does not exist, or the folder holds none.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f'--input {path} does not exist.')
  if not os.path.isdir(path):
    return [path]
  files = sorted(
      os.path.join(path, name) for name in os.listdir(path)
      if name.lower().endswith(IMAGE_EXTENSIONS +
                               image_io.VIDEO_EXTENSIONS))
  if not files:
    raise FileNotFoundError(f'{path} holds no image or video files '
                            f'({", ".join(IMAGE_EXTENSIONS)}, '
                            f'{", ".join(image_io.VIDEO_EXTENSIONS)}).')
  return files


def is_video(path: str) -> bool:
  return path.lower().endswith(image_io.VIDEO_EXTENSIONS)


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def image_ids_from_json(path: str) -> dict[str, int | str]:
  """{file stem: image_id} of a COCO panoptic ground-truth JSON: from its
  `images` (file_name, id) and `annotations` (file_name, image_id), so that
  predictions written with them pair up with its annotations.

  Raises:
    ValueError: the file cannot be read, or lists no image (named).
  """
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--ground_truth_json={path}: cannot read it ({e}).'
                     ) from None
  ids: dict[str, int | str] = {}
  if isinstance(data, dict):
    for key, id_key in (('annotations', 'image_id'), ('images', 'id')):
      for entry in data.get(key) or []:
        if (isinstance(entry, dict) and
            isinstance(entry.get('file_name'), str) and id_key in entry):
          ids[_stem(entry['file_name'])] = entry[id_key]
  if not ids:
    raise ValueError(f'--ground_truth_json={path} lists no image (no '
                     '"images" or "annotations" with file_name and id).')
  return ids


def _check_known(inputs: list[str], image_ids: dict[str, int | str],
                 json_path: str) -> None:
  """Refuses inputs whose stem the ground truth does not list."""
  unknown = [path for path in inputs if _stem(path) not in image_ids]
  if unknown:
    raise ValueError(
        f'{len(unknown)} input(s) are not in --ground_truth_json={json_path}'
        f', e.g. {unknown[0]}: their predictions could not be scored.')


def check_unique_names(inputs: list[str]) -> None:
  """Raises ValueError naming two inputs whose outputs would share a name
  (outputs are named by the file's stem: same.png and same.jpg clash)."""
  seen: dict[str, str] = {}
  for path in inputs:
    stem = _stem(path)
    if stem in seen:
      raise ValueError(
          f'{seen[stem]} and {path} would both write the outputs named '
          f'{stem!r} (outputs are named by the file name without its '
          'extension); rename one or move it to another folder.')
    seen[stem] = path


def check_outputs(inputs: list[str], output_dir: str,
                  overwrite: bool) -> None:
  """Raises FileExistsError naming an existing output, unless overwrite."""
  if overwrite or not os.path.exists(output_dir):
    return
  taken = [os.path.join(output_dir, prediction_files.PANOPTIC + '.json'),
           os.path.join(output_dir, prediction_files.PANOPTIC)]
  for path in inputs:
    taken.append(os.path.join(output_dir, OVERLAY_DIR, _stem(path) + '.png'))
    if is_video(path):
      taken.append(os.path.join(output_dir, _stem(path) + '_overlay.mp4'))
  existing = [p for p in taken if os.path.exists(p)]
  if existing:
    raise FileExistsError(f'{existing[0]} exists ({len(existing)} outputs '
                          'exist); pass --overwrite to replace them.')


def _frames(path: str) -> tuple[float, Iterator[np.ndarray]]:
  """(fps, iterator of uint8 [H, W, 3] frames) of a video, via imageio's
  ffmpeg plugin."""
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  try:
    reader = imageio.get_reader(path, 'ffmpeg')
    fps = float(reader.get_meta_data().get('fps', 25.0))
  except Exception as e:  # pylint: disable=broad-except
    raise image_io.UnreadableImageError(
        f'{path}: not a readable video ({e})') from e

  def frames() -> Iterator[np.ndarray]:
    with reader:
      for frame in reader.iter_data():
        yield image_io.to_rgb_uint8(frame)
  return fps, frames()


def run(predictor: predictor_lib.Predictor, input_path: str,
        output_dir: str, overwrite: bool = False, labels: bool = False,
        progress: Callable[[int, int], None] | None = None,
        ground_truth_json: str | None = None) -> Summary:
  """Predicts every input and writes the outputs (module docstring).

  Args:
    predictor: the Predictor to run.
    input_path: an image, a video, or a folder of them.
    output_dir: created if missing.
    overwrite: replace existing outputs.
    labels: write class names (things with their scores) on the overlays,
      and a legend strip below those of images.
    progress: optional callable(done, total) over the input files.
    ground_truth_json: optional COCO panoptic ground truth of the inputs:
      panoptic.json then uses its image ids (image_ids_from_json), so
      evaluate_panoptic.py scores it against that JSON directly.

  Returns:
    Summary.

  Raises:
    FileNotFoundError: see list_inputs.
    FileExistsError: see check_outputs.
    ValueError: see check_unique_names; an input the ground truth does not
      list (both before anything is written).
  """
  inputs = list_inputs(input_path)
  check_unique_names(inputs)
  image_ids: dict[str, int | str] = {}
  if ground_truth_json:
    image_ids = image_ids_from_json(ground_truth_json)
    _check_known(inputs, image_ids, ground_truth_json)
  check_outputs(inputs, output_dir, overwrite)
  overlay_dir = os.path.join(output_dir, OVERLAY_DIR)
  os.makedirs(overlay_dir, exist_ok=True)
  writer_base.recover_folder(overlay_dir)   # once, not per file
  summary = Summary()
  with prediction_files.CocoPanopticWriter(
      output_dir, predictor.descriptor, overwrite=overwrite) as writer:

    def predict_and_write(name: str, image: np.ndarray,
                          frame: bool = False) -> np.ndarray:
      prediction = predictor(image)
      # A video's frames keep one size: their overlays have no legend.
      overlay = prediction.overlay(image, labels=labels,
                                   legend=labels and not frame)
      writer_base.save_png(overlay, os.path.join(overlay_dir, name + '.png'),
                           recover=False)
      writer.add(name + '.png', prediction.panoptic,
                 image_id=image_ids.get(name, name))
      summary.written += 1
      return overlay

    for done, path in enumerate(inputs, 1):
      try:
        if is_video(path):
          _run_video(path, output_dir, predict_and_write)
        else:
          predict_and_write(_stem(path), image_io.read_image(path), False)
      except image_io.UnreadableImageError as e:
        summary.skipped.append((path, str(e)))
      if progress is not None:
        progress(done, len(inputs))
  return summary


def _run_video(path: str, output_dir: str,
               predict_and_write: _PredictAndWrite) -> None:
  """Each frame as an image named <video>_<frame>, and the overlays as
  <video>_overlay.mp4 (H.264; odd sides padded by one black pixel), which
  appears only when complete."""
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  fps, frames = _frames(path)
  stem = _stem(path)
  video_path = os.path.join(output_dir, stem + '_overlay.mp4')
  with atomic.staged_file(video_path) as temporary:
    writer = None
    try:
      for index, frame in enumerate(frames):
        overlay = predict_and_write(f'{stem}_{index:06d}', frame, True)
        height, width = overlay.shape[:2]
        overlay = np.pad(overlay, [[0, height % 2], [0, width % 2], [0, 0]])
        if writer is None:
          # The temporary name has no .mp4 extension: the format is given.
          writer = imageio_ffmpeg.write_frames(
              temporary, (overlay.shape[1], overlay.shape[0]), fps=fps,
              codec='libx264', macro_block_size=1, quality=8,
              output_params=['-f', 'mp4'])
          writer.send(None)
        writer.send(np.ascontiguousarray(overlay))
    finally:
      if writer is not None:
        writer.close()
    if writer is None:
      raise image_io.UnreadableImageError(f'{path}: the video has no frames.')
