"""Converts the exported inference path to a TFLite model for LiteRT.

The whole of deeplab2.inference goes inside the .tflite model with TFLite
builtin ops only (no Flex ops, which LiteRT's interpreter lacks): the
preprocessing, the network, the test-time augmentation, the center NMS, the
grouping, the majority-vote merge, the instance scores and the maps at the
input size. The model takes one uint8 image [1, H, W, 3] of the fixed
size it was converted for, and gives the outputs of export.py's
serving_batch signature under the same names. `Predictor.from_tflite`
(NumPy only) feeds it images of other channel counts and checks the size.
`tflite_from_config` restores a config's checkpoint and writes the file.
"""

import os
import tempfile
from typing import Sequence

import tensorflow as tf
# Public TF has no other way to freeze a function's variables.
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from deeplab2 import config as config_lib
from deeplab2.serving import export
from deeplab2.utils import atomic

QUANTIZATIONS = ('float32', 'float16', 'int8')
# PostProcessorOptions.semantic_argmax of the .tflite model: LiteRT's ArgMax
# takes a third of its TopK's time, for the same classes.
TFLITE_SEMANTIC_ARGMAX = 'argmax'


def convert(module: export.PanopticDeepLabModule,
            quantization: str = 'float32') -> bytes:
  """Returns the .tflite bytes of an export.PanopticDeepLabModule.

  Args:
    module: export.PanopticDeepLabModule with a fixed input_size.
    quantization: 'float32' (none); 'float16' (weights stored as float16);
      'int8' (dynamic-range: weights int8, activations quantised on the fly
      where the kernels allow it; no calibration data needed).

  Raises:
    ValueError: an unknown quantization, or no fixed input size.
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f'quantization must be one of {", ".join(QUANTIZATIONS)}'
                     f', got {quantization!r}.')
  if not module.input_size:
    raise ValueError('A TFLite model has a fixed input size: export with '
                     'input_size=(height, width).')
  height, width = module.input_size
  module = _with_argmax(module)
  spec = tf.TensorSpec([1, height, width, 3], tf.uint8, name='images')
  predict = tf.function(module.predict_rgb, input_signature=[spec])
  # The converter keeps the variables of a SavedModel as TFLite resource
  # variables (left uninitialised by LiteRT's signature runner): they are
  # turned into constants first.
  concrete = predict.get_concrete_function()
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  holder = tf.Module()
  # The frozen function returns a flat list: the names are put back.
  holder.serve = tf.function(
      lambda images: tf.nest.pack_sequence_as(
          concrete.structured_outputs, tf.nest.flatten(frozen(images))),
      input_signature=[spec])
  with tempfile.TemporaryDirectory() as scratch:
    path = os.path.join(scratch, 'saved_model')
    tf.saved_model.save(holder, path,
                        signatures={'serving_default': holder.serve},
                        options=export.SERVING_SAVE_OPTIONS)
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != 'float32':
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == 'float16':
      converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _with_argmax(module: export.PanopticDeepLabModule
                 ) -> export.PanopticDeepLabModule:
  """The module with its post-processor's semantic argmax as
  TFLITE_SEMANTIC_ARGMAX (a PanopticDeepLabPostProcessor, the one with
  options; any other post-processor is kept as it is)."""
  replaced = getattr(module.post_processor, 'replaced', None)
  if replaced is None:
    return module
  return export.PanopticDeepLabModule(
      module.model, replaced(semantic_argmax=TFLITE_SEMANTIC_ARGMAX),
      module.options, module.input_size)


def tflite_from_config(config_path: 'config_lib.ConfigSource',
                       checkpoint_path: str,
                       output_path: str, quantization: str = 'float32',
                       overwrite: bool = False,
                       eval_scales: Sequence[float] | None = None,
                       add_flipped_images: bool | None = None,
                       input_size: Sequence[int] | None = None) -> str:
  """Writes the config's restored model as a .tflite file.

  The file is written whole or not at all (atomic.write_file).

  Args:
    config_path: the experiment textproto, or a config.ConfigFile (its path
      and command-line overrides).
    checkpoint_path: see export.restored_model.
    output_path: the .tflite file (its folder is created).
    quantization: see convert.
    overwrite: replace an existing file.
    eval_scales, add_flipped_images: see export.export_from_config.
    input_size: (height, width) the model takes; None: the eval crop size.

  Returns:
    The path written.

  Raises:
    FileExistsError: `output_path` exists and overwrite is False.
    ValueError: an unknown quantization; see also export.restored_model.
  """
  export.check_output_free(output_path, overwrite)
  if quantization not in QUANTIZATIONS:
    raise ValueError(f'--tflite must be one of '
                     f'{", ".join(QUANTIZATIONS)}, got {quantization!r}.')
  module, _ = export.fixed_size_module(config_path, checkpoint_path,
                                       eval_scales, add_flipped_images,
                                       input_size)
  data = convert(module, quantization)
  export.make_parent_folder(output_path)
  atomic.write_file(output_path, data)
  return output_path
