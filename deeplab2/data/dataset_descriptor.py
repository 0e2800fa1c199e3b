"""Dataset descriptors: the facts of a dataset, read by everyone.

A descriptor is either built in (registered by name) or a JSON file written
by a converter next to its TFRecords; `DatasetOptions.dataset` may name
either.
"""

import dataclasses
import json
import os

from deeplab2 import label_spec as label_spec_lib
from deeplab2 import registry

DATASETS = registry.Registry('dataset')

DESCRIPTOR_FILENAME = 'dataset_descriptor.json'


@dataclasses.dataclass(frozen=True)
class DatasetDescriptor(label_spec_lib.LabelSpec):
  """A dataset's label facts (a LabelSpec), its name and its split sizes.

  A descriptor is a LabelSpec: `num_classes`, `ignore_label`,
  `label_divisor`, `thing_class_ids`, `class_names` and `colormap` and the
  label helpers (`split`, `is_thing`, `void_label`, ...) are its own; the
  consumers take `descriptor.label_spec`, the plain LabelSpec.

  Attributes:
    name: dataset name (keyword only).
    splits_to_sizes: number of images per split (keyword only).
  """
  name: str = dataclasses.field(kw_only=True)
  splits_to_sizes: dict = dataclasses.field(default_factory=dict,
                                            kw_only=True)

  def __post_init__(self):
    try:
      super().__post_init__()
    except ValueError as e:
      raise ValueError(f'Dataset "{self.name}": {e}') from None

  @property
  def label_spec(self) -> label_spec_lib.LabelSpec:
    """The plain LabelSpec of the descriptor's label facts."""
    return label_spec_lib.LabelSpec(**{
        f.name: getattr(self, f.name)
        for f in dataclasses.fields(label_spec_lib.LabelSpec)})

  def to_json_dict(self):
    return {
        'name': self.name,
        'num_classes': self.num_classes,
        'ignore_label': self.ignore_label,
        'label_divisor': self.label_divisor,
        'thing_class_ids': list(self.thing_class_ids),
        'class_names': list(self.class_names),
        'colormap': [list(c) for c in self.colormap],
        'splits_to_sizes': dict(self.splits_to_sizes),
    }

  def write_json(self, path):
    """Writes the descriptor to `path` (via a temporary name, then rename)."""
    tmp_path = path + '.tmp'
    with open(tmp_path, 'w') as f:
      json.dump(self.to_json_dict(), f, indent=2)
    os.replace(tmp_path, path)


def read_json(path):
  """Reads a descriptor JSON; errors name the file and the field."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'Cannot read dataset descriptor {path}: {e}') from e
  required = ('name', 'num_classes', 'ignore_label', 'label_divisor',
              'thing_class_ids', 'class_names', 'colormap')
  missing = [k for k in required if k not in data]
  if missing:
    raise ValueError(f'Dataset descriptor {path} lacks {", ".join(missing)}.')
  try:
    return DatasetDescriptor(
        name=data['name'],
        num_classes=int(data['num_classes']),
        ignore_label=int(data['ignore_label']),
        label_divisor=int(data['label_divisor']),
        thing_class_ids=tuple(int(c) for c in data['thing_class_ids']),
        class_names=tuple(data['class_names']),
        colormap=tuple(tuple(int(v) for v in c) for c in data['colormap']),
        splits_to_sizes=dict(data.get('splits_to_sizes', {})))
  except ValueError as e:
    raise ValueError(f'Dataset descriptor {path}: {e}') from e


def get_descriptor(dataset, base_dir=None):
  """Resolves `DatasetOptions.dataset`: a registered name or a JSON path.

  Args:
    dataset: a built-in name or the path of a descriptor JSON (relative paths
      are taken from `base_dir` when given, else the working directory).
    base_dir: directory for relative descriptor paths.

  Raises:
    KeyError: an unknown name (the message lists the valid ones).
    ValueError: an unreadable or inconsistent descriptor file.
  """
  if dataset.endswith('.json'):
    path = dataset
    if base_dir and not os.path.isabs(path) and not os.path.exists(path):
      path = os.path.join(base_dir, path)
    return read_json(path)
  return DATASETS.get(dataset)


DATASETS.register('cityscapes_panoptic', DatasetDescriptor(
    name='cityscapes_panoptic',
    num_classes=19,
    ignore_label=255,
    label_divisor=1000,
    thing_class_ids=tuple(range(11, 19)),
    class_names=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                 'traffic light', 'traffic sign', 'vegetation', 'terrain',
                 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
                 'motorcycle', 'bicycle'),
    colormap=((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
              (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
              (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
              (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
              (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    splits_to_sizes={'train': 2975, 'val': 500, 'test': 1525}))

# The built-in procedural dataset of deeplab2.data.synthetic.
DATASETS.register('synthetic_panoptic', DatasetDescriptor(
    name='synthetic_panoptic',
    num_classes=5,
    ignore_label=255,
    label_divisor=1000,
    thing_class_ids=(2, 3, 4),
    class_names=('wall', 'floor', 'disc', 'box', 'triangle'),
    colormap=((180, 90, 60), (90, 140, 90), (230, 50, 50), (50, 90, 230),
              (230, 200, 40))))


def _coco_panoptic():
  """COCO panoptic as deeplab2 numbers it: 0 is void, then the 133
  categories in id order (the 80 things first), label divisor 256.

  The categories file is the COCO panoptic API's
  panoptic_coco_categories.json (BSD licence, Alexander Kirillov).
  """
  path = os.path.join(os.path.dirname(__file__),
                      'coco_panoptic_categories.json')
  with open(path) as f:
    categories = sorted(json.load(f), key=lambda c: c['id'])
  return DatasetDescriptor(
      name='coco_panoptic',
      num_classes=len(categories) + 1,
      ignore_label=0,
      label_divisor=256,    # The COCO-format default of the converters.
      thing_class_ids=tuple(i + 1 for i, c in enumerate(categories)
                            if c['isthing']),
      class_names=('void',) + tuple(c['name'] for c in categories),
      colormap=((0, 0, 0),) + tuple(tuple(c['color']) for c in categories),
      splits_to_sizes={'train': 118287, 'val': 5000})


DATASETS.register('coco_panoptic', _coco_panoptic())
