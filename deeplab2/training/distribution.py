"""The tf.distribute strategy of a run, and what depends on a run's hosts:
which one is the chief, and sums across hosts."""

import json
import os

import numpy as np
import tensorflow as tf


def _tf_config_tasks():
  """The number of chief + worker tasks named by TF_CONFIG (0 when unset)."""
  text = os.environ.get('TF_CONFIG', '')
  if not text:
    return 0
  try:
    cluster = json.loads(text).get('cluster', {})
  except ValueError as e:
    raise ValueError(f'TF_CONFIG is not valid JSON: {e}') from None
  return sum(len(cluster.get(job, [])) for job in ('chief', 'worker'))


def create_strategy(num_gpus=None, master=''):
  """The strategy deeplab2's flags choose.

  Args:
    num_gpus: None: every GPU (MirroredStrategy when there are several,
      else the default strategy); 0: the CPU; 1: the first GPU; N > 1:
      MirroredStrategy over the first N GPUs.
    master: a TPU name or grpc:// address: TPUStrategy; 'local' for the
      TPU of this TPU VM.

  A TF_CONFIG naming more than one worker gives MultiWorkerMirroredStrategy
  (one process per host, each with its local GPUs, or its CPU).

  Raises:
    ValueError: more GPUs asked for than this host has, or flags that
      contradict each other.
  """
  workers = _tf_config_tasks()
  if master:
    if workers > 1:
      raise ValueError('--master (a TPU) and a multi-worker TF_CONFIG '
                       'exclude each other.')
    if num_gpus is not None:
      raise ValueError('--num_gpus and --master (a TPU) exclude each other.')
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=master)
    if master != 'local':        # a TPU VM's own TPU needs no connection
      tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if workers > 1:
    if num_gpus is not None:
      raise ValueError('--num_gpus does not apply to a multi-worker '
                       'TF_CONFIG: each worker mirrors over its own GPUs '
                       '(set CUDA_VISIBLE_DEVICES to choose them).')
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices('GPU')
  if num_gpus is None:
    if len(gpus) > 1:
      return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
  if num_gpus < 0 or num_gpus > len(gpus):
    raise ValueError(f'--num_gpus={num_gpus}, but this host has '
                     f'{len(gpus)} GPU(s).')
  if num_gpus == 0:
    return tf.distribute.OneDeviceStrategy('/cpu:0')
  if num_gpus == 1:
    return tf.distribute.OneDeviceStrategy(gpus[0].name)
  return tf.distribute.MirroredStrategy([g.name for g in gpus[:num_gpus]])


def eval_input_options() -> tf.distribute.InputOptions:
  """How the eval dataset is distributed: every batch stays in host memory.

  An eval batch holds what an accelerator cannot or need not hold: the
  image's file name (a tf.string, which TPUStrategy cannot place on a TPU)
  and, with resize-to-range, the original labels padded to the largest of
  each batch (a shape that changes from batch to batch). The default
  options (experimental_fetch_to_device=True) prefetch every tensor of
  every batch to the replica devices; these keep the whole batch on each
  host's CPU instead. The evaluator then sends only the images to the
  replicas, as the argument of strategy.run, and reads labels, sizes,
  file names and the valid flags on the host, where it scores them.

  Training batches (numbers of fixed shapes only) keep the default
  options, which prefetch them to the devices.

  Returns:
    tf.distribute.InputOptions with experimental_fetch_to_device=False,
    for distribute_datasets_from_function.
  """
  return tf.distribute.InputOptions(experimental_fetch_to_device=False)


def describe(strategy):
  """One line: the strategy's class, its replicas and hosts."""
  # Public names: TF's class of MultiWorkerMirroredStrategy has another.
  public = [name for name in ('MultiWorkerMirroredStrategy',
                              'MirroredStrategy', 'TPUStrategy',
                              'OneDeviceStrategy')
            if isinstance(strategy, getattr(tf.distribute, name))]
  if public:
    name = public[0]
    devices = ', '.join(strategy.extended.worker_devices)
  else:
    name, devices = 'default strategy', 'the default device'

  return (f'{name}: {strategy.num_replicas_in_sync} replica(s) on '
          f'{num_workers(strategy)} host(s); this host: {devices}')


def num_workers(strategy):
  """Hosts (processes) of the strategy, each with its own input pipeline
  and its own Python loop (a TPU pod has one client: 1)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 1
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return max(1, sum(len(cluster.get(job, [])) for job in ('chief', 'worker')))


def is_chief(strategy):
  """Whether this process writes metrics, summaries and checkpoints."""
  if num_workers(strategy) == 1:
    return True
  resolver = strategy.cluster_resolver
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type == 'chief' or task_type is None:
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and not has_chief


def task_id(strategy):
  """This host's task id (0 on one host)."""
  if num_workers(strategy) == 1:
    return 0
  return strategy.cluster_resolver.task_id or 0


def sum_over_workers(strategy, arrays):
  """Sums a dict of int64 NumPy arrays elementwise across hosts.

  Every host must call it with arrays of the same shapes (a collective
  all-reduce under MultiWorkerMirroredStrategy).
  """
  names = sorted(arrays)
  flat = np.concatenate([np.asarray(arrays[n], np.int64).ravel()
                         for n in names])
  given = []

  def value(context):
    del context
    # Only the first local replica carries this host's numbers.
    first = not given
    given.append(True)
    return tf.constant(flat if first else np.zeros_like(flat))

  per_replica = strategy.experimental_distribute_values_from_function(value)
  total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                          axis=None).numpy()
  result, offset = {}, 0
  for n in names:
    shape = np.shape(arrays[n])
    size = int(np.prod(shape))
    result[n] = total[offset:offset + size].reshape(shape)
    offset += size
  return result


def worker_index(strategy):
  """This host's index 0..num_workers-1 (the chief, if any, is 0)."""
  if num_workers(strategy) == 1:
    return 0
  resolver = strategy.cluster_resolver
  if resolver.task_type == 'chief':
    return 0
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return (resolver.task_id or 0) + int(has_chief)


def _to_int64(array):
  array = np.asarray(array)
  if array.dtype == np.float64:
    return array.view(np.int64)   # bits travel unchanged: + 0 is exact
  if array.dtype.kind in 'biu':
    return array.astype(np.int64)
  raise TypeError(f'Cannot gather arrays of {array.dtype}.')


def _from_int64(array, dtype):
  if dtype == np.float64:
    return array.view(np.float64)
  return array.astype(dtype)


def gather_over_workers(strategy, arrays):
  """Every host's dict of row tables, on every host.

  Args:
    strategy: the tf.distribute strategy (each host must call this).
    arrays: dict of NumPy arrays of bool, integer or float64 dtype, rows
      on axis 0 (any number of rows; the same keys, dtypes and trailing
      shapes on every host).

  Returns:
    A list over hosts (worker_index order) of dicts like `arrays`; on one
    host, [arrays].
  """
  count = num_workers(strategy)
  if count == 1:
    return [arrays]
  names = sorted(arrays)
  me = worker_index(strategy)
  rows = np.zeros((count, len(names)), np.int64)
  rows[me] = [len(arrays[name]) for name in names]
  rows = sum_over_workers(strategy, {'rows': rows})['rows']
  slots = {}
  for j, name in enumerate(names):
    local = _to_int64(arrays[name])
    table = np.zeros((int(rows[:, j].sum()),) + local.shape[1:], np.int64)
    start = int(rows[:me, j].sum())
    table[start:start + len(local)] = local
    slots[name] = table
  slots = sum_over_workers(strategy, slots)
  gathered = []
  for worker in range(count):
    part = {}
    for j, name in enumerate(names):
      start = int(rows[:worker, j].sum())
      part[name] = _from_int64(slots[name][start:start + rows[worker, j]],
                               np.asarray(arrays[name]).dtype)
    gathered.append(part)
  return gathered


def barrier(strategy):
  """Returns once every host has called it (at once on one host)."""
  if num_workers(strategy) > 1:
    sum_over_workers(strategy, {'barrier': np.zeros(1, np.int64)})
