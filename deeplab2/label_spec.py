"""The label facts of a dataset, stated once, and the helpers all share.

A panoptic id is `semantic * label_divisor + instance`; `ignore_label` is
the semantic id of void pixels, and a negative panoptic id (a record without
a label) is void too. Thing classes have instances: a thing pixel with
instance 0 is a crowd region.

The helpers take NumPy arrays and Python ints (computed with NumPy) or TF
tensors (computed with TF ops: safe in a tf.function, under XLA and in a
SavedModel). This module imports no TensorFlow: the converters' worker
processes use it with NumPy and PIL only.
"""

import dataclasses
import functools
import operator
import sys
import types
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:   # A type only: this module imports no TensorFlow.
  import tensorflow as tf

# What the helpers take: a Python int, anything np.asarray takes, a TF tensor.
IdsLike = Union[ArrayLike, 'tf.Tensor']
# What they give back: an int for an int, a NumPy array (or scalar), a tensor.
Ids = Union[int, np.integer, np.ndarray, 'tf.Tensor']
# A bool for an int, a bool NumPy array (or np.bool_), a tf.bool tensor.
Mask = Union[bool, np.bool_, np.ndarray, 'tf.Tensor']
Colour = tuple[int, int, int]

_INT32_MAX = 2**31 - 1


def _tf_or_none(value: Any) -> types.ModuleType | None:
  """The tensorflow module when `value` is a TF tensor, else None."""
  tf = sys.modules.get('tensorflow')   # Loaded by whoever made the tensor.
  if tf is not None and tf.is_tensor(value):
    return tf
  return None


def _ids(value: 'IdsLike') -> Any:
  """`value` to compute with: an int, a NumPy integer or a TF tensor as it
  is, anything else as a NumPy array. Typed Any: the helpers below dispatch
  on its kind at run time."""
  if isinstance(value, (int, np.integer)) or _tf_or_none(value) is not None:
    return value
  return np.asarray(value)


def _integer(field: str, value: Any) -> int:
  try:
    return operator.index(value)
  except TypeError:
    raise ValueError(f'{field} must be an integer, got {value!r}.') from None


def _default_colormap(num_classes: int) -> tuple[Colour, ...]:
  """Distinct colours from the bits of each class id (the PASCAL scheme)."""
  colours = []
  for class_id in range(num_classes):
    rgb = [0, 0, 0]
    bits = class_id
    for shift in range(7, -1, -1):
      for channel in range(3):
        rgb[channel] |= ((bits >> channel) & 1) << shift
      bits >>= 3
    colours.append((rgb[0], rgb[1], rgb[2]))
  return tuple(colours)


@dataclasses.dataclass(frozen=True)
class LabelSpec:
  """What every module needs to know to read a panoptic label.

  Attributes:
    num_classes: semantic ids are 0..num_classes-1 (an ignore id inside that
      range, as COCO's 0, is still counted).
    ignore_label: semantic id of void pixels, >= 0.
    label_divisor: panoptic id = semantic * label_divisor + instance.
    thing_class_ids: semantic ids of the classes that have instances.
    class_names: one name per semantic id (default: "class_<id>").
    colormap: one (r, g, b) per semantic id, 0..255, for pictures (default:
      a fixed palette).

  Lists are stored as tuples and integer types as Python ints, so a spec
  compares, hashes and pickles by value. The fields are typed as stored;
  the constructor also takes lists and NumPy integers, and None for
  class_names and colormap (the defaults).

  Raises:
    ValueError: a count, range or length that does not fit (the message
      names the field).
  """
  num_classes: int
  ignore_label: int
  label_divisor: int
  thing_class_ids: tuple[int, ...]
  # None in the constructor: the defaults; never None once built.
  class_names: tuple[str, ...] = None  # type: ignore[assignment]
  colormap: tuple[Colour, ...] = None  # type: ignore[assignment]

  def __post_init__(self) -> None:
    num_classes = _integer('num_classes', self.num_classes)
    ignore_label = _integer('ignore_label', self.ignore_label)
    label_divisor = _integer('label_divisor', self.label_divisor)
    thing_class_ids = tuple(_integer('thing_class_ids', c)
                            for c in self.thing_class_ids)
    if num_classes < 1:
      raise ValueError(f'num_classes must be positive, got {num_classes}.')
    if ignore_label < 0:
      raise ValueError(f'ignore_label must be >= 0 (negative panoptic ids '
                       f'mean "no label"), got {ignore_label}.')
    if label_divisor < 1:
      raise ValueError(f'label_divisor must be positive, got '
                       f'{label_divisor}.')
    largest = max(num_classes - 1, ignore_label) * label_divisor + (
        label_divisor - 1)
    if largest > _INT32_MAX:
      raise ValueError(f'label_divisor {label_divisor} with classes up to '
                       f'{max(num_classes - 1, ignore_label)} gives panoptic '
                       'ids beyond int32.')
    outside = [c for c in thing_class_ids if not 0 <= c < num_classes]
    if outside:
      raise ValueError(f'thing class ids {outside} are outside '
                       f'0..{num_classes - 1}.')
    twice = sorted({c for c in thing_class_ids
                    if thing_class_ids.count(c) > 1})
    if twice:
      raise ValueError(f'thing class ids {twice} are listed twice.')
    if ignore_label in thing_class_ids:
      raise ValueError(f'the ignore label {ignore_label} is listed as a '
                       'thing class.')
    class_names = (tuple(f'class_{c}' for c in range(num_classes))
                   if self.class_names is None
                   else tuple(str(n) for n in self.class_names))
    if len(class_names) != num_classes:
      raise ValueError(f'{len(class_names)} class names for '
                       f'num_classes={num_classes}.')
    colormap = (_default_colormap(num_classes) if self.colormap is None
                else tuple(tuple(_integer('colormap', v) for v in colour)
                           for colour in self.colormap))
    if len(colormap) != num_classes:
      raise ValueError(f'{len(colormap)} colours for '
                       f'num_classes={num_classes}.')
    for class_id, colour in enumerate(colormap):
      if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
        raise ValueError(f'colour {list(colour)} of class {class_id} is not '
                         '(r, g, b) in 0..255.')
    # The normalised values.
    for name, value in (
        ('num_classes', num_classes), ('ignore_label', ignore_label),
        ('label_divisor', label_divisor),
        ('thing_class_ids', thing_class_ids), ('class_names', class_names),
        ('colormap', colormap)):
      object.__setattr__(self, name, value)   # The dataclass is frozen.

  @functools.cached_property
  def _thing_table(self) -> tuple[bool, ...]:
    """The lookup of is_thing (not a field; built once, on first use): one
    bool per class, then False for every id outside the classes."""
    things = set(self.thing_class_ids)
    return tuple(c in things for c in range(self.num_classes)) + (False,)

  @property
  def void_label(self) -> int:
    """The panoptic id of void pixels: ignore_label * label_divisor."""
    return self.ignore_label * self.label_divisor

  @property
  def stuff_class_ids(self) -> tuple[int, ...]:
    """The semantic ids that are neither things nor the ignore label."""
    things = set(self.thing_class_ids)
    return tuple(c for c in range(self.num_classes)
                 if c not in things and c != self.ignore_label)

  def split(self, panoptic: IdsLike) -> tuple[Ids, Ids]:
    """(semantic, instance) of panoptic ids (floor division and modulo).

    Args:
      panoptic: int panoptic ids: a Python int, a NumPy array (or anything
        np.asarray takes) or a TF tensor, of any shape.

    Returns:
      semantic, instance: ints of the same kind, shape and dtype. A negative
      id (no label) gives semantic < 0: see semantic_label.
    """
    ids = _ids(panoptic)
    if isinstance(ids, int) or _tf_or_none(ids) is not None:
      return ids // self.label_divisor, ids % self.label_divisor
    return (np.floor_divide(ids, self.label_divisor),
            np.mod(ids, self.label_divisor))

  def encode(self, semantic: IdsLike, instance: IdsLike) -> Ids:
    """semantic * label_divisor + instance, for ints, arrays or tensors."""
    return _ids(semantic) * self.label_divisor + instance

  def semantic_label(self, panoptic: IdsLike) -> Ids:
    """The semantic id of each pixel, ignore_label where the id is negative.

    Args:
      panoptic: int panoptic ids (int, NumPy array or TF tensor).

    Returns:
      semantic ids of the same kind, shape and dtype.
    """
    ids = _ids(panoptic)
    semantic: Any = self.split(ids)[0]
    tf = _tf_or_none(ids)
    if tf is not None:
      return tf.where(ids < 0, tf.constant(self.ignore_label, semantic.dtype),
                      semantic)
    if isinstance(ids, int):
      return self.ignore_label if ids < 0 else semantic
    return np.where(ids < 0, self.ignore_label,
                    semantic).astype(semantic.dtype)

  def is_void(self, panoptic: IdsLike) -> Mask:
    """bool like `panoptic`: a negative id or the ignore class."""
    ids = _ids(panoptic)
    semantic, _ = self.split(ids)
    tf = _tf_or_none(ids)
    if tf is not None:
      return (ids < 0) | tf.equal(semantic, self.ignore_label)
    if isinstance(ids, int):
      return ids < 0 or semantic == self.ignore_label
    return (ids < 0) | (semantic == self.ignore_label)

  def is_thing(self, semantic: IdsLike) -> Mask:
    """bool like `semantic`: whether each id is a thing class.

    Ids outside 0..num_classes-1 (-1, the ignore label 255, ...) are not
    things.

    Args:
      semantic: int semantic ids: a Python int, a NumPy array or a TF
        tensor of an integer dtype, any shape.

    Returns:
      A Python bool for an int, a bool NumPy array for an array, a tf.bool
      tensor for a tensor (a lookup in a constant table, no loop over
      classes).
    """
    n = self.num_classes
    ids = _ids(semantic)
    tf = _tf_or_none(ids)
    if tf is not None:
      if not ids.dtype.is_integer:
        raise TypeError(f'is_thing takes integer ids, got {ids.dtype}.')
      if ids.dtype not in (tf.int32, tf.int64):
        ids = tf.cast(ids, tf.int32)
      # Slot n is False: every id outside the classes reads it.
      table = tf.constant(self._thing_table)
      inside = (ids >= 0) & (ids < n)
      return tf.gather(table, tf.where(inside, ids,
                                       tf.constant(n, ids.dtype)))
    if isinstance(ids, (int, np.integer)):
      return bool(0 <= ids < n and self._thing_table[ids])
    if ids.dtype.kind not in 'iu':
      raise TypeError(f'is_thing takes integer ids, got {ids.dtype}.')
    inside = (ids >= 0) & (ids < n)
    return np.asarray(self._thing_table)[np.where(inside, ids, n)]

  def is_crowd(self, panoptic: IdsLike) -> Mask:
    """bool like `panoptic`: a thing class with instance 0."""
    ids = _ids(panoptic)
    semantic, instance = self.split(ids)
    is_thing: Any = self.is_thing(semantic)
    if isinstance(ids, int):
      return is_thing and instance == 0
    return is_thing & (instance == 0)

  def label_differences(self, other: 'LabelSpec') -> list[str]:
    """What makes labels written with `other` read differently with self.

    Compares num_classes, ignore_label, label_divisor, thing_class_ids (as
    sets) and class_names; colours are pictures only and not compared.

    Returns:
      list of short strings, 'label_divisor 1000 vs 256', self's value
      first; empty when the labels mean the same.
    """
    differences = []
    for field in ('num_classes', 'ignore_label', 'label_divisor'):
      ours, theirs = getattr(self, field), getattr(other, field)
      if ours != theirs:
        differences.append(f'{field} {ours} vs {theirs}')
    ours, theirs = set(self.thing_class_ids), set(other.thing_class_ids)
    if ours != theirs:
      differences.append(
          f'thing_class_ids {sorted(ours - theirs)[:5]} only in one, '
          f'{sorted(theirs - ours)[:5]} only in the other')
    if self.num_classes == other.num_classes:
      renamed = [c for c in range(self.num_classes)
                 if self.class_names[c] != other.class_names[c]]
      if renamed:
        c = renamed[0]
        differences.append(
            f'{len(renamed)} class names, first class {c}: '
            f'"{self.class_names[c]}" vs "{other.class_names[c]}"')
    return differences
