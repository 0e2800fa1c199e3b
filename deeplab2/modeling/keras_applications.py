"""Restores a backbone from a Keras Applications weights file.

Users download ImageNet weights themselves (nothing is fetched here) and
name the file in `initial_checkpoint`: `.weights.h5` (Keras 3) or the legacy
`.h5` files Keras Applications publish, with or without the classification
top. The file is read by building the Keras model with `weights=None` and
`load_weights`; then every Keras tensor is mapped to exactly one variable of
our backbone:

- `ResNet50` -> `resnet50`. Keras convs carry a bias and our convs do not:
  each bias is folded into the following batch norm's moving mean, which
  gives the same outputs. Keras ResNet50 expects Caffe inputs (BGR, mean
  subtracted, 0..255) while our model feeds RGB in [-1, 1]: the stem kernel
  is scaled by 127.5 with its input channels reversed, and the mean shift is
  folded into the stem's moving mean (exact away from the image border,
  where zero padding differs). The max-pool and the stride placement differ
  by design (deeplab2's ResNet-50); the weights keep their shapes.
- `MobileNetV3Small` / `MobileNetV3Large` -> `mobilenet_v3_small` /
  `mobilenet_v3_large`. Same input convention. Keras gates its
  squeeze-and-excite with a hard sigmoid, deeplab2 (and we) with a sigmoid.

The classification top (`predictions`; `conv_2` and `logits`) has no
counterpart: it is reported as ignored. Any other Keras tensor without a
variable, or a variable of another shape, is an error naming it.
"""

import dataclasses
import warnings

import keras
import numpy as np

from deeplab2.modeling.backbones import mobilenet

# Keras ResNet50's Caffe preprocessing: BGR means.
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
_RESNET50_BLOCKS = (3, 4, 6, 3)


@dataclasses.dataclass
class KerasRestoreReport:
  """What a restore did.

  Attributes:
    application: the Keras Applications model read, e.g. 'ResNet50'.
    restored: Keras weight paths assigned to a backbone variable (conv
      biases: folded into a moving mean).
    ignored: Keras weight paths of the classification top.
    initialised: paths of our model variables left as initialised (the
      decoders and heads: a backbone variable here is an error).
  """
  application: str
  restored: list
  ignored: list
  initialised: list = dataclasses.field(default_factory=list)


def is_keras_weights_file(path):
  return path.endswith('.h5')


def _load_keras_model(builder, path):
  """The Keras model with the file's weights, with or without its top.

  Keras' load_weights only warns when parts of a file do not fit ("Skipping
  ... freshly-initialized"); such a load counts as a failure here.
  """
  errors = []
  for include_top in (True, False):
    model = builder(weights=None, include_top=include_top,
                    input_shape=(224, 224, 3))
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      try:
        model.load_weights(path)
      except (ValueError, KeyError, OSError) as e:
        errors.append(f'include_top={include_top}: {e}')
        continue
    skipped = [str(w.message) for w in caught
               if 'Skipping' in str(w.message) or
               'freshly-initialized' in str(w.message)]
    if not skipped:
      return model
    errors.append(f'include_top={include_top}: {skipped[0]}')
  raise ValueError(f'{path}: not a {builder.__name__} weights file '
                   f'({"; ".join(errors)[:600]}).')


class _Plan:
  """Collects (keras weight, our variable, value) assignments."""

  def __init__(self, keras_model):
    self.layers = {layer.name: layer for layer in keras_model.layers}
    self.assignments = []

  def weights(self, name):
    if name not in self.layers:
      raise ValueError(f'The Keras model has no layer "{name}".')
    return self.layers[name].weights

  def assign(self, keras_weight, variable, value=None):
    value = np.asarray(keras_weight.numpy() if value is None else value)
    if tuple(value.shape) != tuple(variable.shape):
      raise ValueError(f'Keras {keras_weight.path} has shape '
                       f'{tuple(value.shape)} but {variable.path} has '
                       f'{tuple(variable.shape)}.')
    self.assignments.append((keras_weight, variable, value))

  def conv_bn(self, conv_name, bn_name, ours, kernel=None, mean_shift=None):
    """A Keras conv (+ optional bias) and BN into one of our ConvBnAct."""
    conv_weights = self.weights(conv_name)
    self.assign(conv_weights[0], ours.conv.kernel, kernel)
    shift = np.zeros(ours.filters, np.float32)
    if len(conv_weights) > 1:              # the bias, folded into the BN
      shift += conv_weights[1].numpy()
      self.assignments.append((conv_weights[1], None, None))
    if mean_shift is not None:
      shift += mean_shift
    self.batch_norm(bn_name, ours.batch_norm, shift)

  def batch_norm(self, bn_name, ours, mean_shift=None):
    gamma, beta, mean, variance = self.weights(bn_name)
    self.assign(gamma, ours.gamma)
    self.assign(beta, ours.beta)
    self.assign(mean, ours.moving_mean,
                mean.numpy() - (0 if mean_shift is None else mean_shift))
    self.assign(variance, ours.moving_variance)

  def plain(self, keras_name, ours):
    for keras_weight, variable in zip(self.weights(keras_name),
                                      ours.weights):
      self.assign(keras_weight, variable)


def _plan_resnet50(plan, backbone):
  if backbone.backbone_type != 'resnet' or tuple(
      len(stage) for stage in backbone.stages) != _RESNET50_BLOCKS:
    raise ValueError('Keras ResNet50 weights need backbone "resnet50" with '
                     'backbone_layer_multiplier 1.')
  kernel, _ = plan.weights('conv1_conv')
  keras_kernel = kernel.numpy()            # [7, 7, 3 (BGR), 64]
  # Our input u = x / 127.5 - 1 (RGB); Keras sees BGR(x) - mean.
  stem_kernel = 127.5 * keras_kernel[:, :, ::-1, :]
  offset = np.einsum('ijck,c->k', keras_kernel, 127.5 - _CAFFE_BGR_MEAN)
  plan.conv_bn('conv1_conv', 'conv1_bn', backbone.stem[0], stem_kernel,
               mean_shift=offset)
  for s, stage in enumerate(backbone.stages):
    for b, block in enumerate(stage):
      prefix = f'conv{s + 2}_block{b + 1}'
      for i, conv in enumerate(block.convs):
        plan.conv_bn(f'{prefix}_{i + 1}_conv', f'{prefix}_{i + 1}_bn', conv)
      if block.shortcut is not None:
        plan.conv_bn(f'{prefix}_0_conv', f'{prefix}_0_bn', block.shortcut)


def _plan_mobilenet_v3(plan, backbone):
  for index, block in enumerate(backbone.blocks):
    if index == 0:
      plan.conv_bn('conv', 'conv_bn', block)
    elif isinstance(block, mobilenet.InvertedBottleneck):
      prefix = 'expanded_conv' + ('' if index == 1 else f'_{index - 1}')
      if block.expand is not None:
        plan.conv_bn(f'{prefix}_expand', f'{prefix}_expand_bn', block.expand)
      plan.plain(f'{prefix}_depthwise', block.depthwise.depthwise_conv)
      plan.batch_norm(f'{prefix}_depthwise_bn', block.depthwise.batch_norm)
      if block.squeeze_excite is not None:
        plan.plain(f'{prefix}_squeeze_excite_conv',
                   block.squeeze_excite.reduce)
        plan.plain(f'{prefix}_squeeze_excite_conv_1',
                   block.squeeze_excite.expand)
      plan.conv_bn(f'{prefix}_project', f'{prefix}_project_bn',
                   block.project)
    else:
      plan.conv_bn('conv_1', 'conv_1_bn', block)


# backbone name -> (Keras application, planner, classification-top layers).
_APPLICATIONS = {
    'resnet50': (keras.applications.ResNet50, _plan_resnet50,
                 ('predictions',)),
    'mobilenet_v3_small': (keras.applications.MobileNetV3Small,
                           _plan_mobilenet_v3, ('conv_2', 'logits')),
    'mobilenet_v3_large': (keras.applications.MobileNetV3Large,
                           _plan_mobilenet_v3, ('conv_2', 'logits')),
}


def restore(model, path):
  """Assigns the backbone of a built `model` from a Keras weights file.

  Args:
    model: a built PanopticDeepLab whose backbone is one of `_APPLICATIONS`.
    path: the Keras weights file.

  Returns:
    KerasRestoreReport.

  Raises:
    ValueError: another backbone, an unreadable file, a Keras tensor without
      a variable or of another shape, a backbone variable left unassigned.
      Nothing is assigned in that case.
  """
  name = model.backbone.name
  if name not in _APPLICATIONS:
    raise ValueError(f'{path}: Keras Applications weights fit backbones '
                     f'{", ".join(sorted(_APPLICATIONS))}, not "{name}".')
  builder, planner, top = _APPLICATIONS[name]
  keras_model = _load_keras_model(builder, path)
  plan = _Plan(keras_model)
  planner(plan, model.backbone)
  used = {id(w) for w, _, _ in plan.assignments}
  ignored = [w.path for layer in keras_model.layers if layer.name in top
             for w in layer.weights]
  unmapped = [w.path for w in keras_model.weights
              if id(w) not in used and w.path not in ignored]
  if unmapped:
    raise ValueError(f'{path}: {len(unmapped)} Keras tensors map to no '
                     f'variable, e.g. {unmapped[:3]}.')
  assigned = {id(v) for _, v, _ in plan.assignments if v is not None}
  left = [v.path for v in model.backbone.weights if id(v) not in assigned]
  if left:
    raise ValueError(f'{path}: {len(left)} backbone variables get no Keras '
                     f'tensor, e.g. {left[:3]}.')
  for _, variable, value in plan.assignments:
    if variable is not None:
      variable.assign(value)
  return KerasRestoreReport(
      application=builder.__name__,
      restored=[w.path for w, _, _ in plan.assignments],
      ignored=ignored,
      initialised=[v.path for v in model.weights if id(v) not in assigned])
