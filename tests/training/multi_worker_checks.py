"""One worker of a 2-process MultiWorkerMirroredStrategy run on localhost.

  python tests/training/multi_worker_checks.py CONFIG MODEL_DIR PORTS TASK OUT

PORTS is "port0,port1"; TASK the worker index. The worker trains and
evaluates (train_and_eval) and writes its final weights and metrics to OUT.
"""

import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def main(config_path, model_dir, ports, task, out_path):
  os.environ['TF_CONFIG'] = json.dumps({
      'cluster': {'worker': [f'localhost:{p}' for p in ports.split(',')]},
      'task': {'type': 'worker', 'index': int(task)}})
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  # pylint: disable=g-import-not-at-top
  import logging
  from deeplab2.training import distribution
  from deeplab2.training import experiment
  # pylint: enable=g-import-not-at-top
  logging.basicConfig(level=logging.INFO, stream=sys.stdout)
  strategy = distribution.create_strategy()
  run = experiment.Experiment(config_path, model_dir, strategy)
  run.restore()
  run.train(run.total_steps)
  metrics, _ = run.evaluate()
  with open(out_path, 'w') as f:
    json.dump({'strategy': distribution.describe(strategy),
               'replicas': strategy.num_replicas_in_sync,
               'is_chief': run.is_chief,
               'step': run.global_step,
               'weights': [w.tolist() for w in run.model.get_weights()],
               'metrics': metrics}, f)


if __name__ == '__main__':
  main(*sys.argv[1:6])
