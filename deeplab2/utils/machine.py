"""What a measurement ran on: the CPU model and whether TF runs oneDNN."""

import os
import platform


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo on Linux), e.g. 'AMD EPYC'."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or 'unknown CPU'


def onednn_enabled() -> bool:
  """Whether this process's TensorFlow runs its oneDNN kernels (decided
  when TensorFlow loads, from TF_ENABLE_ONEDNN_OPTS and the CPU)."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  return bool(_pywrap_util_port.IsMklEnabled())


def describe() -> str:
  """'<CPU model>, <n> cores, oneDNN on|off' of this process."""
  return (f'{cpu_model()}, {os.cpu_count()} cores, oneDNN '
          f'{"on" if onednn_enabled() else "off"}')
