"""docs/custom_data.md's commands, run as written at a tiny size.

Only the first shell block (the sizes) is replaced. The commands run in a
folder that links the repository's scripts and configs, so their relative
paths (runs/custom/...) land in a temporary folder.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import REPO_ROOT

_DOC = os.path.join(REPO_ROOT, 'docs', 'custom_data.md')
_TINY_SIZES = 'NUM_TRAIN=4 NUM_VAL=2\nSTEPS=2 WARMUP=0\n'


def _shell_blocks(text):
  return re.findall(r'```bash\n(.*?)```', text, re.S)


@pytest.fixture(scope='module')
def walkthrough(tmp_path_factory):
  """(folder the commands ran in, their output)."""
  with open(_DOC, encoding='utf-8') as f:
    blocks = _shell_blocks(f.read())
  assert blocks[0].startswith('NUM_TRAIN='), blocks[0]
  folder = tmp_path_factory.mktemp('walkthrough')
  for entry in os.listdir(REPO_ROOT):
    if entry not in ('runs', '.git', '.venv') and not entry.startswith('.'):
      os.symlink(os.path.join(REPO_ROOT, entry), folder / entry)
  script = 'set -euo pipefail\n' + _TINY_SIZES + ''.join(blocks[1:])
  env = dict(os.environ)
  env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env['PATH']
  done = subprocess.run(['bash', '-c', script], cwd=folder, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
  return folder / 'runs' / 'custom', done.stdout + done.stderr


def test_the_walkthrough_has_the_steps_it_promises():
  with open(_DOC, encoding='utf-8') as f:
    commands = ''.join(_shell_blocks(f.read()))
  for script in ('data/build_synthetic_data.py', 'data/build_coco_data.py',
                 'data/visualize_targets.py', 'trainer/train.py',
                 'export_model.py', 'infer.py',
                 'evaluation/evaluate_panoptic.py'):
    assert f'python {script}' in commands, script


def test_the_walkthrough_runs_and_its_scores_agree(walkthrough):
  runs, output = walkthrough
  with open(runs / 'records' / 'dataset_descriptor.json') as f:
    descriptor = json.load(f)
  assert descriptor['num_classes'] == 6      # void + 5 categories
  assert descriptor['class_names'][0] == 'void'
  assert descriptor['splits_to_sizes'] == {'train': 4, 'val': 2}
  assert len(list((runs / 'targets').glob('*.png'))) == 4
  with open(runs / 'model' / 'eval' / 'metrics-00000002.json') as f:
    trained = json.load(f)
  with open(runs / 'inference' / 'metrics.json') as f:
    scored = json.load(f)
  assert scored['num_images'] == trained['num_images'] == 2
  for key in ('pq_all', 'sq_all', 'rq_all'):
    assert scored[key] == pytest.approx(trained[key], abs=1e-9), key
  with open(runs / 'model' / 'best' / 'best.json') as f:
    best = json.load(f)       # the exported checkpoint
  assert best['step'] == 2 and best['metric'] == 'pq_all'
  assert best['value'] == pytest.approx(scored['pq_all'], abs=1e-9)
  for name in ('synthetic_val_000000', 'synthetic_val_000001'):
    overlay = np.asarray(Image.open(runs / 'inference' / 'overlay' /
                                    f'{name}.png'))
    assert overlay.shape[1] == 129 and overlay.shape[0] > 129  # legend
  curves = np.asarray(Image.open(runs / 'model' / 'curves.png'))
  assert curves.std() > 10
  assert 'exported SavedModel to runs/custom/export' in output
