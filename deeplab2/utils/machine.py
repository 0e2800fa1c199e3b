"""What a measurement ran on: the CPU model and whether TF runs oneDNN."""

import os
import platform


def _cpuinfo_field(name: str) -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith(name):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return ''


def vector_extensions() -> str:
  """The widest vector extensions the CPU reports ('AVX-512, AMX',
  'AVX-512', 'AVX2', ...; '' where /proc/cpuinfo is not there): what
  decides TF's oneDNN default and which kernels are fast. Two machines
  both named 'AMD EPYC' differ here."""
  flags = set(_cpuinfo_field('flags').split())
  for needed, name in ((('avx512f', 'amx_tile'), 'AVX-512, AMX'),
                       (('avx512f',), 'AVX-512'), (('avx2',), 'AVX2'),
                       (('avx',), 'AVX'), (('sse4_2',), 'SSE4.2')):
    if all(flag in flags for flag in needed):
      return name
  return ''


def cpu_model() -> str:
  """The CPU's model name and vector extensions (/proc/cpuinfo on Linux),
  e.g. 'AMD EPYC (AVX2)'."""
  name = (_cpuinfo_field('model name') or platform.processor() or
          platform.machine() or 'unknown CPU')
  extensions = vector_extensions()
  return f'{name} ({extensions})' if extensions else name


def onednn_enabled() -> bool:
  """Whether this process's TensorFlow runs its oneDNN kernels (decided
  when TensorFlow loads, from TF_ENABLE_ONEDNN_OPTS and the CPU)."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  return bool(_pywrap_util_port.IsMklEnabled())


def describe() -> str:
  """'<CPU model>, <n> cores, oneDNN on|off' of this process."""
  return (f'{cpu_model()}, {os.cpu_count()} cores, oneDNN '
          f'{"on" if onednn_enabled() else "off"}')
