"""The config enters through one door: deeplab2/config/ reads the experiment
message and builds every part; nothing else in the library reads it, and
imports point down."""

import ast
import glob
import json
import os
import re
import subprocess
import sys

import keras
import pytest

from deeplab2 import config as config_lib
from deeplab2.config import field_use
from deeplab2.protos import config_pb2
from conftest import REPO_ROOT
from conftest import TEST_DATA

_LIBRARY = os.path.join(REPO_ROOT, 'deeplab2')
_CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, 'configs', '**',
                                         '*.textproto'), recursive=True))


def _config_id(path):
  return os.path.relpath(path, os.path.join(REPO_ROOT, 'configs'))


def test_every_config_is_found():
  assert len(_CONFIGS) == 15


def _parity_networks():
  """[(name, model_options)] of the deeplab2 parity manifests."""
  networks = []
  for path in sorted(glob.glob(os.path.join(
      TEST_DATA, 'deeplab2_parity', 'manifest_*.json'))):
    with open(path) as f:
      manifest = json.load(f)
    networks.append((manifest['name'], config_lib.parse_experiment_text(
        manifest['config_text']).model_options))
  return networks


@pytest.mark.parametrize('path', _CONFIGS, ids=[_config_id(p) for p in _CONFIGS])
def test_every_config_builds_through_the_one_door(path, zero_initializers,
                                                  custom_data_descriptor):
  parts = config_lib.load_experiment(path)
  parity = [name for name, options in _parity_networks()
            if options == parts.config.model_options]
  if parity:
    # tests/modeling/test_deeplab2_parity.py builds this very network (the
    # same model options, through the builder parts.build_model calls) and
    # checks its parameter counts and outputs against deeplab2's: built
    # once per session (SWideRNet-4.5 alone takes 20 s).
    assert parts.config.model_options.panoptic_deeplab.instance.enable
  else:
    # Variables do not depend on the input size; 33 = 16 * 2 + 1 = 32 + 1.
    model = parts.build_model(input_size=(33, 33))
    assert model.built and model.count_params() > 0
    assert model.has_instance_branch
  optimizer = parts.build_optimizer()
  assert isinstance(optimizer, keras.optimizers.Optimizer)
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == (
      parts.uses_loss_scaling)
  loss = parts.build_loss()
  assert loss.loss_names
  processor = parts.build_post_processor()
  assert processor.options.label_spec == parts.label_spec
  for split in ('train', 'eval'):
    pipeline = parts.pipeline_options(split)
    assert pipeline.is_training == (split == 'train')
    assert pipeline.target_options.label_spec == parts.descriptor(
        split).label_spec
  assert parts.model_input_size == tuple(
      parts.config.train_dataset_options.crop_size)
  assert parts.inference_options().output_stride in (8, 16, 32)
  schedule = parts.train_schedule
  assert 0 < schedule.save_checkpoints_steps <= schedule.total_steps


def _library_modules():
  for path in sorted(glob.glob(os.path.join(_LIBRARY, '**', '*.py'),
                               recursive=True)):
    relative = os.path.relpath(path, REPO_ROOT)
    if relative.startswith(os.path.join('deeplab2', 'protos')):
      continue
    yield relative, path


def _imports(path):
  """Modules imported by the file at `path` (absolute names)."""
  with open(path) as f:
    tree = ast.parse(f.read())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return names


# Fields of ExperimentOptions that hold its parts: reading them is reading
# the experiment message.
_MESSAGE_FIELDS = re.compile(
    r'\.(model_options|trainer_options|evaluator_options|'
    r'train_dataset_options|eval_dataset_options|solver_options|'
    r'loss_options)\b')


def test_only_the_config_package_reads_the_experiment_message():
  readers = []
  for relative, path in _library_modules():
    if relative.startswith(os.path.join('deeplab2', 'config') + os.sep):
      continue
    with open(path) as f:
      source = f.read()
    if ('config_pb2' in source or 'ExperimentOptions' in source or
        _MESSAGE_FIELDS.search(source)):
      readers.append(relative)
  assert not readers


# Packages of the library and the library packages each may import (ARCHITECTURE.md:
# imports point down; serving and training are siblings).
_MAY_IMPORT = {
    'modeling': {'modeling', 'utils', 'registry', 'common'},
    'data': {'data', 'utils', 'registry', 'common', 'label_spec'},
    'losses': {'losses', 'registry', 'common'},
    'postprocessing': {'postprocessing', 'utils', 'common', 'label_spec'},
    'evaluation': {'evaluation', 'utils', 'common', 'label_spec'},
    'solver': {'solver', 'registry'},
    # The one inference path: the model's outputs, never the model code.
    'inference': {'inference', 'utils', 'common'},
    'training': {'training', 'config', 'modeling', 'data', 'losses',
                 'postprocessing', 'evaluation', 'solver', 'utils', 'common',
                 'label_spec', 'inference'},
    # The inference path shared with evaluation, the dataset descriptor and
    # the COCO panoptic writer of infer.py; never training.
    'serving': {'serving', 'config', 'modeling', 'utils', 'common',
                'inference', 'data', 'evaluation'},
}


def test_imports_point_down():
  wrong = []
  for relative, path in _library_modules():
    parts = relative.split(os.sep)
    package = parts[1] if len(parts) > 2 else None
    if package not in _MAY_IMPORT:
      continue
    for name in _imports(path):
      if not name.startswith('deeplab2.'):
        continue
      target = name.split('.')[1]
      if target not in _MAY_IMPORT[package]:
        wrong.append(f'{relative} imports {name}')
  assert not wrong


def test_serving_loads_nothing_of_training():
  code = ('import sys\n'
          'import deeplab2.serving.export, deeplab2.serving.tflite\n'
          'import deeplab2.serving.convert, deeplab2.serving.predictor\n'
          'print(sorted(m for m in sys.modules '
          'if m.startswith("deeplab2.training")))\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=REPO_ROOT, check=True, timeout=120)
  assert result.stdout.strip().splitlines()[-1] == '[]'


def _schema_fields(message_type, seen=None):
  seen = set() if seen is None else seen
  if message_type.full_name in seen:
    return
  seen.add(message_type.full_name)
  for field in message_type.fields:
    yield field
    if field.message_type is not None:
      yield from _schema_fields(field.message_type, seen)


def test_every_schema_field_is_read_refused_or_warned_about():
  """No field is silently ignored: each READ field is read by the one door
  or checked by validation, by name; the others are in FIELD_USE."""
  sources = ''
  for path in glob.glob(os.path.join(_LIBRARY, 'config', '*.py')):
    with open(path) as f:
      sources += f.read()
  # Messages of the other meta architectures are refused whole.
  refused_messages = {'deeplab2.ModelOptions.DeeplabV3Options',
                      'deeplab2.ModelOptions.DeeplabV3PlusOptions',
                      'deeplab2.ModelOptions.MotionDeepLabOptions'}
  unread = []
  for field in _schema_fields(config_pb2.ExperimentOptions.DESCRIPTOR):
    if field.containing_type.full_name in refused_messages:
      continue
    if field.full_name in field_use.FIELD_USE:
      continue
    if not re.search(rf"[.'\"]{field.name}\b", sources):
      unread.append(field.full_name)
  assert not unread
  for name, use in field_use.FIELD_USE.items():
    assert use.kind in (field_use.NOT_IMPLEMENTED,
                        field_use.NO_MEANING_HERE), name
    assert use.reason, name


def test_backbones_publish_their_strides_and_endpoints_before_building():
  """The registry's facts (used by validation) are the built backbones'."""
  from deeplab2.modeling import backbones  # pylint: disable=g-import-not-at-top
  from deeplab2.modeling.layers import normalization  # pylint: disable=g-import-not-at-top
  for name in backbones.BACKBONES.names():
    entry = backbones.BACKBONES.get(name)
    for stride in entry.output_strides:
      backbone = backbones.build_backbone(
          name, backbones.BackboneOptions(output_stride=stride),
          normalization.BatchNormOptions())
      assert tuple(backbone.endpoint_specs) == entry.endpoints, name
      assert backbone.endpoint_specs['res5'].stride == stride, name
    refused = [s for s in (4, 8, 16, 32) if s not in entry.output_strides]
    for stride in refused:
      with pytest.raises(ValueError, match=rf'Backbone "{name}": '
                         r'output_stride must be one of'):
        backbones.build_backbone(
            name, backbones.BackboneOptions(output_stride=stride),
            normalization.BatchNormOptions())
