r"""Trains and/or evaluates Panoptic-DeepLab from a textproto config.

  python trainer/train.py --config_file=configs/synthetic/resnet_mini_os16.textproto \
      --mode=train_and_eval --model_dir=runs/synthetic
  deeplab2-train ...    # the installed command, the same

The strategy: --num_gpus=N (MirroredStrategy over N GPUs; 0: the CPU),
--master=TPU (TPUStrategy), or a TF_CONFIG naming several workers
(MultiWorkerMirroredStrategy, this command started once per host). The
config's batch sizes are global.
"""

import argparse
from collections.abc import Sequence
import logging
import os
import signal
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab2.cli import config_flags  # pylint: disable=g-import-not-at-top

# training.modes.MODES (a test keeps them equal): the flags, --help included,
# are parsed before TensorFlow is imported.
MODES = ('train', 'eval', 'train_and_eval', 'continuous_eval')


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit status (argparse exits with 2)."""
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  config_flags.add_config_flags(parser)
  parser.add_argument('--mode', required=True, choices=MODES)
  parser.add_argument('--model_dir', required=True)
  parser.add_argument('--num_gpus', type=int, default=None,
                      help='GPUs to mirror over (0: CPU). Default: all.')
  parser.add_argument('--master', default='',
                      help='TPU name or grpc:// address ("local": this '
                      'host\'s TPU).')
  args = parser.parse_args(argv)
  return _run(args)


def _run(args: argparse.Namespace) -> int:
  """main's work once the flags are parsed."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from deeplab2 import config as config_lib
  from deeplab2.cli import messages
  from deeplab2.training import distribution
  from deeplab2.training import interrupts
  from deeplab2.training import modes
  # pylint: enable=g-import-not-at-top
  logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                      format='%(asctime)s %(message)s', datefmt='%H:%M:%S')
  logging.getLogger('deeplab2').setLevel(logging.INFO)
  try:
    strategy = distribution.create_strategy(args.num_gpus, args.master)
    modes.check_mode(args.mode, strategy)
  except ValueError as e:     # flags that this host cannot satisfy
    print(f'error: {e}', file=sys.stderr)
    return 1
  if os.path.exists(args.model_dir) and not os.path.isdir(args.model_dir):
    print(f'error: --model_dir={args.model_dir} is a file; give a folder '
          '(created if missing).', file=sys.stderr)
    return 1
  try:
    metrics = modes.run(args.mode, config_flags.config_source(args),
                        args.model_dir,
                        strategy)
  except KeyboardInterrupt:
    # Ctrl-C outside training (e.g. during evaluation): nothing to save.
    print('error: interrupted; resuming starts from the last checkpoint.',
          file=sys.stderr)
    return 130
  except interrupts.Stopped as e:
    # SIGTERM (preemption) or Ctrl-C: training saved its checkpoint, an
    # evaluation wrote nothing.
    print(f'stopped: {e}', file=sys.stderr)
    return 128 + int(getattr(signal, e.signal_name, signal.SIGTERM))
  except (config_lib.ConfigError, OSError, FloatingPointError,
          ValueError) as e:
    # Config problems name file, line and field; the others name the file
    # or the step. No traceback for any of them.
    return messages.fail_after_restore(f'error: {e}')
  except tf.errors.OpError as e:      # e.g. a full disk while saving
    return messages.fail_after_restore(
        f'error: {messages.op_error_line(e)}')
  if metrics:
    print(f'final: PQ {metrics["pq_all"]:.4f} (things {metrics["pq_things"]:.4f}'
          f', stuff {metrics["pq_stuff"]:.4f}) SQ {metrics["sq_all"]:.4f} '
          f'RQ {metrics["rq_all"]:.4f} mIoU {metrics["miou"]:.4f}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
