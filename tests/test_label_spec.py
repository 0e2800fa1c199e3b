"""LabelSpec: validation, and the shared helpers on NumPy, ints and TF."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab2 import label_spec
from conftest import REPO_ROOT

# Classes 0..4; 2, 3, 4 are things; void is 255 (outside the classes).
SPEC = label_spec.LabelSpec(num_classes=5, ignore_label=255,
                            label_divisor=1000, thing_class_ids=(2, 3, 4))
# COCO-like: void is class 0, inside the classes.
COCO_LIKE = label_spec.LabelSpec(num_classes=4, ignore_label=0,
                                 label_divisor=256, thing_class_ids=(1, 2))

SEMANTIC = [-1, 0, 1, 2, 3, 4, 5, 255, 1000]
EXPECTED_THING = [False, False, False, True, True, True, False, False, False]


def test_the_module_imports_no_tensorflow():
  code = ('import sys; from deeplab2 import label_spec; '
          'from deeplab2.data import panoptic_format; '
          'assert "tensorflow" not in sys.modules, "tensorflow imported"')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]


def test_values_are_normalised_and_defaults_filled():
  spec = label_spec.LabelSpec(np.int64(3), 255, 1000, [np.int32(1), 2])
  assert spec.num_classes == 3 and type(spec.num_classes) is int
  assert spec.thing_class_ids == (1, 2)
  assert all(type(c) is int for c in spec.thing_class_ids)
  assert spec.class_names == ('class_0', 'class_1', 'class_2')
  assert len(set(spec.colormap)) == 3
  assert spec == label_spec.LabelSpec(3, 255, 1000, (1, 2))
  assert hash(spec) == hash(label_spec.LabelSpec(3, 255, 1000, (1, 2)))
  assert spec.void_label == 255000
  assert SPEC.stuff_class_ids == (0, 1)
  assert COCO_LIKE.stuff_class_ids == (3,)       # 0 is void, not stuff


@pytest.mark.parametrize('changes,message', [
    (dict(num_classes=0), r'num_classes must be positive, got 0'),
    (dict(ignore_label=-1), r'ignore_label must be >= 0 .* got -1'),
    (dict(label_divisor=0), r'label_divisor must be positive, got 0'),
    (dict(label_divisor=2.5), r'label_divisor must be an integer, got 2.5'),
    (dict(label_divisor=10**7), r'label_divisor 10000000 with classes up to '
     r'255 gives panoptic ids beyond int32'),
    (dict(thing_class_ids=(2, 5)), r'thing class ids \[5\] are outside 0..4'),
    (dict(thing_class_ids=(2, 2)), r'thing class ids \[2\] are listed twice'),
    (dict(ignore_label=1, thing_class_ids=(1,)),
     r'the ignore label 1 is listed as a thing class'),
    (dict(class_names=('a', 'b')), r'2 class names for num_classes=5'),
    (dict(colormap=((0, 0, 0),)), r'1 colours for num_classes=5'),
    (dict(colormap=((0, 0, 0),) * 4 + ((0, 0, 256),)),
     r'colour \[0, 0, 256\] of class 4 is not \(r, g, b\) in 0..255'),
])
def test_invalid_specs_are_refused(changes, message):
  values = dict(num_classes=5, ignore_label=255, label_divisor=1000,
                thing_class_ids=(2, 3, 4))
  values.update(changes)
  with pytest.raises(ValueError, match=message):
    label_spec.LabelSpec(**values)


def test_is_thing_on_ints_and_numpy():
  assert [SPEC.is_thing(c) for c in SEMANTIC] == EXPECTED_THING
  assert SPEC.is_thing(np.int64(3)) is True
  for dtype in (np.int32, np.int64):
    ids = np.array(SEMANTIC, dtype).reshape(3, 3)
    got = SPEC.is_thing(ids)
    assert got.dtype == bool and got.shape == (3, 3)
    np.testing.assert_array_equal(got.ravel(), EXPECTED_THING)
  np.testing.assert_array_equal(SPEC.is_thing(np.array([2, 5], np.uint8)),
                                [True, False])
  # The ignore label inside the classes (COCO's 0) is no thing either.
  np.testing.assert_array_equal(COCO_LIKE.is_thing(np.arange(-1, 5)),
                                [False, False, True, True, False, False])
  with pytest.raises(TypeError, match='integer ids'):
    SPEC.is_thing(np.array([1.0]))


def test_is_thing_on_tensors_eager_graph_and_xla():
  for dtype in (tf.int32, tf.int64):
    ids = tf.constant(SEMANTIC, dtype)
    got = SPEC.is_thing(ids)
    assert got.dtype == tf.bool
    np.testing.assert_array_equal(got.numpy(), EXPECTED_THING)
  graph = tf.function(SPEC.is_thing, input_signature=[
      tf.TensorSpec([None, None], tf.int32)])
  np.testing.assert_array_equal(
      graph(tf.constant(SEMANTIC, shape=[3, 3])).numpy().ravel(),
      EXPECTED_THING)
  xla = tf.function(SPEC.is_thing, jit_compile=True)
  np.testing.assert_array_equal(xla(tf.constant(SEMANTIC)).numpy(),
                                EXPECTED_THING)
  np.testing.assert_array_equal(
      SPEC.is_thing(tf.constant([2, 255], tf.uint8)).numpy(), [True, False])
  with pytest.raises(TypeError, match='integer ids'):
    SPEC.is_thing(tf.constant([1.0]))


def test_is_thing_survives_a_saved_model(tmp_path):
  module = tf.Module()
  module.is_thing = tf.function(SPEC.is_thing, input_signature=[
      tf.TensorSpec([None], tf.int32)])
  tf.saved_model.save(module, str(tmp_path / 'model'))
  loaded = tf.saved_model.load(str(tmp_path / 'model'))
  np.testing.assert_array_equal(
      loaded.is_thing(tf.constant(SEMANTIC)).numpy(), EXPECTED_THING)


def test_split_encode_and_void_agree_on_numpy_ints_and_tensors():
  panoptic = np.array([[2001, 3000, 255000], [-1, 17, 4999]], np.int32)
  semantic, instance = SPEC.split(panoptic)
  np.testing.assert_array_equal(semantic, [[2, 3, 255], [-1, 0, 4]])
  np.testing.assert_array_equal(instance, [[1, 0, 0], [999, 17, 999]])
  assert semantic.dtype == np.int32
  np.testing.assert_array_equal(SPEC.encode(semantic, instance), panoptic)
  assert SPEC.split(2001) == (2, 1) and SPEC.encode(2, 1) == 2001
  expected = {
      'semantic_label': [[2, 3, 255], [255, 0, 4]],
      'is_void': [[False, False, True], [True, False, False]],
      'is_crowd': [[False, True, False], [False, False, False]],
  }
  tensor = tf.constant(panoptic)
  for name, values in expected.items():
    helper = getattr(SPEC, name)
    np.testing.assert_array_equal(helper(panoptic), values, err_msg=name)
    np.testing.assert_array_equal(helper(tensor).numpy(), values,
                                  err_msg=name)
    for row, row_values in zip(panoptic.tolist(), values):
      assert [helper(v) for v in row] == row_values, name
  tf_semantic, tf_instance = SPEC.split(tensor)
  np.testing.assert_array_equal(tf_semantic.numpy(), semantic)
  np.testing.assert_array_equal(tf_instance.numpy(), instance)
  assert SPEC.semantic_label(tensor).dtype == tf.int32
  assert SPEC.semantic_label(panoptic).dtype == np.int32


def test_label_differences_name_the_facts_not_the_colours():
  assert SPEC.label_differences(SPEC) == []
  recoloured = label_spec.LabelSpec(5, 255, 1000, (4, 3, 2),
                                    colormap=((1, 2, 3),) * 5)
  assert SPEC.label_differences(recoloured) == []
  other = label_spec.LabelSpec(5, 255, 256, (2, 3),
                               class_names=('a', 'b', 'x', 'y', 'z'))
  assert SPEC.label_differences(other) == [
      'label_divisor 1000 vs 256',
      'thing_class_ids [4] only in one, [] only in the other',
      '5 class names, first class 0: "class_0" vs "a"']
  assert SPEC.label_differences(label_spec.LabelSpec(6, 255, 1000, ())) == [
      'num_classes 5 vs 6',
      'thing_class_ids [2, 3, 4] only in one, [] only in the other']

