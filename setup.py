"""Installs the deeplab2 package and compiles proto/ into deeplab2/protos/."""

import importlib.util
import os

import setuptools
from setuptools.command.build_py import build_py

_ROOT = os.path.dirname(os.path.abspath(__file__))
_TF_VERSION = '2.21.0'
# Installed commands: name -> module of deeplab2.cli (its main()).
_COMMANDS = {
    'deeplab2-train': 'train',
    'deeplab2-build-cityscapes-data': 'build_cityscapes_data',
    'deeplab2-build-coco-data': 'build_coco_data',
    'deeplab2-build-mapillary-data': 'build_mapillary_data',
    'deeplab2-build-synthetic-data': 'build_synthetic_data',
    'deeplab2-visualize-targets': 'visualize_targets',
    'deeplab2-evaluate-panoptic': 'evaluate_panoptic',
    'deeplab2-convert-checkpoint': 'convert_deeplab2_checkpoint',
    'deeplab2-export': 'export_model',
    'deeplab2-infer': 'infer',
}


class BuildPyWithProtos(build_py):
  """Generates deeplab2/protos/*_pb2.py before the usual build_py."""

  def run(self):
    # proto/compile.py by its path: proto/ is no package.
    spec = importlib.util.spec_from_file_location(
        'proto_compile', os.path.join(_ROOT, 'proto', 'compile.py'))
    proto_compile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proto_compile)
    proto_compile.compile_protos(os.path.join(_ROOT, 'deeplab2', 'protos'))
    super().run()


setuptools.setup(
    name='deeplab2-tf2',
    version='0.1.0',
    description='Panoptic-DeepLab for TensorFlow 2 / Keras 3.',
    python_requires='>=3.10',
    packages=setuptools.find_packages(include=['deeplab2', 'deeplab2.*']),
    package_data={'deeplab2.data': ['*.json'], 'deeplab2.protos': ['*.pyi']},
    install_requires=[
        'numpy',
        'pillow',
        'protobuf>=7.35.1',  # the generated modules need at least the gencode version
        'pycocotools',
        'tensorboard',
    ],
    extras_require={
        'cpu': [f'tensorflow-cpu=={_TF_VERSION}'],
        'gpu': [f'tensorflow[and-cuda]=={_TF_VERSION}'],
        'tflite': ['ai-edge-litert'],
        'onnx': ['tf2onnx==1.17.0', 'onnx', 'onnxruntime'],
        # OpenVINO models are converted from the ONNX model.
        'openvino': ['openvino', 'tf2onnx==1.17.0', 'onnx'],
        'video': ['imageio', 'imageio-ffmpeg'],
        'test': ['pytest', 'pytest-xdist', 'mypy', 'grpcio-tools==1.85.1',
                 'cityscapesscripts', 'ai-edge-litert', 'imageio',
                 'imageio-ffmpeg', 'tf2onnx==1.17.0', 'onnx', 'onnxruntime',
                 'openvino'],
    },
    entry_points={'console_scripts': [
        f'{name} = deeplab2.cli.{module}:main'
        for name, module in _COMMANDS.items()]},
    cmdclass={'build_py': BuildPyWithProtos},
)
