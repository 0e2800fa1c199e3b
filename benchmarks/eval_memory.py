"""Peak memory of evaluating full-resolution images, and its growth.

Evaluates the ResNet-50 Cityscapes config (random weights) on synthetic
1024 x 2048 images with their labels, padded to the eval crop 1025 x 2049
as the eval pipeline pads them, through the same Evaluator as
`trainer/train.py --mode=eval`: model (single scale, or with flipped
inputs), post-processing, PQ, mIoU and mask AP. Each (mode, number of
images) runs in a fresh process and reports its peak resident memory
(VmHWM) and its resident memory (VmRSS) as each image enters the
evaluator; equal peaks for few and many images show that memory does not
grow with the eval set. Prints the machine (CPU model, cores and the
workers' oneDNN state) and a Markdown table; --json also writes the rows
and the machine to a file.

  python benchmarks/eval_memory.py [--num_images=2,8] [--modes=single,flip]
      [--json=PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = os.path.join(_ROOT, 'configs', 'cityscapes', 'panoptic_deeplab',
                       'resnet50_os32_merge_with_pure_tf_func.textproto')


def _status_gib(field):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) / 2**20
  raise RuntimeError(f'{field} not in /proc/self/status')


def _synthetic_example(rng, height, width, crop, spec):
  """One padded eval example: an image and a label of a few segments."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab2 import common  # pylint: disable=g-import-not-at-top
  image = np.zeros((1, crop[0], crop[1], 3), np.float32)
  image[0, :height, :width] = rng.uniform(0, 255, (height, width, 3))
  label = np.full((1, crop[0], crop[1]), spec.void_label, np.int32)
  blocks = rng.integers(0, 11, size=(height // 128 + 1, width // 128 + 1))
  semantic = np.repeat(np.repeat(blocks, 128, 0), 128, 1)[:height, :width]
  panoptic = semantic * spec.label_divisor
  for instance in range(1, 21):                   # 20 cars
    y, x = rng.integers(0, height - 100), rng.integers(0, width - 200)
    panoptic[y:y + 100, x:x + 200] = 13 * spec.label_divisor + instance
  label[0, :height, :width] = panoptic
  return {common.IMAGE: image, common.PANOPTIC_LABEL: label,
          common.IMAGE_SIZE: np.array([[height, width]], np.int32),
          common.LABEL_SIZE: np.array([[height, width]], np.int32),
          common.IS_VALID: np.array([True])}


def _worker(args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab2 import inference  # pylint: disable=g-import-not-at-top
  from deeplab2.data import dataset_descriptor  # pylint: disable=g-import-not-at-top
  from deeplab2.modeling.layers import normalization  # pylint: disable=g-import-not-at-top
  from deeplab2.postprocessing import post_processor  # pylint: disable=g-import-not-at-top
  from deeplab2.training import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  from deeplab2.utils import machine  # pylint: disable=g-import-not-at-top
  config, _ = config_lib.load_experiment_config(_CONFIG)
  crop = tuple(config.eval_dataset_options.crop_size)
  spec = dataset_descriptor.get_descriptor('cityscapes_panoptic').label_spec
  model = config_lib.build_model(config.model_options,
                                 normalization.BatchNormOptions(),
                                 input_size=(65, 65))
  evaluator_options = config.evaluator_options
  processor = post_processor.PanopticDeepLabPostProcessor(
      post_processor.PostProcessorOptions(
          label_spec=spec,
          center_score_threshold=evaluator_options.center_score_threshold,
          nms_kernel=evaluator_options.nms_kernel,
          keep_k_centers=evaluator_options.keep_k_centers,
          stuff_area_limit=evaluator_options.stuff_area_limit))
  evaluator = evaluator_lib.Evaluator(
      tf.distribute.get_strategy(), model, processor, spec,
      tta=inference.TestTimeAugmentation(flip=args.mode == 'flip'))
  rng = np.random.default_rng(0)
  example = _synthetic_example(rng, args.height, args.width, crop, spec)
  rss_at_image = []

  def examples():
    for _ in range(args.images):
      rss_at_image.append(_status_gib('VmRSS'))
      yield example

  signature = {k: tf.TensorSpec(v.shape, tf.as_dtype(v.dtype))
               for k, v in example.items()}
  dataset = tf.data.Dataset.from_generator(examples,
                                           output_signature=signature)
  start = time.perf_counter()
  metrics = evaluator.evaluate(dataset)
  print(json.dumps({
      'seconds': time.perf_counter() - start,
      'num_images': metrics['num_images'],
      'peak_gib': _status_gib('VmHWM'),
      'rss_at_image_gib': rss_at_image,
      'machine': machine.describe()}))


def _run_worker(mode, images, args):
  command = [sys.executable, os.path.abspath(__file__), '--worker',
             f'--mode={mode}', f'--images={images}',
             f'--height={args.height}', f'--width={args.width}']
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  if result.returncode != 0:
    raise RuntimeError(f'{mode} x {images} failed:\n{result.stderr[-3000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num_images', default='2,8')
  parser.add_argument('--modes', default='single,flip')
  parser.add_argument('--height', type=int, default=1024)
  parser.add_argument('--width', type=int, default=2048)
  parser.add_argument('--json', default='',
                      help='Also write the rows and the machine to this JSON '
                      'file.')
  parser.add_argument('--worker', action='store_true')
  parser.add_argument('--mode')
  parser.add_argument('--images', type=int)
  args = parser.parse_args(argv)
  if args.worker:
    return _worker(args)
  description = None
  rows = []
  for mode in args.modes.split(','):
    for images in (int(n) for n in args.num_images.split(',')):
      row = _run_worker(mode, images, args)
      if description is None:
        # The header waits for the first worker: the oneDNN state reported
        # is the workers', which do the evaluating.
        description = row['machine']
        print(f'Machine: {description}. ResNet-50 Cityscapes config, '
              f'random weights, {args.height} x {args.width} images padded '
              'to the eval crop; each row a fresh process.')
        print('| mode | images | seconds | peak memory (GiB) | '
              'resident memory as each image enters (GiB) |')
        print('|---|---|---|---|---|')
      trace = ', '.join(f'{v:.2f}' for v in row['rss_at_image_gib'])
      print(f'| {mode} | {row["num_images"]} | {row["seconds"]:.0f} | '
            f'{row["peak_gib"]:.2f} | {trace} |', flush=True)
      rows.append({
          'mode': mode, 'num_images': row['num_images'],
          'height': args.height, 'width': args.width,
          'seconds': row['seconds'], 'peak_gib': row['peak_gib'],
          'rss_at_image_gib': row['rss_at_image_gib']})
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': description, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
