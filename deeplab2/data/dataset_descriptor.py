"""Dataset descriptors: the facts of a dataset, read by everyone.

A descriptor is either built in (registered by name) or a JSON file written
by a converter next to its TFRecords; `DatasetOptions.dataset` may name
either.
"""

import dataclasses
import json
import operator
import os

from deeplab2 import label_spec as label_spec_lib
from deeplab2 import registry
from deeplab2.utils import atomic

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
    original_category_ids: the dataset's own category id of each class, as
      its official files and evaluation tools use it (keyword only): one int
      >= 0 or None (a class without one, as COCO's void class 0) per class
      index; () (the default) means each class index is its own id. For
      Cityscapes the label ids (car: train id 13, label id 26), for COCO the
      category ids (class 1: person, id 1; class 133: id 200).

  Raises:
    ValueError: a LabelSpec error, or original_category_ids of the wrong
      length, not ints, or listing an id twice (the message names the
      dataset).
  """
  name: str = dataclasses.field(kw_only=True)
  splits_to_sizes: dict = dataclasses.field(default_factory=dict,
                                            kw_only=True)
  original_category_ids: tuple = dataclasses.field(default=(), kw_only=True)

  def __post_init__(self):
    try:
      super().__post_init__()
      ids = _original_ids(self.original_category_ids, self.num_classes)
    except ValueError as e:
      raise ValueError(f'Dataset "{self.name}": {e}') from None
    object.__setattr__(self, 'original_category_ids', ids)

  def original_category_id(self, class_id: int) -> int | None:
    """The dataset's own id of class `class_id` (None: the class has none).

    Raises:
      ValueError: class_id outside 0..num_classes-1.
    """
    if not 0 <= class_id < self.num_classes:
      raise ValueError(f'class {class_id} is outside '
                       f'0..{self.num_classes - 1}.')
    if not self.original_category_ids:
      return class_id
    return self.original_category_ids[class_id]

  @property
  def label_spec(self) -> label_spec_lib.LabelSpec:
    """The plain LabelSpec of the descriptor's label facts."""
    return label_spec_lib.LabelSpec(**{
        f.name: getattr(self, f.name)
        for f in dataclasses.fields(label_spec_lib.LabelSpec)})

  def to_json_dict(self) -> dict:
    """The JSON object of the descriptor (as write_json writes it)."""
    data = {
        'name': self.name,
        'num_classes': self.num_classes,
        'ignore_label': self.ignore_label,
        'label_divisor': self.label_divisor,
        'thing_class_ids': list(self.thing_class_ids),
        'class_names': list(self.class_names),
        'colormap': [list(c) for c in self.colormap],
        'splits_to_sizes': dict(self.splits_to_sizes),
    }
    # Left out when read_json gets it back anyway (_implied_original_ids):
    # the JSON of the built-ins and of their conversions keeps its bytes,
    # and files written before the field existed read the same.
    if self.original_category_ids != _implied_original_ids(self):
      data['original_category_ids'] = list(self.original_category_ids)
    return data

  def write_json(self, path: str) -> None:
    """Writes the descriptor to `path` atomically (atomic.write_file).

    Raises:
      OSError: the file cannot be written; `path` is left as it was.
    """
    atomic.write_file(path, json.dumps(self.to_json_dict(), indent=2))


def _original_ids(ids, num_classes):
  """`ids` as a tuple of ints and Nones, checked against num_classes."""
  checked = []
  for value in ids:
    i = value
    if value is not None:
      try:
        i = operator.index(value)
      except TypeError:
        i = -1
      if i < 0:
        raise ValueError('original category ids must be integers >= 0 or '
                         f'None, got {value!r}.')
    checked.append(i)
  ids = tuple(checked)
  if ids and len(ids) != num_classes:
    raise ValueError(f'{len(ids)} original category ids for '
                     f'num_classes={num_classes}.')
  given = [i for i in ids if i is not None]
  twice = sorted({i for i in given if given.count(i) > 1})
  if twice:
    raise ValueError(f'original category ids {twice} are listed twice.')
  return ids


def _implied_original_ids(descriptor):
  """The original ids a descriptor JSON without them stands for.

  A file without the field that is named like a built-in dataset and has its
  labels (the descriptors converters wrote before the field existed, and the
  built-ins' own JSON) takes the built-in's ids; any other file has none.
  """
  if descriptor.name not in DATASETS:
    return ()
  builtin = DATASETS.get(descriptor.name)
  if (descriptor.num_classes != builtin.num_classes or
      descriptor.label_differences(builtin)):
    return ()
  return builtin.original_category_ids


_REQUIRED_KEYS = ('name', 'num_classes', 'ignore_label', 'label_divisor',
                  'thing_class_ids', 'class_names', 'colormap')

_JSON_KINDS = ((bool, 'boolean'), (int, 'integer'), (float, 'float'),
               (str, 'string'), (list, 'list'), (dict, 'object'))


def describe_json_value(value: object) -> str:
  """`value` as JSON (shortened) with its JSON kind: '5.7 (float)', 'null'."""
  if value is None:
    return 'null'
  text = json.dumps(value)
  if len(text) > 40:
    text = text[:36] + ' ...'
  kind = next((k for t, k in _JSON_KINDS if isinstance(value, t)),
              type(value).__name__)
  return f'{text} ({kind})'


def _is_int(value):
  # bool is an int in Python; `true` in the JSON is not a count.
  return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value):
  return isinstance(value, str)


def _require(ok, value, what, where):
  if not ok:
    raise ValueError(f'{where} must be {what}, got '
                     f'{describe_json_value(value)}.')


def _check_list(value, is_item, item_what, list_what, where):
  _require(isinstance(value, list), value, list_what, where)
  for i, item in enumerate(value):
    _require(is_item(item), item, item_what, f'{where}[{i}]')


def _check_json_types(data):
  """Refuses a descriptor JSON object whose values have the wrong types.

  Raises:
    ValueError: naming the key (and the index), what it must be and what
      it is; nothing is coerced ("5" is no integer, nor is true).
  """
  missing = [f'"{k}"' for k in _REQUIRED_KEYS if k not in data]
  if len(missing) == 1:
    raise ValueError(f'the required key {missing[0]} is missing.')
  if missing:
    raise ValueError(f'the required keys {", ".join(missing)} are missing.')
  _require(_is_str(data['name']), data['name'], 'a string', '"name"')
  for key in ('num_classes', 'ignore_label', 'label_divisor'):
    _require(_is_int(data[key]), data[key], 'an integer', f'"{key}"')
  _check_list(data['thing_class_ids'], _is_int, 'an integer',
              'a list of integers', '"thing_class_ids"')
  _check_list(data['class_names'], _is_str, 'a string', 'a list of strings',
              '"class_names"')
  _require(isinstance(data['colormap'], list), data['colormap'],
           'a list of [r, g, b] lists', '"colormap"')
  for i, colour in enumerate(data['colormap']):
    _check_list(colour, _is_int, 'an integer', 'an [r, g, b] list of '
                'integers', f'"colormap"[{i}]')
  sizes = data.get('splits_to_sizes', {})
  _require(isinstance(sizes, dict), sizes, 'an object of split sizes',
           '"splits_to_sizes"')
  for split, size in sizes.items():
    _require(_is_int(size), size, 'an integer',
             f'"splits_to_sizes"["{split}"]')
  _check_list(data.get('original_category_ids', []),
              lambda i: i is None or _is_int(i), 'an integer or null',
              'a list of integers and nulls', '"original_category_ids"')


def read_json(path: str) -> DatasetDescriptor:
  """Reads a descriptor JSON; errors name the file and the key.

  Values are checked by JSON type, never coerced (_check_json_types), then
  as a DatasetDescriptor. A file without `original_category_ids` (older
  files too) gets the built-in dataset's when it is named like one and has
  its labels, else () (see _implied_original_ids).

  Raises:
    ValueError: the file cannot be read, is not a JSON object, lacks a key,
      holds a value of the wrong type, or values that do not fit together.
  """
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (OSError, ValueError) as e:   # JSONDecodeError, UnicodeDecodeError
    raise ValueError(f'Cannot read dataset descriptor {path}: {e}') from e
  return from_json_dict(data, path)


def from_json_dict(data: object, path: str) -> DatasetDescriptor:
  """The descriptor of a parsed descriptor JSON (see read_json); `path`
  names where it came from in errors."""
  if not isinstance(data, dict):
    raise ValueError(f'{path}: a dataset descriptor must be a JSON object, '
                     f'got {describe_json_value(data)}.')
  try:
    _check_json_types(data)
    descriptor = DatasetDescriptor(
        name=data['name'],
        num_classes=data['num_classes'],
        ignore_label=data['ignore_label'],
        label_divisor=data['label_divisor'],
        thing_class_ids=tuple(data['thing_class_ids']),
        class_names=tuple(data['class_names']),
        colormap=tuple(tuple(c) for c in data['colormap']),
        splits_to_sizes=dict(data.get('splits_to_sizes', {})),
        original_category_ids=tuple(data.get('original_category_ids', ())))
  except ValueError as e:
    raise ValueError(f'{path}: {e}') from None
  if 'original_category_ids' not in data:
    descriptor = dataclasses.replace(
        descriptor, original_category_ids=_implied_original_ids(descriptor))
  return descriptor


def get_descriptor(dataset: str,
                   base_dir: str | None = None) -> DatasetDescriptor:
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
      if not os.path.exists(path):
        raise ValueError(
            f'Cannot read dataset descriptor {dataset}: no such file in the '
            f'working directory ({os.path.abspath(dataset)}) or beside the '
            f'config ({path}).')
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
    splits_to_sizes={'train_fine': 2975, 'val_fine': 500,
                     'test_fine': 1525},
    # The label ids of cityscapesScripts' helpers/labels.py, by train id.
    original_category_ids=(7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25,
                           26, 27, 28, 31, 32, 33)))

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
      splits_to_sizes={'train': 118287, 'val': 5000},
      original_category_ids=(None,) + tuple(c['id'] for c in categories))


DATASETS.register('coco_panoptic', _coco_panoptic())
