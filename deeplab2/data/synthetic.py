"""A deterministic procedural panoptic dataset, small enough for a CPU.

Each image has two textured stuff regions ("wall" with bricks, "floor" with
diagonal stripes) split by a wavy boundary, and 3 to 9 things of three
classes ("disc", "box", "triangle") with varied sizes and colours, some
touching, some overlapping, some small (a few dozen pixels). Some images
carry a crowd region (a clump of small discs labelled as one crowd segment)
and an unlabeled region (noise, labelled void).

Labels follow SPEC: `semantic * label_divisor + instance`, instance ids from
1 per class, crowd = thing class with instance 0, void = ignore_label.
"""

import colorsys

import numpy as np

from deeplab2.data import dataset_descriptor

DESCRIPTOR = dataset_descriptor.DATASETS.get('synthetic_panoptic')

WALL, FLOOR, DISC, BOX, TRIANGLE = range(5)
IGNORE_LABEL = DESCRIPTOR.ignore_label
LABEL_DIVISOR = DESCRIPTOR.label_divisor
DEFAULT_IMAGE_SIZE = 129
# The image sides the dataset is drawn at: below MIN_IMAGE_SIZE the shapes
# do not fit (NumPy warns of empty masks); drawing one image of
# MAX_IMAGE_SIZE takes about 3 GB of memory and 20 s.
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 4097

# Hue bands (0..1) of each thing class; colours vary inside a band.
_HUE_BANDS = {DISC: (0.95, 1.08), BOX: (0.55, 0.70), TRIANGLE: (0.13, 0.30)}
_MIN_VISIBLE_FRACTION = 0.4
_MIN_VISIBLE_PIXELS = 12


def _shape_mask(shape_class, cy, cx, radius, angle, yy, xx):
  """Boolean [H, W] mask of one thing shape."""
  dy, dx = yy - cy, xx - cx
  cos, sin = np.cos(angle), np.sin(angle)
  u, v = cos * dx + sin * dy, -sin * dx + cos * dy
  if shape_class == DISC:
    return (u / radius) ** 2 + (v / (0.75 * radius)) ** 2 <= 1.0
  if shape_class == BOX:
    return (np.abs(u) <= radius) & (np.abs(v) <= 0.7 * radius)
  # Triangle: intersection of three half-planes around the center.
  inside = np.ones_like(u, dtype=bool)
  for k in range(3):
    a = angle + k * 2 * np.pi / 3
    inside &= (np.cos(a) * dx + np.sin(a) * dy) <= 0.5 * radius
  return inside


def _thing_colour(rng, shape_class):
  low, high = _HUE_BANDS[shape_class]
  hue = rng.uniform(low, high) % 1.0
  rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
  return np.array(rgb) * 255.0


def _stuff_textures(rng, yy, xx):
  """Returns (wall, floor) float [H, W, 3] textures."""
  brick_h = rng.integers(5, 9)
  row = yy // brick_h
  shifted = xx + (row % 2) * brick_h
  mortar = (yy % brick_h == 0) | (shifted % (2 * brick_h) == 0)
  base = np.array([rng.uniform(140, 200), rng.uniform(60, 100),
                   rng.uniform(40, 80)])
  wall = np.where(mortar[..., None], base * 0.55, base)
  period = rng.integers(6, 11)
  stripes = ((xx + yy) % period) < period // 2
  fbase = np.array([rng.uniform(60, 110), rng.uniform(120, 170),
                    rng.uniform(60, 110)])
  floor = np.where(stripes[..., None], fbase, fbase * 0.7)
  return wall, floor


def generate_sample(rng, size=DEFAULT_IMAGE_SIZE):
  """Draws one image and its panoptic label.

  Args:
    rng: numpy Generator; the sample depends on it alone.
    size: side of the square image in pixels.

  Returns:
    image: uint8 [size, size, 3].
    panoptic: int32 [size, size], semantic * LABEL_DIVISOR + instance.
    segments: list of dicts (category_id, instance_id, iscrowd, area), one per
      labelled segment, stuff included.
  """
  scale = size / DEFAULT_IMAGE_SIZE
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  wall, floor = _stuff_textures(rng, yy, xx)
  phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.03, 0.1)
  boundary = size * rng.uniform(0.3, 0.7) + size * 0.08 * np.sin(
      freq * xx + phase)
  wall_on_top = rng.random() < 0.5
  is_wall = (yy < boundary) == wall_on_top
  image = np.where(is_wall[..., None], wall, floor)
  semantic = np.where(is_wall, WALL, FLOOR).astype(np.int32)
  instance = np.zeros((size, size), np.int32)
  # Owner of each pixel: -1 stuff, else index into `things`.
  owner = np.full((size, size), -1, np.int32)
  things = []

  def paint(mask, colour, shape_class, crowd=False):
    new_index = len(things)
    previous_owners = np.unique(owner[mask])
    for index in previous_owners[previous_owners >= 0]:
      remaining = np.count_nonzero((owner == index) & ~mask)
      if remaining < max(_MIN_VISIBLE_PIXELS,
                         _MIN_VISIBLE_FRACTION * things[index]['full_area']):
        return False  # Would hide an earlier thing too much; skip this one.
    shade = 0.85 + 0.15 * np.clip(
        1.0 - np.hypot(yy - yy[mask].mean(), xx - xx[mask].mean()) / 30.0,
        0, 1)
    image[mask] = colour * shade[mask][:, None]
    owner[mask] = new_index
    things.append({'class': shape_class, 'crowd': crowd,
                   'full_area': int(mask.sum())})
    return True

  num_things = rng.integers(3, 10)
  previous = None
  for _ in range(num_things):
    shape_class = int(rng.choice([DISC, BOX, TRIANGLE]))
    radius = float(rng.choice(
        [rng.uniform(3.5, 6), rng.uniform(6, max(7.0, 22 * scale))],
        p=[0.3, 0.7]))
    if previous is not None and rng.random() < 0.35:
      # Touch or overlap the previous thing.
      pcy, pcx, pradius = previous
      direction = rng.uniform(0, 2 * np.pi)
      distance = (pradius + radius) * rng.uniform(0.6, 1.0)
      cy, cx = pcy + distance * np.sin(direction), pcx + distance * np.cos(
          direction)
    else:
      cy, cx = rng.uniform(0, size), rng.uniform(0, size)
    mask = _shape_mask(shape_class, cy, cx, radius, rng.uniform(0, np.pi),
                       yy, xx)
    if mask.sum() < _MIN_VISIBLE_PIXELS:
      continue
    if paint(mask, _thing_colour(rng, shape_class), shape_class):
      previous = (cy, cx, radius)

  if rng.random() < 0.3:
    # A crowd: a clump of small discs labelled as one segment.
    margin = 15 * scale
    ccy, ccx = rng.uniform(margin, size - margin), rng.uniform(
        margin, size - margin)
    mask = np.zeros((size, size), bool)
    for _ in range(rng.integers(4, 8)):
      mask |= _shape_mask(DISC, ccy + rng.normal(0, 5), ccx + rng.normal(0, 5),
                          rng.uniform(2.5, 4), 0.0, yy, xx)
    paint(mask, _thing_colour(rng, DISC), DISC, crowd=True)

  void = np.zeros((size, size), bool)
  if rng.random() < 0.4:
    # An unlabeled region: noise with no label.
    h = rng.integers(max(2, round(6 * scale)), max(3, round(20 * scale)))
    w = rng.integers(max(3, round(10 * scale)), max(4, round(40 * scale)))
    top, left = rng.integers(0, size - h), rng.integers(0, size - w)
    void[top:top + h, left:left + w] = True
    image[void] = rng.uniform(0, 255, size=(int(void.sum()), 3))

  segments = []
  next_id = {DISC: 1, BOX: 1, TRIANGLE: 1}
  for index, thing in enumerate(things):
    mask = (owner == index) & ~void
    area = int(mask.sum())
    if area == 0:
      continue
    semantic[mask] = thing['class']
    instance_id = 0
    if not thing['crowd']:
      instance_id = next_id[thing['class']]
      next_id[thing['class']] += 1
    instance[mask] = instance_id
    segments.append({'category_id': thing['class'], 'instance_id': instance_id,
                     'iscrowd': int(thing['crowd']), 'area': area})
  for stuff_class in (WALL, FLOOR):
    area = int(np.count_nonzero((semantic == stuff_class) & (owner < 0)
                                & ~void))
    if area:
      segments.append({'category_id': stuff_class, 'instance_id': 0,
                       'iscrowd': 0, 'area': area})
  semantic[void] = IGNORE_LABEL
  instance[void] = 0
  noise = rng.normal(0, 6, size=image.shape)
  image = np.clip(image + noise, 0, 255).astype(np.uint8)
  panoptic = DESCRIPTOR.encode(semantic, instance)
  return image, panoptic.astype(np.int32), segments


def sample_seed(seed, split, index):
  """The seed of one sample: independent of how many samples are drawn."""
  split_key = sum(ord(c) * 31 ** i for i, c in enumerate(split)) % (2 ** 31)
  return [seed, split_key, index]


def generate_split(seed, split, count, size=DEFAULT_IMAGE_SIZE):
  """Yields (filename, image, panoptic, segments) for one split."""
  for index in range(count):
    rng = np.random.default_rng(sample_seed(seed, split, index))
    image, panoptic, segments = generate_sample(rng, size)
    yield f'synthetic_{split}_{index:06d}', image, panoptic, segments
