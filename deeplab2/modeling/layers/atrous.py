"""Stride-1 'same' atrous (dilated) convolution, computed the cheaper of two
equal ways.

TF runs a dilated conv as space-to-batch around an undilated one: it pads
the feature map by the dilated kernel's reach, rounds it up to a multiple of
the rate and convolves all of it. When the rate is large against the map
(ASPP's rates at a training crop: 6 on Panoptic-DeepLab's 9 x 9 res5 of a
129 x 129 crop, 9 on the 17 x 33 res5 of a 513 x 1025 crop), most of that
work multiplies padding, and the backward pass of those small batched maps
is slow on CPUs (5x and 3.7x slower than the alternative, measured on a
2-core AMD EPYC without oneDNN).

The alternative sums one matrix product per kernel tap over the rows and
columns where that tap reads the image, so it does only the real work, as
k * k products and pads instead of one fused conv. Per multiply-add the
products cost about what the fused conv does on large maps (1.0 to 1.5x on
a 2-core Xeon with AVX-512, oneDNN on or off, for ASPP's 2048 into 256
channels at 17 x 33 and 33 x 65), more on small ones, where each op's
fixed cost counts. `dilated_conv2d` takes them where the padded grid is
more than _TAPS_COST times the taps' work and that saves at least
_MIN_SAVING multiply-adds, decided from the map's size and the channels
(from the static shape when known, at run time otherwise), so the same
sizes always take the same path. Both compute the same sum; their float
results differ by rounding only (relative 1e-6).
"""

import keras
import tensorflow as tf

# The taps' cost per multiply-add against the fused conv's, as a fraction
# (numerator, denominator) so that run-time sizes stay integers. It was 4
# until measured on ASPP's sizes (docs/training.md): space-to-batch then
# took rates 3 and 6 at both the training crop and the evaluation size,
# 1.3 to 2.4x slower than the taps there.
_TAPS_COST = (5, 4)
# The taps' k * k products and pads cost more ops to trace, optimise and
# launch: they are taken only where they save at least this many
# multiply-adds per image (a 33 x 33 test model's ASPP would save a few
# hundred thousand and trace 2 s slower).
_MIN_SAVING = 1 << 24


def _offsets(kernel_size, rate):
  center = (kernel_size - 1) // 2
  return [(i - center) * rate for i in range(kernel_size)]


def _grid_side(size, kernel_size, rate):
  """Side of the map space-to-batch convolves: padded by the reach of the
  dilated kernel, rounded up to a multiple of the rate."""
  return -(-(size + (kernel_size - 1) * rate) // rate) * rate


def _use_taps(height, width, kernel_size, rate, channels, maximum):
  """Whether the taps save enough work: the fused conv covers the whole
  padded grid with every tap (`channels`: input times output channels)."""
  offsets = _offsets(kernel_size, rate)
  taps_rows = sum(maximum(height - abs(o), 0) for o in offsets)
  taps_cols = sum(maximum(width - abs(o), 0) for o in offsets)
  grid = (_grid_side(height, kernel_size, rate) *
          _grid_side(width, kernel_size, rate) * kernel_size * kernel_size)
  numerator, denominator = _TAPS_COST
  return (grid * denominator - numerator * taps_rows * taps_cols) * (
      channels) >= _MIN_SAVING * denominator


def tap_regions(height, width, kernel_size, rate):
  """Per kernel tap (i, j): (input_rows, input_cols, output_rows,
  output_cols), the slices where the tap reads the image and the output
  pixels that read it; None for a tap that reads only padding (static
  sizes)."""
  maximum, minimum = max, min
  if not isinstance(height, int) or not isinstance(width, int):
    maximum, minimum = tf.maximum, tf.minimum
  offsets = _offsets(kernel_size, rate)
  regions = []
  for dy in offsets:
    rows = maximum(0, height - abs(dy))
    # Output pixel (y, x) reads input pixel (y + dy, x + dx); the output
    # rows start |dy| down for a negative offset (at most the whole map,
    # when the tap reads only padding).
    top = minimum(max(-dy, 0), height - rows)
    for dx in offsets:
      cols = maximum(0, width - abs(dx))
      left = minimum(max(-dx, 0), width - cols)
      if isinstance(rows * cols, int) and rows * cols == 0:
        regions.append(None)
        continue
      regions.append(((max(dy, 0), rows), (max(dx, 0), cols),
                      (top, rows), (left, cols)))
  return regions


def window(tensor, rows, cols):
  """tensor[:, rows, cols, :] for (start, length) pairs."""
  return tensor[:, rows[0]:rows[0] + rows[1], cols[0]:cols[0] + cols[1], :]


def _sum_of_taps(inputs, taps, regions, height, width):
  """Sum over the taps of window(inputs) @ tap, zero-padded to the output
  region it belongs to. taps: [k * k, C, F]; returns [B, H, W, F]."""
  output = None
  for tap, region in zip(tf.unstack(taps), regions):
    if region is None:
      continue
    in_rows, in_cols, out_rows, out_cols = region
    tap_window = window(inputs, in_rows, in_cols)
    window_shape = tf.shape(tap_window)
    product = tf.reshape(
        tf.matmul(tf.reshape(tap_window, [-1, window_shape[3]]), tap),
        tf.concat([window_shape[:3], tf.shape(tap)[1:]], 0))
    top, rows = out_rows
    left, cols = out_cols
    product = tf.pad(product, [[0, 0], [top, height - rows - top],
                               [left, width - cols - left], [0, 0]])
    output = product if output is None else output + product
  return output


def _by_taps(inputs, kernel, rate):
  """Sum over the kernel taps of the tap's matrix product, taken where the
  tap reads the image and zero-padded back to the map.

  Its gradient is written out: autodiff of the slices would write a zero
  map per tap and add them (StridedSliceGrad, a quarter of the synthetic
  config's training step). The input gradient is the same sum on the output
  gradient with the kernel mirrored and transposed; the kernel gradient,
  per tap, the window's transpose times the output gradient where the tap
  read the image.
  """
  height, width = inputs.shape[1], inputs.shape[2]
  if height is None or width is None:
    shape = tf.shape(inputs)
    height, width = shape[1], shape[2]
  kernel_size = kernel.shape[0]
  regions = tap_regions(height, width, kernel_size, rate)

  @tf.custom_gradient
  def taps_conv(inputs, kernel):
    taps = tf.reshape(kernel, [kernel_size * kernel_size, *kernel.shape[2:]])
    output = _sum_of_taps(inputs, taps, regions, height, width)

    def gradient(output_gradient):
      mirrored = tf.transpose(tf.reverse(taps, [0]), [0, 2, 1])
      input_gradient = _sum_of_taps(output_gradient, mirrored, regions,
                                    height, width)
      channels_in, channels_out = kernel.shape[2], kernel.shape[3]
      tap_gradients = []
      for region in regions:
        if region is None:
          tap_gradients.append(tf.zeros([channels_in, channels_out],
                                        kernel.dtype))
          continue
        in_rows, in_cols, out_rows, out_cols = region
        tap_gradients.append(tf.matmul(
            tf.reshape(window(inputs, in_rows, in_cols), [-1, channels_in]),
            tf.reshape(window(output_gradient, out_rows, out_cols),
                       [-1, channels_out]),
            transpose_a=True))
      return input_gradient, tf.reshape(tf.stack(tap_gradients),
                                        tf.shape(kernel))

    return output, gradient

  # A variable read inside would make custom_gradient ask for the
  # variables' gradients itself: read it here.
  return taps_conv(inputs, tf.convert_to_tensor(kernel))


def _by_space_to_batch(inputs, kernel, rate):
  # tf.nn.convolution, not conv2d: without oneDNN (AMD CPUs) TF's CPU
  # Conv2DBackpropInput refuses dilations > 1; convolution runs a dilated
  # conv as space-to-batch around an undilated one, which every device
  # can differentiate.
  return tf.nn.convolution(inputs, kernel, padding='SAME', dilations=rate)


def dilated_conv2d(inputs, kernel, rate):
  """'same' stride-1 convolution of float [B, H, W, C] with kernel
  [k, k, C, F] (k odd) at atrous `rate`; returns [B, H, W, F]."""
  kernel_size = kernel.shape[0]
  channels = kernel.shape[2] * kernel.shape[3]
  if rate == 1:
    return tf.nn.convolution(inputs, kernel, padding='SAME')
  height, width = inputs.shape[1], inputs.shape[2]
  if height is not None and width is not None:
    if _use_taps(height, width, kernel_size, rate, channels, max):
      return _by_taps(inputs, kernel, rate)
    return _by_space_to_batch(inputs, kernel, rate)
  # int64: the grid times the channels passes 2**31 for large images.
  shape = tf.shape(inputs, out_type=tf.int64)
  return tf.cond(
      _use_taps(shape[1], shape[2], kernel_size, rate, channels, tf.maximum),
      lambda: _by_taps(inputs, kernel, rate),
      lambda: _by_space_to_batch(inputs, kernel, rate))


@keras.saving.register_keras_serializable(package='deeplab2')
class AtrousConv2D(keras.layers.Conv2D):
  """keras Conv2D (stride 1, 'same', square odd kernel, channels last) whose
  dilated convolution is dilated_conv2d. Its variables and configuration
  are Conv2D's."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if (self.strides != (1, 1) or self.padding != 'same' or
        self.data_format != 'channels_last' or self.groups != 1 or
        self.kernel_size[0] != self.kernel_size[1] or
        self.kernel_size[0] % 2 != 1 or
        self.dilation_rate[0] != self.dilation_rate[1]):
      raise ValueError(
          'AtrousConv2D takes stride 1, "same" padding, channels_last, one '
          'group and a square odd kernel with one rate; got strides '
          f'{self.strides}, padding {self.padding!r}, kernel '
          f'{self.kernel_size}, dilation_rate {self.dilation_rate}.')

  def convolution_op(self, inputs, kernel):
    return dilated_conv2d(inputs, kernel, self.dilation_rate[0])
