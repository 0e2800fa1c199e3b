"""One trainer per model_dir: the lock file, its refusal and its takeover."""

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time

from google.protobuf import text_format
import pytest

from deeplab2 import config as config_lib
from deeplab2.cli import train as train_cli
from deeplab2.training import model_dir_lock
from tests import cli_runner
from tests.conftest import tiny_config_text


def _lock_path(model_dir):
  return os.path.join(model_dir, model_dir_lock.LOCK_NAME)


def _dead_pid():
  process = subprocess.Popen([sys.executable, '-c', 'pass'])
  process.wait()
  return process.pid


def test_a_second_claim_is_refused_naming_the_holder(tmp_path):
  model_dir = str(tmp_path)
  with model_dir_lock.claim(model_dir):
    holder = json.loads(open(_lock_path(model_dir)).read())
    assert holder['pid'] == os.getpid()
    assert holder['host'] == socket.gethostname()
    with pytest.raises(model_dir_lock.ModelDirInUse) as error:
      with model_dir_lock.claim(model_dir):
        pass
  message = str(error.value)
  assert '\n' not in message
  assert f'pid {os.getpid()} on {socket.gethostname()}' in message
  assert _lock_path(model_dir) in message
  # Released on exit, and claimable again.
  assert not os.path.exists(_lock_path(model_dir))
  with model_dir_lock.claim(model_dir):
    assert os.path.exists(_lock_path(model_dir))
  assert not os.path.exists(_lock_path(model_dir))


def test_the_lock_is_released_when_the_run_fails(tmp_path):
  with pytest.raises(RuntimeError):
    with model_dir_lock.claim(str(tmp_path)):
      raise RuntimeError('training failed')
  assert not os.path.exists(_lock_path(str(tmp_path)))


def test_a_dead_holders_lock_is_taken_over_with_a_warning(tmp_path, caplog):
  model_dir = str(tmp_path)
  pid = _dead_pid()
  with open(_lock_path(model_dir), 'w') as f:
    json.dump({'host': socket.gethostname(), 'pid': pid,
               'started': '2026-12-01T10:00:00+00:00'}, f)
  with caplog.at_level(logging.WARNING, logger='deeplab2'):
    with model_dir_lock.claim(model_dir):
      assert json.load(open(_lock_path(model_dir)))['pid'] == os.getpid()
  assert f'pid {pid} on this host' in caplog.text
  assert 'no longer runs' in caplog.text


@pytest.mark.parametrize('holder', [
    # Another host: cannot be checked from here.
    {'host': 'another-host.example', 'pid': 1, 'started': '?'},
    # This host, a live process (this one's parent).
    {'host': socket.gethostname(), 'pid': os.getppid(), 'started': '?'},
    # Not a lock this code wrote.
    'not json',
], ids=['other_host', 'live_pid', 'unreadable'])
def test_a_holder_not_provably_dead_keeps_its_lock(tmp_path, holder):
  model_dir = str(tmp_path)
  with open(_lock_path(model_dir), 'w') as f:
    f.write(holder if isinstance(holder, str) else json.dumps(holder))
  before = open(_lock_path(model_dir)).read()
  with pytest.raises(model_dir_lock.ModelDirInUse, match='another process'):
    with model_dir_lock.claim(model_dir):
      pass
  assert open(_lock_path(model_dir)).read() == before


def test_a_second_trainer_exits_with_one_line_and_touches_nothing(
    tiny_config_path, tmp_path, capsys):
  # The first trainer is this process, holding the lock as training does.
  model_dir = str(tmp_path / 'run')
  os.makedirs(model_dir)
  with model_dir_lock.claim(model_dir):
    result = cli_runner.run_main(
        train_cli.main, [f'--config_file={tiny_config_path}', '--mode=train',
                         f'--model_dir={model_dir}'], capsys)
    assert os.listdir(model_dir) == [model_dir_lock.LOCK_NAME]
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('error: ')
  assert f'pid {os.getpid()} on {socket.gethostname()}' in lines[0]


# A trainer process whose imports are done before it is told to start (the
# file named by its first argument appearing): it then reaches the lock
# within a few seconds.
_READY_TRAINER = textwrap.dedent('''
    import os, sys, time
    from deeplab2.cli import train
    while not os.path.exists(sys.argv[1]):
      time.sleep(0.05)
    sys.exit(train.main(sys.argv[2:]))
''')

# A trainer that holds still after step 10 until the file named by its first
# argument appears: it is training, whatever the CPU's speed, while the
# second one tries.
_PAUSING_TRAINER = textwrap.dedent('''
    import os, sys, time
    from deeplab2.training import train_loop
    report = train_loop.TrainLoop._report
    def report_then_wait(self, step, *args, **kwargs):
      report(self, step, *args, **kwargs)
      while step == 10 and not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    train_loop.TrainLoop._report = report_then_wait
    from deeplab2.cli import train
    sys.exit(train.main(sys.argv[2:]))
''')


def test_two_trainers_on_one_model_dir_the_second_exits_at_once(
    tiny_dataset_dir, tmp_path):
  config = config_lib.parse_experiment_text(tiny_config_text(tiny_dataset_dir,
                                                             steps=40))
  config.trainer_options.steps_per_loop = 10
  config.trainer_options.save_checkpoints_steps = 20
  config.trainer_options.save_summaries_steps = 20
  config_path = tmp_path / 'config.textproto'
  config_path.write_text(text_format.MessageToString(config))
  model_dir = str(tmp_path / 'run')
  flags = [f'--config_file={config_path}', '--mode=train',
           f'--model_dir={model_dir}']
  go = tmp_path / 'go'
  release = tmp_path / 'release'
  first_log = tmp_path / 'first.log'
  with open(first_log, 'w') as log:
    first = subprocess.Popen([sys.executable, '-c', _PAUSING_TRAINER,
                              str(release), *flags], stdout=log,
                             stderr=subprocess.STDOUT)
    second = subprocess.Popen([sys.executable, '-c', _READY_TRAINER, str(go),
                               *flags], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
      deadline = time.time() + 300
      while ('step 10/40' not in first_log.read_text() and
             first.poll() is None and time.time() < deadline):
        time.sleep(0.1)
      assert first.poll() is None, first_log.read_text()[-3000:]
      go.write_text('')
      _, second_err = second.communicate(timeout=120)
      # The first was still training when the second gave up.
      assert first.poll() is None, first_log.read_text()[-3000:]
      release.write_text('')
      first_status = first.wait(timeout=300)
    finally:
      first.kill()
      second.kill()
  assert second.returncode == 1, second_err[-3000:]
  errors = [line for line in second_err.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1 and 'Traceback' not in second_err, second_err
  assert f'pid {first.pid} on {socket.gethostname()}' in errors[0]
  # The first finished as a run alone does: every checkpoint, no error,
  # the lock released.
  first_text = first_log.read_text()
  assert first_status == 0, first_text[-3000:]
  assert 'error:' not in first_text and 'Traceback' not in first_text
  assert sorted(name for name in os.listdir(model_dir)
                if name.endswith('.index')) == [
                    'ckpt-20.index', 'ckpt-40.index']
  assert not os.path.exists(_lock_path(model_dir))
