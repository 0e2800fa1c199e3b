"""Keras dtype policies a model may be built under."""

import contextlib

import keras

# The `ModelOptions.dtype_policy` names.
DTYPE_POLICIES = ('float32', 'mixed_bfloat16', 'mixed_float16')


@contextlib.contextmanager
def dtype_policy_scope(name):
  """Layers created inside take the Keras dtype policy `name`.

  Raises:
    ValueError: `name` is not one of DTYPE_POLICIES.
  """
  if name not in DTYPE_POLICIES:
    raise ValueError(f'Unknown dtype_policy "{name}"; valid: '
                     f'{", ".join(DTYPE_POLICIES)}.')
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)
