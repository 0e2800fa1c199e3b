"""The commands' one home, deeplab2.cli: thin shims at the old paths, the
console scripts of setup.py, and --help of every command."""

import ast
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import time

import pytest

from deeplab2.cli import export_model
import cli_runner
from conftest import REPO_ROOT

# The documented script paths and the deeplab2.cli module each runs.
SHIMS = {
    'trainer/train.py': 'train',
    'data/build_cityscapes_data.py': 'build_cityscapes_data',
    'data/build_coco_data.py': 'build_coco_data',
    'data/build_mapillary_data.py': 'build_mapillary_data',
    'data/build_synthetic_data.py': 'build_synthetic_data',
    'data/visualize_targets.py': 'visualize_targets',
    'evaluation/evaluate_panoptic.py': 'evaluate_panoptic',
    'tools/convert_deeplab2_checkpoint.py': 'convert_deeplab2_checkpoint',
    'export_model.py': 'export_model',
    'infer.py': 'infer',
}
# deeplab2/cli modules that are no command.
_HELPERS = {'__init__', 'config_flags', 'conversion_flags', 'messages'}


def _console_scripts():
  """{command: 'deeplab2.cli.module:main'} as setup.py declares them."""
  with open(os.path.join(REPO_ROOT, 'setup.py'), encoding='utf-8') as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if (isinstance(node, ast.Assign) and
        [t.id for t in node.targets] == ['_COMMANDS']):
      commands = ast.literal_eval(node.value)
      return {name: f'deeplab2.cli.{module}:main'
              for name, module in commands.items()}
  raise AssertionError('setup.py defines no _COMMANDS')


def _cli_modules():
  folder = os.path.join(REPO_ROOT, 'deeplab2', 'cli')
  return {name[:-3] for name in os.listdir(folder)
          if name.endswith('.py')} - _HELPERS


@pytest.mark.parametrize('path', sorted(SHIMS))
def test_each_old_path_is_a_thin_shim(path):
  with open(os.path.join(REPO_ROOT, path), encoding='utf-8') as f:
    source = f.read()
  body = ast.parse(source).body
  assert ast.get_docstring(ast.Module(body=body, type_ignores=[]))
  code = ast.unparse(ast.Module(body=body[1:], type_ignores=[]))
  assert code == (f'import sys\nfrom deeplab2.cli.{SHIMS[path]} import main\n'
                  "if __name__ == '__main__':\n    sys.exit(main())"), source


def test_every_command_has_a_shim_and_a_console_script():
  scripts = _console_scripts()
  modules = {target.split(':')[0].rsplit('.', 1)[1]
             for target in scripts.values()}
  assert modules == set(SHIMS.values()) == _cli_modules()
  assert all(name.startswith('deeplab2-') for name in scripts)
  assert not os.path.exists(os.path.join(REPO_ROOT, 'data',
                                         'conversion_cli.py'))


def test_installed_console_scripts_match_setup_py():
  try:
    distribution = importlib.metadata.distribution('deeplab2-tf2')
  except importlib.metadata.PackageNotFoundError:
    pytest.skip('deeplab2-tf2 is not installed')
  installed = {e.name: e.value for e in distribution.entry_points
               if e.group == 'console_scripts'}
  assert installed == _console_scripts(), (
      'the install predates setup.py: re-run pip install -e .')


@pytest.mark.parametrize('command,target',
                         sorted(_console_scripts().items()))
def test_each_command_prints_its_help(command, target, capsys):
  module_name, function = target.split(':')
  main = getattr(importlib.import_module(module_name), function)
  result = cli_runner.run_main(main, ['--help'], capsys)
  assert result.returncode == 0, (command, result.stderr)
  assert result.stdout.startswith('usage: '), (command, result.stdout)


def test_a_shim_runs_as_a_script():
  """No sys.path edit: the installed package is what the shim imports."""
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, 'evaluation',
                                    'evaluate_panoptic.py'), '--help'],
      capture_output=True, text=True, cwd=REPO_ROOT, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('usage: evaluate_panoptic.py ')


def test_nothing_edits_sys_path():
  found = []
  roots = ['deeplab2', 'data', 'trainer', 'evaluation', 'tools', 'benchmarks']
  for root in roots:
    for folder, _, names in os.walk(os.path.join(REPO_ROOT, root)):
      found += [os.path.join(folder, n) for n in names if n.endswith('.py')]
  found += [os.path.join(REPO_ROOT, n) for n in os.listdir(REPO_ROOT)
            if n.endswith('.py')]
  editing = []
  for path in found:
    with open(path, encoding='utf-8') as f:
      if 'sys.path' in f.read():
        editing.append(os.path.relpath(path, REPO_ROOT))
  assert not editing


def test_the_library_never_imports_the_commands():
  importing = []
  for folder, _, names in os.walk(os.path.join(REPO_ROOT, 'deeplab2')):
    if os.path.basename(folder) == 'cli':
      continue
    for name in names:
      if name.endswith('.py'):
        with open(os.path.join(folder, name), encoding='utf-8') as f:
          if re.search(r'^\s*(from|import) deeplab2(\.cli\b| import cli\b)',
                       f.read(), re.M):
            importing.append(os.path.join(folder, name))
  assert not importing


@pytest.mark.parametrize('scales,message', [
    ('1,0.5,1', r'--eval_scales lists a scale twice: \[1\.0, 0\.5, 1\.0\]'),
    ('0,1', r'--eval_scales must all be positive, got \[0\.0, 1\.0\]'),
    ('1,x', r'--eval_scales is a comma-separated list'),
])
def test_export_eval_scales_follow_the_config_rule(scales, message, capsys):
  result = cli_runner.run_main(
      export_model.main,
      ['--config_file=unused.textproto', '--checkpoint_path=unused',
       '--output_path=unused', f'--eval_scales={scales}'], capsys)
  assert result.returncode == 2
  assert re.search(message, result.stderr), result.stderr


@pytest.mark.parametrize('command', ['build_coco_data', 'build_cityscapes_data',
                                     'build_mapillary_data'])
def test_converter_commands_import_no_tensorflow(command):
  """Their worker processes re-import the command's module when they start;
  TensorFlow comes only with the conversion itself."""
  result = subprocess.run(
      [sys.executable, '-c', f'import sys, deeplab2.cli.{command}; '
       'print("tensorflow" in sys.modules)'],
      capture_output=True, text=True, check=True)
  assert result.stdout.strip() == 'False'


def test_train_help_is_fast_shows_its_examples_and_imports_no_tensorflow():
  start = time.time()
  result = subprocess.run(
      [sys.executable, '-c', 'import sys; from deeplab2.cli import train\n'
       'try:\n  train.main(["--help"])\nexcept SystemExit:\n  pass\n'
       'print("tensorflow" in sys.modules)'],
      capture_output=True, text=True, check=True, cwd=REPO_ROOT)
  seconds = time.time() - start
  assert seconds < 2, seconds
  assert result.stdout.strip().endswith('False')
  assert ('  python trainer/train.py --config_file=configs/synthetic/'
          'resnet_mini_os16.textproto \\\n      --mode=train_and_eval'
          in result.stdout)
  assert '--config_override OVERRIDE' in result.stdout


def test_train_offers_the_modes_the_library_runs():
  from deeplab2.cli import train  # pylint: disable=g-import-not-at-top
  from deeplab2.training import modes  # pylint: disable=g-import-not-at-top
  assert train.MODES == modes.MODES


def test_the_predictor_comes_from_the_top_level_without_importing_tf_first():
  result = subprocess.run(
      [sys.executable, '-c', 'import sys, deeplab2\n'
       'print("tensorflow" in sys.modules)\n'
       'from deeplab2 import Predictor\n'
       'from deeplab2.serving import predictor\n'
       'print(Predictor is predictor.Predictor)'],
      capture_output=True, text=True, check=True, cwd=REPO_ROOT)
  assert result.stdout.split() == ['False', 'True']
