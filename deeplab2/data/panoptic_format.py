"""Reads one sample in COCO panoptic format into image bytes and a panoptic
label: the shared core of the COCO, Cityscapes and Mapillary converters.

This module imports no TensorFlow, so conversion workers (separate
processes) start fast. The format: a JSON with `annotations` (one per image:
`file_name` of a PNG, `segments_info` with `id`, `category_id`, `iscrowd`,
`area`) and `categories`; each PNG pixel's segment id is
R + 256 * G + 256 * 256 * B, 0 for unlabeled.
"""

import dataclasses
import io
import warnings

import numpy as np
from PIL import Image

from deeplab2 import label_spec as label_spec_lib
from deeplab2.utils import segment_ids


class SampleError(ValueError):
  """A sample that cannot be converted; the message names file and segment."""


@dataclasses.dataclass(frozen=True)
class Sample:
  """One image and its annotation.

  Attributes:
    image_path: the RGB image file.
    label_path: the panoptic PNG, or None for an unlabeled split.
    segments: the annotation's `segments_info` list (dicts).
    name: the image's file name for the record (no directories).
  """
  image_path: str
  label_path: object
  segments: tuple
  name: str


@dataclasses.dataclass(frozen=True)
class CategoryMap:
  """How JSON categories become panoptic ids.

  Attributes:
    category_to_class: JSON category id -> semantic class id.
    label_spec: label_spec.LabelSpec of the classes (thing ids, ignore
      label, label divisor).
  """
  category_to_class: dict
  label_spec: label_spec_lib.LabelSpec


@dataclasses.dataclass(frozen=True)
class ConvertedSample:
  """What a worker hands back: all plain values, cheap to pickle."""
  name: str
  image_bytes: bytes
  image_format: str
  height: int
  width: int
  label_bytes: object   # little-endian int32 [height, width], or None.


def _decoded(source, path, what):
  """The PIL image of `source` (a path or a file object), decoded.

  PIL's DecompressionBombWarning is an error here, as its
  DecompressionBombError is: a header of a few bytes can claim billions of
  pixels, which decoding would allocate.

  Raises:
    SampleError: naming `path` and `what` it is ('image', 'panoptic PNG').
  """
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      image = Image.open(source)
      image.load()
  except FileNotFoundError:
    raise SampleError(f'{path}: {what} is missing.') from None
  except (Image.DecompressionBombError, Image.DecompressionBombWarning):
    raise SampleError(
        f'{path}: the {what} claims more than {Image.MAX_IMAGE_PIXELS} pixels '
        '(PIL\'s limit against decompression bombs); not decoded.') from None
  except OSError as e:
    raise SampleError(f'{path}: cannot read the {what} ({e}).') from None
  return image


def _read_image(path):
  """(encoded bytes, format, uint8 RGB array) of any PIL-readable image.

  RGB JPEG and PNG files are kept byte for byte; grey, palette, RGBA, CMYK
  and 16-bit images are converted to 8-bit RGB and stored as PNG.
  """
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except FileNotFoundError:
    raise SampleError(f'{path}: image file is missing.') from None
  except OSError as e:
    raise SampleError(f'{path}: cannot read the image ({e}).') from None
  image = _decoded(io.BytesIO(raw), path, 'image')
  if image.mode == 'RGB' and image.format in ('JPEG', 'PNG'):
    return raw, image.format.lower(), np.asarray(image)
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    # 16-bit grey: keep the top 8 bits of the 16-bit range.
    array = np.asarray(image, np.uint32) >> 8
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), 'L')
  rgb = image.convert('RGB')
  buffer = io.BytesIO()
  rgb.save(buffer, format='PNG')
  return buffer.getvalue(), 'png', np.asarray(rgb)


def _read_segment_ids(path):
  png = _decoded(path, path, 'panoptic PNG')
  return segment_ids.rgb_to_ids(png.convert('RGB'))


def panoptic_label(label_path, segments, category_map):
  """int32 [H, W] panoptic label of one annotation, checked segment by segment.

  Raises:
    SampleError: a PNG id without a JSON segment, a JSON segment without
      pixels, an area that disagrees with the pixels, an unknown category, a
      class with label_divisor or more instances, or an unreadable PNG.
  """
  ids = _read_segment_ids(label_path)
  unique_ids, inverse = np.unique(ids, return_inverse=True)
  counts = np.bincount(inverse.ravel(), minlength=len(unique_ids))
  area_of = dict(zip(unique_ids.tolist(), counts.tolist()))
  known = {int(s['id']) for s in segments}
  stray = sorted(set(area_of) - known - {0})
  if stray:
    raise SampleError(f'{label_path}: PNG segment ids {stray[:5]} have no '
                      'entry in segments_info.')
  spec = category_map.label_spec
  void = spec.void_label
  value_of = {0: void}
  next_instance = {}
  for segment in segments:
    segment_id = int(segment['id'])
    where = f'{label_path}: segment {segment_id}'
    category = segment.get('category_id')
    if category not in category_map.category_to_class:
      raise SampleError(f'{where}: category_id {category} is not in the '
                        'categories.')
    area = area_of.get(segment_id, 0)
    if area == 0:
      raise SampleError(f'{where}: has no pixels in the PNG.')
    if 'area' in segment and int(segment['area']) != area:
      raise SampleError(f'{where}: area {segment["area"]} in the JSON, '
                        f'{area} pixels in the PNG.')
    if segment_id in value_of:
      raise SampleError(f'{where}: listed twice.')
    cls = category_map.category_to_class[category]
    instance = 0
    if spec.is_thing(cls) and not segment.get('iscrowd', 0):
      instance = next_instance.get(cls, 0) + 1
      if instance >= spec.label_divisor:
        raise SampleError(f'{where}: class {cls} has {instance} instances, '
                          f'reaching label_divisor {spec.label_divisor}.')
      next_instance[cls] = instance
    value_of[segment_id] = spec.encode(cls, instance)
  values = np.array([value_of.get(i, void) for i in unique_ids.tolist()],
                    np.int64)
  label = values[inverse].reshape(ids.shape)
  if label.max() > np.iinfo(np.int32).max:
    raise SampleError(f'{label_path}: panoptic ids exceed int32.')
  return label.astype(np.int32)


def convert_sample(sample, category_map):
  """Reads and checks one sample.

  Returns:
    ConvertedSample.

  Raises:
    SampleError: naming the file (and segment) at fault.
  """
  image_bytes, image_format, image = _read_image(sample.image_path)
  height, width = image.shape[:2]
  label_bytes = None
  if sample.label_path is not None:
    label = panoptic_label(sample.label_path, sample.segments, category_map)
    if label.shape != (height, width):
      raise SampleError(f'{sample.label_path}: label is {label.shape[1]} x '
                        f'{label.shape[0]} but the image {sample.image_path} '
                        f'is {width} x {height}.')
    label_bytes = label.astype('<i4').tobytes()
  return ConvertedSample(sample.name, image_bytes, image_format, height,
                         width, label_bytes)


def convert_sample_or_error(args):
  """Pool-friendly: (sample, category_map) -> (ConvertedSample or None,
  error)."""
  sample, category_map = args
  try:
    return convert_sample(sample, category_map), None
  except SampleError as e:
    return None, str(e)
