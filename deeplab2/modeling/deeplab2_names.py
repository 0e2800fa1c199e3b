"""Where each of our variables sits in a checkpoint written by deeplab2.

deeplab2's trainer saves `tf.train.Checkpoint(encoder=..., semantic_decoder=...,
semantic_head_without_last_layer=..., semantic_last_layer=..., ...)`, so a
variable's key is its object path, e.g.
`encoder/_stage2/_block1/_conv1_bn_act/_batch_norm/gamma/.ATTRIBUTES/VARIABLE_VALUE`.
Each of our layers says once, in `deeplab2_children()`, which deeplab2 scope
each of its sublayers is; this module walks those declarations down to the
Keras built-in layers, whose attribute names deeplab2 shares.
"""

import keras

KEY_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


def _leaf_attributes(layer):
  """(attribute name in deeplab2, variable) of a Keras built-in layer."""
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    pairs = [('depthwise_kernel', layer.kernel)]
  elif isinstance(layer, keras.layers.Conv2D):
    pairs = [('kernel', layer.kernel)]
  elif isinstance(layer, keras.layers.BatchNormalization):
    return [('gamma', layer.gamma), ('beta', layer.beta),
            ('moving_mean', layer.moving_mean),
            ('moving_variance', layer.moving_variance)]
  else:
    raise TypeError(f'No deeplab2 names for {type(layer).__name__} '
                    f'"{layer.name}".')
  if getattr(layer, 'use_bias', False):
    pairs.append(('bias', layer.bias))
  return pairs


def checkpoint_keys(layer, scope=''):
  """Maps each variable under `layer` to its deeplab2 checkpoint key.

  Args:
    layer: one of our layers (it defines deeplab2_children() and, when it
      holds variables itself, deeplab2_variables()) or a Keras built-in
      layer.
    scope: the deeplab2 object path of `layer`.

  Returns:
    list of (variable, key) pairs, keys ending in KEY_SUFFIX.

  Raises:
    TypeError: a layer without deeplab2 names.
    ValueError: two variables map to one key.
  """
  pairs = []
  if hasattr(layer, 'deeplab2_variables'):
    pairs = [(variable, f'{scope}/{attribute}{KEY_SUFFIX}')
             for attribute, variable in layer.deeplab2_variables()]
  if hasattr(layer, 'deeplab2_children'):
    for name, child in layer.deeplab2_children():
      pairs.extend(checkpoint_keys(child, '/'.join(p for p in (scope, name)
                                                   if p)))
  else:
    pairs = [(variable, f'{scope}/{attribute}{KEY_SUFFIX}')
             for attribute, variable in _leaf_attributes(layer)]
  keys = [key for _, key in pairs]
  if len(set(keys)) != len(keys):
    raise ValueError(f'Duplicate deeplab2 keys under "{scope}".')
  return pairs
