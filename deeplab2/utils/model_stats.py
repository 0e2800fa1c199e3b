"""Parameters and multiply-adds of a model, counted from its graph.

Multiply-adds count the convolutions and matrix products (Conv2D,
DepthwiseConv2dNative, MatMul, BatchMatMul, Einsum) as the graph runs them:
one per weight per output position, the convention of the papers'
"M-Adds". A dilated convolution counts what its formulation computes
(modeling/layers/atrous.py): the padded grid of space-to-batch, or only
the taps that read the image. Batch norm, activations,
additions, pooling and resizing are not counted.
"""

import numpy as np
import tensorflow as tf


def parameter_counts(model):
  """(total, trainable) numbers of scalars in the model's variables."""
  total = sum(int(np.prod(v.shape)) for v in model.weights)
  trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
  return total, trainable


def _static(shape):
  dims = shape.as_list()
  if any(d is None for d in dims):
    raise ValueError(f'Multiply-adds need static shapes, got {dims}.')
  return dims


def _op_multiply_adds(op):
  if op.type == 'Conv2D':
    out = _static(op.outputs[0].shape)
    kernel = _static(op.inputs[1].shape)      # [kh, kw, in, out]
    return int(np.prod(out)) * kernel[0] * kernel[1] * kernel[2]
  if op.type == 'DepthwiseConv2dNative':
    out = _static(op.outputs[0].shape)
    kernel = _static(op.inputs[1].shape)      # [kh, kw, in, multiplier]
    return int(np.prod(out)) * kernel[0] * kernel[1]
  if op.type == 'Einsum':
    # Every combination of the indices is one multiply-add (atrous.py's
    # 'bhwc,cf->bhwf' taps: b * h * w * c * f).
    sizes = {}
    inputs = op.get_attr('equation').decode().split('->')[0].split(',')
    for letters, tensor in zip(inputs, op.inputs):
      sizes.update(zip(letters, _static(tensor.shape)))
    return int(np.prod(list(sizes.values())))
  if op.type in ('MatMul', 'BatchMatMulV2', 'BatchMatMulV3'):
    out = _static(op.outputs[0].shape)
    a = _static(op.inputs[0].shape)
    transpose = op.get_attr('transpose_a') if op.type == 'MatMul' else (
        op.get_attr('adj_x'))
    inner = a[-2] if transpose else a[-1]
    return int(np.prod(out)) * inner
  return 0


def multiply_adds(model, input_shape, **call_kwargs):
  """Multiply-adds of one call of `model` on float32 `input_shape`.

  Args:
    model: a callable Keras layer or model (built or not).
    input_shape: full static shape, batch included, e.g. (1, 1025, 2049, 3).
    **call_kwargs: passed to the call, e.g. training=False.

  Returns:
    int, summed over every graph op, nested functions included.
  """
  return sum(multiply_adds_by_op(model, input_shape, **call_kwargs).values())


def multiply_adds_by_op(model, input_shape, **call_kwargs):
  """{graph op name: multiply-adds} of one call, as multiply_adds counts
  them (ops without any left out). The names are the graph's, of a
  tf.function of `lambda x: model(x, **call_kwargs)`; a profiler names
  fused ops otherwise (op_profile.module_rates meets the two at the
  module)."""
  if not getattr(model, 'built', True):
    # Variables made inside the trace below would make tf.function trace
    # twice and lift every initializer into the graph (xception_71: 29 s
    # against 4.5 s built first).
    model.build(tuple(input_shape))
  function = tf.function(lambda x: model(x, **call_kwargs))
  concrete = function.get_concrete_function(
      tf.TensorSpec(input_shape, tf.float32))
  by_op = {}
  graphs = [concrete.graph]
  seen = set()
  while graphs:
    graph = graphs.pop()
    if id(graph) in seen:
      continue
    seen.add(id(graph))
    for op in graph.get_operations():
      count = _op_multiply_adds(op)
      if count:
        by_op[op.name] = by_op.get(op.name, 0) + count
    graphs.extend(getattr(graph, '_functions', {}).values() and
                  [f.graph for f in graph._functions.values()  # pylint: disable=protected-access
                   if hasattr(f, 'graph')])
  return by_op
