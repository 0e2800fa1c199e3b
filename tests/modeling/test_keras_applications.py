"""Keras Applications weights restore the matching backbone through
initial_checkpoint: every Keras tensor lands in its mapped variable."""

import keras
import numpy as np
import pytest
from google.protobuf import text_format

from deeplab2 import config as config_lib
from deeplab2.modeling import keras_applications
from deeplab2.modeling.layers import normalization
from deeplab2.training import experiment
from conftest import tiny_config_text

BN = normalization.BatchNormOptions()


def _randomise(model, seed):
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    value = rng.normal(size=weight.shape)
    if 'variance' in weight.path:
      value = np.abs(value) + 0.5
    weight.assign(value.astype(np.float32))


def _config(backbone, data_dir='/unused'):
  config = config_lib.parse_experiment_text(tiny_config_text(data_dir))
  options = config.model_options.backbone
  options.name = backbone
  options.ClearField('backbone_width_multiplier')
  options.ClearField('backbone_layer_multiplier')
  options.ClearField('stem_width_multiplier')
  return config


def _keras_layer_weights(keras_model, name):
  return [w.numpy() for w in keras_model.get_layer(name).weights]


def test_resnet50_weights_land_in_the_mapped_variables(tmp_path,
                                                      zero_initializers):
  # Zero initial values (quick to make): _randomise sets every Keras weight,
  # and a variable the restore missed would stay 0.
  reference = keras.applications.ResNet50(weights=None)
  _randomise(reference, 0)
  path = str(tmp_path / 'resnet50.weights.h5')
  reference.save_weights(path)
  model = config_lib.build_model(_config('resnet50').model_options, BN,
                                 input_size=(33, 33))
  report = keras_applications.restore(model, path)
  assert report.application == 'ResNet50'
  assert report.ignored == ['predictions/kernel', 'predictions/bias']
  assert len(report.restored) == len(reference.weights) - 2
  backbone = model.backbone

  # A block conv: kernel as is, bias folded into the moving mean.
  kernel, bias = _keras_layer_weights(reference, 'conv3_block2_2_conv')
  gamma, beta, mean, variance = _keras_layer_weights(reference,
                                                     'conv3_block2_2_bn')
  conv = backbone.stages[1][1].convs[1]
  np.testing.assert_array_equal(conv.conv.kernel.numpy(), kernel)
  np.testing.assert_array_equal(conv.batch_norm.gamma.numpy(), gamma)
  np.testing.assert_array_equal(conv.batch_norm.beta.numpy(), beta)
  np.testing.assert_allclose(conv.batch_norm.moving_mean.numpy(),
                             mean - bias, rtol=1e-6)
  np.testing.assert_array_equal(conv.batch_norm.moving_variance.numpy(),
                                variance)
  shortcut_kernel, _ = _keras_layer_weights(reference, 'conv5_block1_0_conv')
  np.testing.assert_array_equal(
      backbone.stages[3][0].shortcut.conv.kernel.numpy(), shortcut_kernel)

  # The stem takes RGB in [-1, 1]: away from the border its conv + BN equals
  # Keras' on the Caffe-preprocessed image.
  image = np.random.default_rng(1).uniform(0, 255, (1, 41, 41, 3))
  image = image.astype(np.float32)
  caffe = image[..., ::-1] - keras_applications._CAFFE_BGR_MEAN  # pylint: disable=protected-access
  keras_stem = keras.Sequential([reference.get_layer('conv1_pad'),
                                 reference.get_layer('conv1_conv'),
                                 reference.get_layer('conv1_bn')])
  expected = keras_stem(caffe, training=False).numpy()
  got = backbone.stem[0].batch_norm(
      backbone.stem[0].conv(keras.ops.pad(image / 127.5 - 1.0,
                                          [[0, 0], [3, 3], [3, 3], [0, 0]])),
      training=False).numpy()
  # Keras' BN epsilon (1.001e-5) is not ours (1e-3): compare loosely.
  np.testing.assert_allclose(got[:, 2:-2, 2:-2], expected[:, 2:-2, 2:-2],
                             rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize('application,backbone', [
    (keras.applications.MobileNetV3Small, 'mobilenet_v3_small'),
    (keras.applications.MobileNetV3Large, 'mobilenet_v3_large')])
def test_mobilenet_v3_weights_land_in_the_mapped_variables(
    application, backbone, tmp_path, zero_initializers):
  reference = application(weights=None)
  _randomise(reference, 2)
  path = str(tmp_path / 'mobilenet.weights.h5')
  reference.save_weights(path)
  model = config_lib.build_model(_config(backbone).model_options, BN,
                                 input_size=(33, 33))
  report = keras_applications.restore(model, path)
  assert len(report.restored) + len(report.ignored) == len(reference.weights)
  assert report.ignored == ['conv_2/kernel', 'conv_2/bias', 'logits/kernel',
                            'logits/bias']
  # Every Keras tensor (bar the top) equals its variable: the mapping is
  # one to one, so the multisets of values agree.
  keras_values = sorted(float(np.sum(w.numpy())) for w in reference.weights
                        if w.path not in report.ignored)
  our_values = sorted(float(np.sum(w.numpy())) for w in model.backbone.weights)
  np.testing.assert_allclose(our_values, keras_values, rtol=1e-5, atol=1e-4)
  se = model.backbone.blocks[4].squeeze_excite
  np.testing.assert_array_equal(
      se.reduce.kernel.numpy(),
      reference.get_layer('expanded_conv_3_squeeze_excite_conv').kernel)


def test_initial_checkpoint_takes_a_keras_weights_file(tiny_dataset_dir,
                                                        tmp_path):
  reference = keras.applications.MobileNetV3Small(weights=None,
                                                  include_top=False)
  _randomise(reference, 3)
  path = str(tmp_path / 'notop.weights.h5')
  reference.save_weights(path)
  config = _config('mobilenet_v3_small', tiny_dataset_dir)
  config.model_options.initial_checkpoint = path
  config_path = tmp_path / 'keras_init.textproto'
  config_path.write_text(text_format.MessageToString(config))
  run = experiment.Experiment(str(config_path), str(tmp_path / 'model'))
  assert run.restore() is None
  stem = run.model.backbone.blocks[0]
  np.testing.assert_array_equal(stem.conv.kernel.numpy(),
                                reference.get_layer('conv').kernel.numpy())


def test_weights_of_another_network_are_refused(tmp_path, zero_initializers):
  reference = keras.applications.MobileNetV3Small(weights=None)
  path = str(tmp_path / 'small.weights.h5')
  reference.save_weights(path)
  model = config_lib.build_model(_config('mobilenet_v3_large').model_options,
                                 BN, input_size=(33, 33))
  with pytest.raises(ValueError, match='not a MobileNetV3Large weights file'):
    keras_applications.restore(model, path)
  beta = config_lib.build_model(_config('resnet50_beta').model_options, BN,
                                input_size=(33, 33))
  with pytest.raises(ValueError, match='Keras Applications weights fit '
                     'backbones mobilenet_v3_large, mobilenet_v3_small, '
                     'resnet50, not "resnet50_beta"'):
    keras_applications.restore(beta, path)


def test_legacy_h5_files_as_keras_applications_publish_them(tmp_path):
  """The downloadable ImageNet files are Keras 2 HDF5 weights, notop here."""
  import h5py  # pylint: disable=g-import-not-at-top
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top
  reference = keras.applications.MobileNetV3Small(weights=None,
                                                  include_top=False)
  _randomise(reference, 4)
  path = str(tmp_path / 'weights_mobilenet_v3_small_224_1.0_float_no_top.h5')
  with h5py.File(path, 'w') as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, reference)
  model = config_lib.build_model(_config('mobilenet_v3_small').model_options,
                                 BN, input_size=(33, 33))
  report = keras_applications.restore(model, path)
  assert report.ignored == []
  np.testing.assert_array_equal(
      model.backbone.blocks[-1].conv.kernel.numpy(),
      reference.get_layer('conv_1').kernel.numpy())
