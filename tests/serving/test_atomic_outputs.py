"""Serving's outputs appear whole or not at all: an export or a TFLite file
that fails half-way leaves the previous one as it was, and no temporary
file or folder beside it."""

import os

import pytest
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.serving import export
from deeplab2.serving import tflite
from deeplab2.utils import atomic
from conftest import tiny_config_text


def _listing(folder):
  return sorted(
      (os.path.relpath(os.path.join(parent, name), folder),
       os.path.getsize(os.path.join(parent, name)))
      for parent, _, names in os.walk(folder) for name in names)


def test_an_interrupted_export_leaves_the_old_saved_model(
    tiny_saved_model, tmp_path, monkeypatch):
  _, parts = tiny_saved_model
  output = tmp_path / 'export'
  export.export_saved_model(parts.build_model(), parts.build_post_processor(),
                            parts.inference_options(), str(output),
                            parts.descriptor('eval'))
  before = _listing(output)

  def save_then_interrupt(module, path, signatures, options):
    del module, signatures, options
    with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
      f.write(b'half')
    raise KeyboardInterrupt

  monkeypatch.setattr(tf.saved_model, 'save', save_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    export.export_saved_model(
        parts.build_model(), parts.build_post_processor(),
        parts.inference_options(), str(output), parts.descriptor('eval'),
        overwrite=True)
  assert _listing(output) == before
  assert sorted(os.listdir(tmp_path)) == ['export']


def test_a_failed_tflite_write_leaves_the_old_file(tmp_path, monkeypatch):
  config_path = tmp_path / 'tiny.textproto'
  config_path.write_text(tiny_config_text('/unused'))
  parts = config_lib.load_experiment(str(config_path))
  model = parts.build_model()
  prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / 'ckpt'))
  output = tmp_path / 'out' / 'model.tflite'
  output.parent.mkdir()
  output.write_bytes(b'old model')

  def convert_then_fail(module, quantization):
    del module, quantization
    raise RuntimeError('converter failed')

  monkeypatch.setattr(tflite, 'convert', convert_then_fail)
  with pytest.raises(RuntimeError, match='converter failed'):
    tflite.tflite_from_config(str(config_path), prefix, str(output),
                              overwrite=True)
  assert output.read_bytes() == b'old model'

  monkeypatch.setattr(tflite, 'convert', lambda module, quantization: b'new')
  real_write = atomic.write_file

  def write_then_fail(path, data, recover=True):
    with atomic.open_atomic(path, 'wb', recover=recover) as f:
      f.write(data[:1])
      raise OSError('disk full')

  monkeypatch.setattr(atomic, 'write_file', write_then_fail)
  with pytest.raises(OSError, match='disk full'):
    tflite.tflite_from_config(str(config_path), prefix, str(output),
                              overwrite=True)
  assert output.read_bytes() == b'old model'
  assert os.listdir(output.parent) == ['model.tflite']
  monkeypatch.setattr(atomic, 'write_file', real_write)
  assert tflite.tflite_from_config(str(config_path), prefix, str(output),
                                   overwrite=True) == str(output)
  assert output.read_bytes() == b'new'
