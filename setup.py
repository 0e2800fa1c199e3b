"""Installs the deeplab2 package and compiles proto/ into deeplab2/protos/."""

import os
import sys

import setuptools
from setuptools.command.build_py import build_py

_ROOT = os.path.dirname(os.path.abspath(__file__))
_TF_VERSION = '2.21.0'


class BuildPyWithProtos(build_py):
  """Generates deeplab2/protos/*_pb2.py before the usual build_py."""

  def run(self):
    sys.path.insert(0, os.path.join(_ROOT, 'proto'))
    import compile as proto_compile  # pylint: disable=g-import-not-at-top
    proto_compile.compile_protos(os.path.join(_ROOT, 'deeplab2', 'protos'))
    super().run()


setuptools.setup(
    name='deeplab2-tf2',
    version='0.1.0',
    description='Panoptic-DeepLab for TensorFlow 2 / Keras 3.',
    python_requires='>=3.10',
    packages=setuptools.find_packages(include=['deeplab2', 'deeplab2.*']),
    package_data={'deeplab2.data': ['*.json']},
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
        'video': ['imageio', 'imageio-ffmpeg'],
        'test': ['pytest', 'grpcio-tools==1.85.1', 'cityscapesscripts',
                 'ai-edge-litert', 'imageio', 'imageio-ffmpeg'],
    },
    cmdclass={'build_py': BuildPyWithProtos},
)
