"""Compiles proto/*.proto into deeplab2/protos/*_pb2.py (and .pyi stubs).

Used by setup.py at install time and by the staleness test. It runs the
`protoc` bundled with grpcio-tools, so no system protoc is needed, and turns
the generated top-level imports (`import dataset_pb2`, and
`from dataset_pb2 import *` for public imports) into package-relative
ones so the modules work inside `deeplab2.protos`.
"""

import glob
import os
import re
import subprocess
import sys

PROTO_DIR = os.path.dirname(os.path.abspath(__file__))
_TOP_LEVEL_IMPORT = re.compile(r'^import (\w+_pb2) as (\w+)$', re.MULTILINE)
_TOP_LEVEL_STAR_IMPORT = re.compile(r'^from (\w+_pb2) import \*$', re.MULTILINE)
_TOP_LEVEL_FROM_IMPORT = re.compile(r'^from (\w+_pb2) import ', re.MULTILINE)


def proto_files(proto_dir=PROTO_DIR):
  """Returns the sorted paths of the .proto files in `proto_dir`."""
  return sorted(glob.glob(os.path.join(proto_dir, '*.proto')))


def _protoc(args):
  # A separate process: grpc_tools' protoc crashes when it shares a process
  # with TensorFlow's own protobuf libraries (seen under pytest).
  import grpc_tools  # pylint: disable=g-import-not-at-top
  include = os.path.join(os.path.dirname(grpc_tools.__file__), '_proto')
  command = [sys.executable, '-m', 'grpc_tools.protoc', f'-I{include}'] + args
  result = subprocess.run(command, capture_output=True, text=True)
  if result.returncode != 0:
    raise RuntimeError(f'protoc failed ({" ".join(command)}):\n'
                       f'{result.stderr}')


def descriptor_set_bytes(output_file, proto_dir=PROTO_DIR):
  """Writes the FileDescriptorSet of proto_dir's files; returns its bytes."""
  _protoc([f'-I{proto_dir}', f'--descriptor_set_out={output_file}'] +
          proto_files(proto_dir))
  with open(output_file, 'rb') as f:
    return f.read()


def compile_protos(output_dir, proto_dir=PROTO_DIR):
  """Writes `<name>_pb2.py` and its type stub `<name>_pb2.pyi` per proto file
  into `output_dir`.

  Raises:
    RuntimeError: if protoc reports an error.
  """
  os.makedirs(output_dir, exist_ok=True)
  files = proto_files(proto_dir)
  _protoc([f'-I{proto_dir}', f'--python_out={output_dir}',
           f'--pyi_out={output_dir}'] + files)
  for path in files:
    name = os.path.splitext(os.path.basename(path))[0]
    for suffix in ('.py', '.pyi'):
      generated = os.path.join(output_dir, f'{name}_pb2{suffix}')
      with open(generated) as f:
        text = f.read()
      text = _TOP_LEVEL_IMPORT.sub(r'from . import \1 as \2', text)
      text = _TOP_LEVEL_STAR_IMPORT.sub(r'from .\1 import *', text)
      text = _TOP_LEVEL_FROM_IMPORT.sub(r'from .\1 import ', text)
      with open(generated, 'w') as f:
        f.write(text)


if __name__ == '__main__':
  compile_protos(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
      os.path.dirname(PROTO_DIR), 'deeplab2', 'protos'))
