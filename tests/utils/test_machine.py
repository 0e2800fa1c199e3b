"""What a measurement says it ran on."""

import pytest

from deeplab2.utils import machine


@pytest.mark.parametrize('flags, expected', [
    ('fpu sse4_2 avx avx2 fma', 'AVX2'),
    ('avx2 avx512f avx512_vnni avx512_bf16', 'AVX-512'),
    ('avx2 avx512f amx_tile amx_bf16', 'AVX-512, AMX'),
    ('fpu sse2', ''),
])
def test_two_machines_of_one_name_differ_by_their_vector_extensions(
    monkeypatch, flags, expected):
  fields = {'flags': flags, 'model name': 'AMD EPYC'}
  monkeypatch.setattr(machine, '_cpuinfo_field',
                      lambda name: fields.get(name, ''))
  assert machine.vector_extensions() == expected
  assert machine.cpu_model() == (f'AMD EPYC ({expected})' if expected
                                 else 'AMD EPYC')
