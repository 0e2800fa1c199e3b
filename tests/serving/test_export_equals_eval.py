"""The exported SavedModel predicts what evaluation scores.

A tiny trained model is exported, then run in a fresh Python process that
never imports our package, through both signatures, on images smaller than,
equal to and larger than the eval crop (odd and even sides), for the plain
synthetic config and for a COCO-style config (resize to a range, test-time
augmentation). Its maps must equal the evaluator's own predictions for the
same images exactly, its float outputs within 1e-5.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from deeplab2 import config as config_lib
from deeplab2 import inference
from deeplab2.data import input_pipeline
from deeplab2.data import synthetic
from deeplab2.data import tfrecord
from deeplab2.serving import export
from deeplab2.serving import predictor as predictor_lib
from deeplab2.serving import onnx_export
from deeplab2.serving import tflite
from deeplab2.training import evaluator as evaluator_lib
from deeplab2.training import modes
from conftest import tiny_config_text

# (height, width): smaller than the 33 x 33 crop (odd, even), equal, larger
# (odd, even); two different images of each size.
SIZES = ((29, 23), (30, 32), (33, 33), (50, 41), (34, 66))
INT_KEYS = ('panoptic_pred', 'semantic_pred', 'instance_pred')
FLOAT_KEYS = ('semantic_probs', 'center_heatmap', 'offset_map',
              'instance_center_pred', 'instance_scores',
              'instance_score_list')

# python -c _SERVE_SCRIPT INPUTS.npz SAVED_MODEL OUT.npz [SAVED_MODEL OUT.npz]...
_SERVE_SCRIPT = """
import sys, numpy as np, tensorflow as tf
inputs = np.load(sys.argv[1])
for saved_model, out_path in zip(sys.argv[2::2], sys.argv[3::2]):
  loaded = tf.saved_model.load(saved_model)
  single = loaded.signatures['serving_default']
  batch = loaded.signatures['serving_batch']
  results = {}
  for name in inputs.files:
    for key, value in single(image=tf.constant(inputs[name][0])).items():
      results[f'{name}/single/{key}'] = value.numpy()
    for key, value in batch(images=tf.constant(inputs[name])).items():
      for i in range(len(inputs[name])):
        results[f'{name}/batch{i}/{key}'] = value.numpy()[i]
  np.savez(out_path, **results)
assert not any(m.startswith('deeplab2') for m in sys.modules), 'imported us'
"""


def _images():
  """{size name: (uint8 [2, h, w, 3], int32 [2, h, w] panoptic labels)},
  windows of two synthetic 129 x 129 samples."""
  samples = [synthetic.generate_sample(np.random.default_rng(seed), 129)
             for seed in (5, 6)]
  images = {}
  for height, width in SIZES:
    top, left = 7, 11
    crops = [(image[top:top + height, left:left + width],
              panoptic[top:top + height, left:left + width])
             for image, panoptic, _ in samples]
    images[f'{height}x{width}'] = (np.stack([c[0] for c in crops]),
                                   np.stack([c[1] for c in crops]))
  return images


def _write_config(path, data_dir, resized):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir,
                                                             steps=2))
  # Two steps leave the heatmap low: a low threshold keeps instances to
  # compare.
  config.evaluator_options.center_score_threshold = 0.0
  config.seed = 7    # the same weights in every run (the int8 pin)
  if resized:
    # COCO's scheme at 33 px: longest side to 33, sides 16 k + 1, crop 33.
    options = config.eval_dataset_options
    options.min_resize_value[:] = [33]
    options.max_resize_value[:] = [33]
    options.resize_factor = 16
    config.evaluator_options.eval_scales[:] = [0.75, 1.25]
    config.evaluator_options.add_flipped_images = True
  path.write_text(text_format.MessageToString(config))
  return str(path)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_dataset_dir):
  root = tmp_path_factory.mktemp('export_equals_eval')
  config_path = _write_config(root / 'plain.textproto', tiny_dataset_dir,
                              resized=False)
  model_dir = str(root / 'model')
  modes.run('train', config_path, model_dir)
  return root, model_dir


@pytest.fixture(scope='module')
def exports(trained, tiny_dataset_dir):
  """{resized: (config path, SavedModel folder)} of the plain config and the
  resized one with test-time augmentation, exported once."""
  root, model_dir = trained
  result = {}
  for resized, name in ((False, 'plain'), (True, 'resized')):
    config_path = _write_config(root / f'export-{name}.textproto',
                                tiny_dataset_dir, resized=resized)
    result[resized] = config_path, export.export_from_config(
        config_path, model_dir, str(root / f'export-{name}'))
  return result


@pytest.fixture(scope='module')
def plain_export(exports):
  return exports[False]


@pytest.fixture(scope='module')
def served_outputs(trained, exports):
  """{resized: the SavedModel's outputs for _images()}, both models served
  by one fresh process that never imports our package."""
  root, _ = trained
  inputs = root / 'inputs.npz'
  np.savez(inputs, **{k: v[0] for k, v in _images().items()})
  outputs = {resized: root / f'served-{resized}.npz' for resized in exports}
  command = [sys.executable, '-c', _SERVE_SCRIPT, str(inputs)]
  for resized, (_, export_dir) in exports.items():
    command += [export_dir, str(outputs[resized])]
  subprocess.run(command, check=True, cwd=str(root),
                 env={**os.environ, 'PYTHONPATH': ''})
  return {resized: np.load(path) for resized, path in outputs.items()}


def _evaluator_maps(parts, model, images, root):
  """{name-i: maps} of the evaluator, one image per batch, the images of
  each size with their own crop: the config's, or for a larger image the
  size the export pads to."""
  options = parts.inference_options()
  evaluator = evaluator_lib.Evaluator(
      tf.distribute.get_strategy(), model, parts.build_post_processor(),
      parts.label_spec, tta=options.tta)
  captured = {}
  evaluator.prediction_writers = [
      lambda filename, maps, scores: captured.__setitem__(filename, maps)]
  for name, (batch_images, labels) in images.items():
    record = str(root / f'{parts.config.experiment_name}-{name}.tfrecord')
    height, width = labels.shape[1:]
    with tf.io.TFRecordWriter(record) as writer:
      for i in range(len(batch_images)):
        writer.write(tfrecord.make_example(
            tfrecord.encode_png(batch_images[i]), 'png', height, width,
            f'{name}-{i}.png', labels[i]).SerializeToString())
    size = inference.processed_size([height, width], options)
    pipeline = dataclasses.replace(
        parts.pipeline_options('eval'), file_patterns=(record,),
        batch_size=1, crop_size=tuple(inference.padded_size(size, options)))
    evaluator.evaluate(input_pipeline.make_dataset(pipeline))
  return {name.rsplit('.', 1)[0]: maps for name, maps in captured.items()}


@pytest.mark.parametrize('resized', [False, True], ids=['plain', 'resized_tta'])
def test_both_signatures_equal_the_evaluator_in_a_fresh_process(
    trained, exports, served_outputs, resized):
  root, model_dir = trained
  config_path, export_dir = exports[resized]
  parts = config_lib.load_experiment(config_path)
  options = parts.inference_options()
  assert options.resizes == options.tta.flip == resized
  assert export.read_metadata(export_dir)['inference_options']['tta'] == {
      'scales': list(options.tta.scales), 'flip': options.tta.flip}

  images = _images()
  served = served_outputs[resized]
  model = export.restored_model(parts, model_dir)
  expected = _evaluator_maps(parts, model, images, root)
  assert len(expected) == 2 * len(SIZES)
  checked_instances = 0
  for name, (batch_images, _) in images.items():
    for i in range(len(batch_images)):
      want = expected[f'{name}-{i}']
      for signature in ('single', f'batch{i}') if i == 0 else (f'batch{i}',):
        prefix = f'{name}/{signature}/'
        for key in INT_KEYS:
          got = served[prefix + key]
          assert got.shape == batch_images[i].shape[:2], (prefix, key)
          np.testing.assert_array_equal(got, want[key],
                                        err_msg=prefix + key)
        for key in FLOAT_KEYS:
          np.testing.assert_allclose(served[prefix + key], want[key],
                                     rtol=0, atol=1e-5, err_msg=prefix + key)
      checked_instances += int(want['instance_pred'].max() > 0)
  # Instances were found, so the instance maps were compared.
  assert checked_instances >= len(SIZES), checked_instances


# Pixel accuracy of the int8 (dynamic-range) model's panoptic map against
# the SavedModel's on the images below, as measured when this test was
# written; the test fails if it drops more than 0.02 below.
INT8_PANOPTIC_AGREEMENT = 0.9106


def test_tflite_float32_equals_the_saved_model_and_int8_agreement(
    trained, plain_export, capsys):
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  root, model_dir = trained
  config_path, export_dir = plain_export
  serve = tf.saved_model.load(export_dir).signatures['serving_default']
  images = [synthetic.generate_sample(np.random.default_rng(seed), 33)[0]
            for seed in range(20, 28)]
  expected = [serve(image=tf.constant(image)) for image in images]
  agreement = {}
  for quantization in ('float32', 'int8'):
    path = tflite.tflite_from_config(
        config_path, model_dir, str(root / f'{quantization}.tflite'),
        quantization)
    runner = litert.Interpreter(model_path=path).get_signature_runner()
    same = total = 0
    for image, want in zip(images, expected):
      got = runner(images=image[None])
      assert got['panoptic_pred'].shape == (1, 33, 33)
      if quantization == 'float32':
        for key in ('panoptic_pred', 'semantic_pred', 'instance_pred'):
          np.testing.assert_array_equal(got[key][0], want[key].numpy())
        np.testing.assert_allclose(got['semantic_probs'][0],
                                   want['semantic_probs'].numpy(), atol=1e-5)
      same += int((got['panoptic_pred'][0] ==
                   want['panoptic_pred'].numpy()).sum())
      total += got['panoptic_pred'][0].size
    agreement[quantization] = same / total
  with capsys.disabled():
    print(f'\nTFLite panoptic pixel agreement with the SavedModel: '
          f'{agreement}')
  assert agreement['float32'] == 1.0
  assert agreement['int8'] >= INT8_PANOPTIC_AGREEMENT - 0.02, agreement
  # Our Predictor on the float32 model (its classes from the export's
  # descriptor) gives the SavedModel's maps too.
  tflite_predictor = predictor_lib.Predictor.from_file(
      str(root / 'float32.tflite'),
      os.path.join(export_dir, 'assets', export.DESCRIPTOR_FILE))
  np.testing.assert_array_equal(tflite_predictor(images[0]).panoptic,
                                expected[0]['panoptic_pred'].numpy())


# Pixel accuracy of OpenVINO's bfloat16 panoptic maps against the
# SavedModel's on the images below where the CPU has bfloat16 units, once
# each bf16 segment takes the id of the SavedModel segment it overlaps most
# (bfloat16 center scores tie, which renumbers instances), as measured when
# this test was written (AMD EPYC, AVX512_BF16); the test fails if it drops
# more than 0.02 below.
OPENVINO_BF16_MATCHED_AGREEMENT = 0.9214


def _same_after_matching(got, want):
  """Pixels of `got` equal to `want` once each segment id of `got` is
  replaced by the `want` id it overlaps most."""
  pairs, counts = np.unique(np.stack([got.ravel(), want.ravel()]), axis=1,
                            return_counts=True)
  best = {}
  for (got_id, want_id), count in zip(pairs.T, counts):
    if count > best.get(got_id, (0, None))[0]:
      best[got_id] = (count, want_id)
  return int(sum(count for count, _ in best.values()))


# python -c _RUNTIMES_SCRIPT IMAGES.npz MODEL.onnx MODEL.xml OUT.npz: both
# runtimes, in a process that never imports our package.
_RUNTIMES_SCRIPT = """
import sys, numpy as np, onnxruntime, openvino
images = np.load(sys.argv[1])['images']
session = onnxruntime.InferenceSession(sys.argv[2])
core = openvino.Core()
model = core.read_model(sys.argv[3])
compiled = {precision: core.compile_model(
    model, 'CPU', {'INFERENCE_PRECISION_HINT': precision})
            for precision in ('f32', 'bf16')}
names = [o.get_any_name() for o in model.outputs]
results = {}
for i, image in enumerate(images):
  outputs = session.run(None, {'images': image[None]})
  for output, value in zip(session.get_outputs(), outputs):
    results[f'onnx/{i}/{output.name}'] = value[0]
  for precision, runtime in (('f32', 'openvino'), ('bf16', 'openvino_bf16')):
    got = compiled[precision]({0: image[None]})
    for name, output in zip(names, compiled[precision].outputs):
      results[f'{runtime}/{i}/{name}'] = got[output][0]
# bf16 where the CPU has bfloat16 units, f32 elsewhere.
results['bf16_used'] = np.array(str(
    compiled['bf16'].get_property('INFERENCE_PRECISION_HINT')))
metadata = session.get_modelmeta().custom_metadata_map
results['descriptor'] = np.array(metadata['deeplab2_descriptor'])
np.savez(sys.argv[4], **results)
assert not any(m.startswith('deeplab2') for m in sys.modules), 'imported us'
"""


def test_onnx_and_openvino_equal_the_saved_model(trained, plain_export,
                                                 capsys):
  root, model_dir = trained
  config_path, export_dir = plain_export
  serve = tf.saved_model.load(export_dir).signatures['serving_default']
  images = np.stack([synthetic.generate_sample(np.random.default_rng(seed),
                                               33)[0]
                     for seed in range(40, 48)])
  onnx_path = onnx_export.onnx_from_config(config_path, model_dir,
                                           str(root / 'model.onnx'))
  xml_path = onnx_export.openvino_from_config(config_path, model_dir,
                                              str(root / 'model.xml'))
  assert sorted(os.listdir(root)).count('model.bin') == 1
  np.savez(root / 'images.npz', images=images)
  subprocess.run([sys.executable, '-c', _RUNTIMES_SCRIPT,
                  str(root / 'images.npz'), onnx_path, xml_path,
                  str(root / 'runtimes.npz')], check=True, cwd=str(root),
                 env={**os.environ, 'PYTHONPATH': ''})
  got = np.load(root / 'runtimes.npz')
  assert json.loads(str(got['descriptor']))['class_names'][2] == 'disc'
  agreement, matched = {}, {}
  for runtime in ('onnx', 'openvino', 'openvino_bf16'):
    same = same_matched = total = 0
    for i, image in enumerate(images):
      want = serve(image=tf.constant(image))
      for key in INT_KEYS:
        same_key = got[f'{runtime}/{i}/{key}'] == want[key].numpy()
        if key == 'panoptic_pred':
          same += int(same_key.sum())
          total += same_key.size
      same_matched += _same_after_matching(
          got[f'{runtime}/{i}/panoptic_pred'], want['panoptic_pred'].numpy())
      if runtime != 'openvino_bf16':
        np.testing.assert_allclose(got[f'{runtime}/{i}/semantic_probs'],
                                   want['semantic_probs'].numpy(), atol=1e-4)
    agreement[runtime] = same / total
    matched[runtime] = float(same_matched / total)
  bf16_used = 'bfloat16' in str(got['bf16_used'])
  with capsys.disabled():
    print(f'\nONNX / OpenVINO panoptic pixel agreement with the SavedModel: '
          f'{agreement}; after matching segment ids: {matched} (bfloat16 '
          f'units used: {bf16_used})')
  assert agreement['onnx'] == agreement['openvino'] == 1.0, agreement
  if bf16_used:
    assert matched['openvino_bf16'] >= (
        OPENVINO_BF16_MATCHED_AGREEMENT - 0.02), matched
  else:
    assert agreement['openvino_bf16'] == 1.0, agreement
  # Our Predictor takes each by its file, the classes from its metadata.
  saved = predictor_lib.Predictor.from_saved_model(export_dir)(images[0])
  for path in (onnx_path, xml_path):
    result = predictor_lib.Predictor.from_file(path)(images[0])
    np.testing.assert_array_equal(result.panoptic, saved.panoptic)
    assert [(s.id, s.area, s.bbox) for s in result.segments] == [
        (s.id, s.area, s.bbox) for s in saved.segments]
  bf16 = predictor_lib.Predictor.from_file(xml_path,
                                           openvino_precision='bf16')
  np.testing.assert_array_equal(bf16(images[0]).panoptic,
                                got['openvino_bf16/0/panoptic_pred'])
  with pytest.raises(ValueError, match=r"model\.onnx: openvino_precision="
                     r"'bf16' is for OpenVINO models \(\.xml\) only"):
    predictor_lib.Predictor.from_file(onnx_path, openvino_precision='bf16')
  with pytest.raises(ValueError, match=r"precision='f16': OpenVINO precision "
                     'must be one of f32, bf16'):
    predictor_lib.Predictor.from_openvino(xml_path, precision='f16')
  with pytest.raises(FileExistsError, match=r'model\.onnx exists; pass '
                     r'overwrite=True'):
    onnx_export.onnx_from_config(config_path, model_dir, onnx_path)


def test_a_path_of_no_exported_model_is_named(tmp_path):
  (tmp_path / 'model.pb').write_bytes(b'')
  for path in (tmp_path, tmp_path / 'model.pb', tmp_path / 'missing.onnx'):
    with pytest.raises(ValueError, match=r'is no exported model: give a '
                       r'SavedModel folder \(with saved_model\.pb\), or a '
                       r'\.tflite, \.onnx or OpenVINO \.xml file\.'):
      predictor_lib.Predictor.from_file(str(path))


def test_a_missing_optional_package_names_its_extra():
  with pytest.raises(ImportError) as error:
    onnx_export.optional_module('no_such_runtime', 'onnx', 'ONNX export')
  assert str(error.value).startswith(
      'ONNX export needs the optional package no_such_runtime (No module '
      'named ')
  assert str(error.value).endswith(
      '; install it with: pip install "deeplab2-tf2[onnx]"')


def test_predictor_from_experiment_equals_the_saved_model(trained,
                                                          plain_export):
  _, model_dir = trained
  config_path, export_dir = plain_export
  image = synthetic.generate_sample(np.random.default_rng(30), 41)[0]
  saved = predictor_lib.Predictor.from_saved_model(export_dir)(image)
  # A model_dir: its newest checkpoint, as the export took.
  in_process = predictor_lib.Predictor.from_experiment(config_path,
                                                       model_dir)(image)
  np.testing.assert_array_equal(in_process.panoptic, saved.panoptic)
  np.testing.assert_allclose(in_process.maps['semantic_probs'],
                             saved.maps['semantic_probs'], rtol=0, atol=1e-5)
  assert [s.id for s in in_process.segments] == [s.id for s in saved.segments]


def test_the_tflite_model_takes_argmax_and_keeps_the_other_options(
    tiny_saved_model):
  _, parts = tiny_saved_model
  processor = parts.build_post_processor()
  module = export.PanopticDeepLabModule(parts.build_model(), processor,
                                        parts.inference_options(), (33, 33))
  converted = tflite._with_argmax(module)  # pylint: disable=protected-access
  assert processor.options.semantic_argmax == 'top_k'
  assert converted.post_processor.options == dataclasses.replace(
      processor.options, semantic_argmax=tflite.TFLITE_SEMANTIC_ARGMAX)
  assert tflite.TFLITE_SEMANTIC_ARGMAX == 'argmax'
  assert converted.options == module.options
  assert converted.input_size == (33, 33)



@pytest.mark.parametrize('grouping_mode', [onnx_export.ONNX_GROUPING,
                                           onnx_export.OPENVINO_GROUPING])
def test_onnx_instance_scores_when_every_center_slot_is_an_instance(
    grouping_mode):
  # Two centers and keep_k_centers 2: both slots hold an instance, and stuff
  # pixels belong to none. The scores' segment sum once sent those pixels
  # to segment -1, which TF drops and ONNX's ScatterND (the converters'
  # segment sum) reads as the last slot, inflating its score.
  import onnxruntime  # pylint: disable=g-import-not-at-top
  import tf2onnx  # pylint: disable=g-import-not-at-top
  from deeplab2 import common  # pylint: disable=g-import-not-at-top
  from deeplab2 import label_spec  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import post_processor  # pylint: disable=g-import-not-at-top
  spec = label_spec.LabelSpec(num_classes=4, ignore_label=255,
                              label_divisor=1000, thing_class_ids=(2, 3))
  processor = post_processor.PanopticDeepLabPostProcessor(
      post_processor.PostProcessorOptions(
          label_spec=spec, keep_k_centers=2, nms_kernel=3,
          grouping_mode=grouping_mode))
  semantic = np.zeros((17, 17), np.int64)
  semantic[:8, 9:] = 2
  semantic[9:, 9:] = 3
  logits = np.eye(4, dtype=np.float32)[semantic][None] * 3.0
  heatmap = np.zeros((1, 17, 17), np.float32)
  heatmap[0, 3, 12] = heatmap[0, 13, 13] = 0.9
  inputs = [logits, heatmap, np.zeros((1, 17, 17, 2), np.float32)]

  def scores(logits, heatmap, offsets):
    return processor({common.PRED_SEMANTIC_LOGITS: logits,
                      common.PRED_CENTER_HEATMAP: heatmap,
                      common.PRED_OFFSET_MAP: offsets})[
                          common.PRED_INSTANCE_SCORES]

  signature = [tf.TensorSpec(a.shape, tf.float32) for a in inputs]
  want = tf.function(scores, input_signature=signature)(*inputs).numpy()
  model, _ = tf2onnx.convert.from_function(
      tf.function(scores), input_signature=signature, opset=onnx_export.OPSET,
      custom_op_handlers={'UnsortedSegmentSum': (
          onnx_export._segment_sum_as_scatter, [])})  # pylint: disable=protected-access
  session = onnxruntime.InferenceSession(model.SerializeToString())
  got = session.run(None, dict(zip(
      [i.name for i in session.get_inputs()], inputs)))[0]
  # Each instance's pixels all have its class, at probability
  # e^3 / (e^3 + 3), times its center's score.
  probability = np.exp(3.0) / (np.exp(3.0) + 3.0)
  np.testing.assert_allclose(want, [[0.9 * probability] * 2], rtol=1e-5)
  np.testing.assert_allclose(got, want, rtol=1e-5)
