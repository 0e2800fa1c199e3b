"""The generated modules in deeplab2/protos must match proto/*.proto."""

import importlib
import os
import sys

import numpy as np
from google.protobuf import descriptor_pb2

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'proto'))
import compile as proto_compile  # pylint: disable=g-import-not-at-top,wrong-import-position


def _normalized(file_proto):
  """Drops what differs between protoc's descriptor sets and the Python
  gencode without meaning: json_name, and the spelling of float defaults
  ("0.1" against "0.100000001")."""
  file_proto = descriptor_pb2.FileDescriptorProto.FromString(
      file_proto.SerializeToString())
  messages = list(file_proto.message_type)
  while messages:
    message = messages.pop()
    for field in message.field:
      field.ClearField('json_name')
      if field.type == field.TYPE_FLOAT and field.HasField('default_value'):
        field.default_value = repr(float(np.float32(field.default_value)))
    messages.extend(message.nested_type)
  return file_proto


def test_generated_modules_match_proto_sources(tmp_path):
  """Compiles proto/ afresh and compares every file descriptor."""
  fresh = descriptor_pb2.FileDescriptorSet.FromString(
      proto_compile.descriptor_set_bytes(str(tmp_path / 'set.pb')))
  names = sorted(f.name for f in fresh.file)
  assert names == ['config.proto', 'dataset.proto', 'evaluator.proto',
                   'model.proto', 'trainer.proto']
  for file_proto in fresh.file:
    module_name = file_proto.name.replace('.proto', '_pb2')
    generated = importlib.import_module(f'deeplab2.protos.{module_name}')
    installed = descriptor_pb2.FileDescriptorProto.FromString(
        generated.DESCRIPTOR.serialized_pb)
    assert _normalized(installed) == _normalized(file_proto), (
        f'deeplab2/protos/{module_name}.py is stale against '
        f'proto/{file_proto.name}; run `pip install -e .` to regenerate it.')


def test_a_changed_proto_is_detected(tmp_path):
  """The comparison above fails when a .proto gains a field."""
  proto_dir = tmp_path / 'proto'
  proto_dir.mkdir()
  for path in proto_compile.proto_files():
    text = open(path).read()
    if path.endswith('evaluator.proto'):
      text = text.replace('message EvaluatorOptions {',
                          'message EvaluatorOptions {\n  optional int32 x = 99;')
    (proto_dir / os.path.basename(path)).write_text(text)
  changed = descriptor_pb2.FileDescriptorSet.FromString(
      proto_compile.descriptor_set_bytes(str(tmp_path / 'set.pb'),
                                         str(proto_dir)))
  from deeplab2.protos import evaluator_pb2  # pylint: disable=g-import-not-at-top
  installed = descriptor_pb2.FileDescriptorProto.FromString(
      evaluator_pb2.DESCRIPTOR.serialized_pb)
  changed_evaluator = [f for f in changed.file
                       if f.name == 'evaluator.proto'][0]
  assert _normalized(installed) != _normalized(changed_evaluator)
