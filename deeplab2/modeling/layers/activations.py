"""Activations by name, as deeplab2's configs and block tables spell them."""

import keras

# hard_sigmoid uses deeplab2's constant 0.16667 (not 1/6) so that networks
# with squeeze-and-excite gates reproduce deeplab2's outputs.
_HARD_SIGMOID_SCALE = 0.16667


def hard_sigmoid(x):
  return keras.ops.relu6(x + 3.0) * _HARD_SIGMOID_SCALE


def hard_swish(x):
  return x * keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


def identity(x):
  return x


_ACTIVATIONS = {
    'relu': keras.ops.relu,
    'relu6': keras.ops.relu6,
    'sigmoid': keras.ops.sigmoid,
    'hard_sigmoid': hard_sigmoid,
    'swish': keras.ops.silu,
    'hard_swish': hard_swish,
    'none': identity,
}


def get(name):
  """The function for `name` (None means identity).

  Raises:
    ValueError: an unknown name; the message lists the valid ones.
  """
  key = 'none' if name is None else str(name).lower()
  if key not in _ACTIVATIONS:
    raise ValueError(f'Unknown activation "{name}"; valid: '
                     f'{", ".join(sorted(_ACTIVATIONS))}.')
  return _ACTIVATIONS[key]
