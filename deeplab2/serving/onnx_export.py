"""Converts the exported inference path to ONNX (tf2onnx) and OpenVINO IR.

Like the TFLite model, the ONNX model holds the whole of deeplab2.inference:
preprocessing, the network, test-time augmentation, center NMS, grouping,
the majority-vote merge, the instance scores and the maps at the input
size. It takes `images`, uint8 [1, H, W, 3] of the one size it was converted
for, and gives the outputs of export.py's serving_batch signature under the
same names. Its metadata (`metadata_props`) holds the dataset descriptor
(DESCRIPTOR_KEY) and the export options (EXPORT_KEY), so that a runtime
needs nothing else. The OpenVINO IR (.xml + .bin) is converted from that
ONNX model by openvino.convert_model and keeps the same metadata in its
rt_info.

What the conversion needed (docs/deployment.md):
- tf2onnx turns a bilinear resize of constant size into a Resize with
  float scales (17 / 9 = 1.8888888); ONNX Runtime floors 9 x 1.8888888 to
  16 rows, not 17. Every such Resize is rewritten to give its integer
  sizes (`_resizes_by_size`).
- tf2onnx lowers a segment sum to a dense [segments, most ids of one
  segment] grid: 1.35 TB for the grouping's sums at 641 x 641, where all
  non-thing pixels go to one segment. Each becomes one ScatterND with
  reduction 'add' on zeros (`_segment_sum_as_scatter`), the ONNX op that
  means it.
- tf2onnx converts no integer segment minimum (OpenVINO has none at all):
  post-processing finds each instance's first pixel from segment-sum
  tables instead (postprocessing/merge.py).
- OpenVINO cannot run the grouping's while loop inside a cond: these models
  compute every pixel chunk in straight-line code instead (`grouping_mode`,
  postprocessing/grouping.py), over the center slots up to the last valid
  one (a dynamic size; no cond, which OpenVINO ran 2x slower than the same
  ops inline). OpenVINO runs ArgMin as a TopK, 4x slower than two minimum
  reductions there, while ONNX Runtime runs ArgMin faster than the
  reductions: the OpenVINO model finds the nearest center by reductions
  ('every_pixel_min'), the ONNX model by ArgMin ('every_pixel').

tf2onnx, onnx and openvino are optional (extras `onnx`, `openvino`): a
missing one is an ImportError that names the extra.
"""

import importlib
import json
import logging
import os
import tempfile
import types
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from deeplab2 import config as config_lib
from deeplab2.serving import export
from deeplab2.utils import atomic

DESCRIPTOR_KEY = 'deeplab2_descriptor'
EXPORT_KEY = 'deeplab2_export'
OPSET = 17
PACKAGE = 'deeplab2-tf2'
# PostProcessorOptions.grouping_mode of each converted model (see above).
ONNX_GROUPING = 'every_pixel'
OPENVINO_GROUPING = 'every_pixel_min'


def optional_module(name: str, extra: str, purpose: str) -> types.ModuleType:
  """Imports an optional dependency.

  Raises:
    ImportError: one line naming the extra that installs it.
  """
  try:
    return importlib.import_module(name)
  except ImportError as e:
    raise ImportError(
        f'{purpose} needs the optional package {name.split(".")[0]} '
        f'({e}); install it with: pip install "{PACKAGE}[{extra}]"') from None


def _resizes_by_size(model: Any) -> int:
  """Rewrites the Resize nodes that take constant scales to take the
  integer sizes they mean (round(input size x scale)); returns how many.

  Input sizes come from ONNX shape inference, run again after each round
  because a Resize's input size can depend on an earlier Resize.
  """
  onnx = optional_module('onnx', 'onnx', 'ONNX export')
  numpy_helper = onnx.numpy_helper
  initializers = {i.name: i for i in model.graph.initializer}
  rewritten = 0
  while True:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input):
      dims = value.type.tensor_type.shape.dim
      if all(d.HasField('dim_value') for d in dims):
        shapes[value.name] = [d.dim_value for d in dims]
    changed = 0
    for node in model.graph.node:
      if (node.op_type != 'Resize' or len(node.input) != 3 or
          node.input[2] not in initializers or node.input[0] not in shapes):
        continue
      scales = numpy_helper.to_array(initializers[node.input[2]])
      sizes = np.round(np.array(shapes[node.input[0]]) * scales).astype(
          np.int64)
      name = f'{node.name}/sizes'
      tensor = numpy_helper.from_array(sizes, name)
      model.graph.initializer.append(tensor)
      initializers[name] = tensor
      node.input[2] = ''          # no scales: sizes instead
      node.input.append(name)
      changed += 1
    rewritten += changed
    if not changed:
      break
  used = {name for node in model.graph.node for name in node.input}
  kept = [i for i in model.graph.initializer if i.name in used]
  del model.graph.initializer[:]
  model.graph.initializer.extend(kept)
  return rewritten


def _softmax_by_reductions(model: Any) -> int:
  """Rewrites each Softmax node as exp(x - max) / sum(exp(x - max)) over
  its axis (reductions and element-wise nodes); returns how many.

  ONNX Runtime's Softmax over the 19 classes of 1025 x 2049 pixels took
  1.0 s, 40 % of MobileNetV3's whole model; five whole-tensor nodes take a
  fraction of it. The formula is TensorFlow's.
  """
  onnx = optional_module('onnx', 'onnx', 'ONNX export')
  helper = onnx.helper
  nodes = list(model.graph.node)
  rewritten = 0
  for index in reversed(range(len(nodes))):
    node = nodes[index]
    if node.op_type != 'Softmax':
      continue
    axis = next((a.i for a in node.attribute if a.name == 'axis'), -1)
    x, (y,) = node.input[0], node.output
    base = node.name or y
    axes = onnx.numpy_helper.from_array(np.array([axis], np.int64),
                                        f'{base}/axes')
    model.graph.initializer.append(axes)
    nodes[index:index + 1] = [
        helper.make_node('ReduceMax', [x], [f'{base}/max'], axes=[axis],
                         keepdims=1, name=f'{base}/max'),
        helper.make_node('Sub', [x, f'{base}/max'], [f'{base}/shifted'],
                         name=f'{base}/shifted'),
        helper.make_node('Exp', [f'{base}/shifted'], [f'{base}/exp'],
                         name=f'{base}/exp'),
        helper.make_node('ReduceSum', [f'{base}/exp', axes.name],
                         [f'{base}/sum'], keepdims=1, name=f'{base}/sum'),
        helper.make_node('Div', [f'{base}/exp', f'{base}/sum'], [y],
                         name=f'{base}/normalised')]
    rewritten += 1
  del model.graph.node[:]
  model.graph.node.extend(nodes)
  return rewritten


def _segment_sum_as_scatter(ctx: Any, node: Any, name: str,
                            args: Any) -> None:
  """tf2onnx handler: UnsortedSegmentSum(data [N], ids [N], count) ->
  ScatterND(zeros [count], ids[:, None], data, reduction='add')."""
  del name, args
  onnx = optional_module('onnx', 'onnx', 'ONNX export')
  graph_builder = optional_module('tf2onnx.graph_builder', 'onnx',
                                  'ONNX export')
  data, ids, count = node.input
  dtype = ctx.get_dtype(data)
  count = ctx.make_node('Cast', [count], attr={
      'to': onnx.TensorProto.INT64}).output[0]
  shape = graph_builder.GraphBuilder(ctx).make_unsqueeze(
      {'data': count, 'axes': [0]})
  zero = onnx.helper.make_tensor('value', dtype, [1], [0])
  zeros = ctx.make_node('ConstantOfShape', [shape],
                        attr={'value': zero}).output[0]
  ids = ctx.make_node('Cast', [ids], attr={
      'to': onnx.TensorProto.INT64}).output[0]
  indices = graph_builder.GraphBuilder(ctx).make_unsqueeze(
      {'data': ids, 'axes': [1]})
  node.type = 'ScatterND'
  ctx.replace_inputs(node, [zeros, indices, data])
  node.set_attr('reduction', 'add')


def convert(module: export.PanopticDeepLabModule,
            metadata: dict[str, str] | None = None) -> bytes:
  """Returns the ONNX model (serialized ModelProto) of a module of one
  input size; `metadata` goes into its metadata_props.

  Raises:
    ValueError: the module has no fixed input size.
    ImportError: tf2onnx or onnx is missing.
  """
  if not module.input_size:
    raise ValueError('An ONNX model has a fixed input size: export with '
                     'input_size=(height, width).')
  tf2onnx = optional_module('tf2onnx', 'onnx', 'ONNX export')
  logging.getLogger('tf2onnx').setLevel(logging.WARNING)
  height, width = module.input_size
  spec = tf.TensorSpec([1, height, width, 3], tf.uint8, name='images')
  predict = tf.function(module.predict_rgb, input_signature=[spec])
  model, _ = tf2onnx.convert.from_function(
      predict, input_signature=[spec], opset=OPSET,
      custom_op_handlers={'UnsortedSegmentSum': (_segment_sum_as_scatter,
                                                 [])})
  # Shapes tf2onnx declared from TF; ONNX Runtime infers its own.
  del model.graph.value_info[:]
  _resizes_by_size(model)
  _softmax_by_reductions(model)
  for key, value in (metadata or {}).items():
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
  return model.SerializeToString()


def _metadata(parts: config_lib.ExperimentParts,
              module: export.PanopticDeepLabModule) -> dict[str, str]:
  return {
      DESCRIPTOR_KEY: json.dumps(parts.descriptor('eval').to_json_dict()),
      EXPORT_KEY: json.dumps(export.metadata(module.options,
                                             module.input_size))}


def onnx_from_config(config_path: 'config_lib.ConfigSource',
                     checkpoint_path: str, output_path: str,
                     overwrite: bool = False,
                     eval_scales: Sequence[float] | None = None,
                     add_flipped_images: bool | None = None,
                     input_size: Sequence[int] | None = None) -> str:
  """Writes the config's restored model as an .onnx file (whole or not at
  all); arguments as tflite.tflite_from_config. Returns the path.

  Raises:
    FileExistsError: output_path exists and overwrite is False.
    ImportError: the `onnx` extra is not installed.
  """
  export.check_output_free(output_path, overwrite)
  optional_module('tf2onnx', 'onnx', 'ONNX export')
  module, parts = export.fixed_size_module(
      config_path, checkpoint_path, eval_scales, add_flipped_images,
      input_size, grouping_mode=ONNX_GROUPING)
  data = convert(module, _metadata(parts, module))
  export.make_parent_folder(output_path)
  atomic.write_file(output_path, data)
  return output_path


def openvino_from_config(config_path: 'config_lib.ConfigSource',
                         checkpoint_path: str, output_path: str,
                         overwrite: bool = False,
                         eval_scales: Sequence[float] | None = None,
                         add_flipped_images: bool | None = None,
                         input_size: Sequence[int] | None = None) -> str:
  """Writes the config's restored model as OpenVINO IR: `output_path`
  (.xml) and the .bin beside it, converted from the ONNX model. Arguments
  as onnx_from_config; returns the .xml path.

  Raises:
    ValueError: output_path does not end in .xml.
    FileExistsError: the .xml or .bin exists and overwrite is False.
    ImportError: the `onnx` or `openvino` extra is not installed.
  """
  if not output_path.endswith('.xml'):
    raise ValueError(f'{output_path}: an OpenVINO model is an .xml file '
                     '(with its .bin beside it); give a path ending in .xml.')
  weights_path = output_path[:-len('.xml')] + '.bin'
  export.check_output_free(output_path, overwrite)
  export.check_output_free(weights_path, overwrite)
  openvino = optional_module('openvino', 'openvino', 'OpenVINO export')
  optional_module('tf2onnx', 'onnx', 'OpenVINO export (through ONNX)')
  module, parts = export.fixed_size_module(
      config_path, checkpoint_path, eval_scales, add_flipped_images,
      input_size, grouping_mode=OPENVINO_GROUPING)
  metadata = _metadata(parts, module)
  data = convert(module, metadata)
  export.make_parent_folder(output_path)
  with tempfile.TemporaryDirectory(
      dir=os.path.dirname(os.path.abspath(output_path))) as scratch:
    onnx_path = os.path.join(scratch, 'model.onnx')
    with open(onnx_path, 'wb') as f:
      f.write(data)
    model = openvino.convert_model(onnx_path)
    for key, value in metadata.items():
      model.set_rt_info(value, ['deeplab2', key])
    staged = os.path.join(scratch, 'model.xml')
    openvino.save_model(model, staged, compress_to_fp16=False)
    # The .bin first: an .xml never names a missing or older .bin.
    os.replace(os.path.join(scratch, 'model.bin'), weights_path)
    os.replace(staged, output_path)
  atomic.fsync_folder(os.path.dirname(os.path.abspath(output_path)))
  return output_path
