"""The distributed training loop: strategy.run over a distributed dataset."""

import tensorflow as tf

from deeplab2 import common
from deeplab2.losses import panoptic_deeplab_loss


def _all_reduce_sum(gradients):
  """Sums gradients across replicas (in a replica context); None stays."""
  present = [g for g in gradients if g is not None]
  summed = iter(tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, present))
  return [None if g is None else next(summed) for g in gradients]


class Trainer:
  """Runs training steps of one model under a tf.distribute strategy.

  The global step is `optimizer.iterations`, saved with the checkpoint.
  The gradients are summed across replicas here, before the optimizer sees
  them (solver.optimizers takes them so): gradient clipping then acts on
  the global gradient, and a keras.optimizers.LossScaleOptimizer (for
  mixed_float16, which scales the loss and unscales the gradients) sees an
  overflow of any replica on every replica and skips the step on all.
  """

  def __init__(self, strategy, model, loss_fn, optimizer, global_batch_size,
               weight_decay=0.0, jit_compile=False, stop_flag=None):
    self.strategy = strategy
    # A bool tf.Variable read before each step: True ends the loop early
    # (interrupts.StopSignals sets it on SIGTERM / Ctrl-C).
    self.stop_flag = stop_flag
    self.model = model
    self.loss_fn = loss_fn
    self.optimizer = optimizer
    self.global_batch_size = global_batch_size
    self.weight_decay = weight_decay
    # Global batches the last call of `train` took from its iterator.
    self.batches_read = 0
    if not optimizer.built:
      # Slots made inside the first trace would make tf.function trace the
      # whole training loop twice.
      with strategy.scope():
        optimizer.build(model.trainable_variables)
    self._train_steps = tf.function(self._train_steps_impl, autograph=False)
    # XLA compiles the forward and backward pass of one replica (with sync
    # batch norm's all-reduce); the gradient all-reduce and the optimizer
    # update stay outside it.
    self._compiled_losses_and_gradients = (
        tf.function(self._losses_and_gradients, jit_compile=True,
                    autograph=False)
        if jit_compile else None)

  @property
  def global_step(self):
    return self.optimizer.iterations

  def _losses_and_gradients(self, batch):
    with tf.GradientTape() as tape:
      outputs = self.model(batch[common.IMAGE], training=True)
      losses = self.loss_fn(outputs, batch)
      scaled = {name: tf.nn.compute_average_loss(
          value, global_batch_size=self.global_batch_size)
                for name, value in losses.items()}
      total = scaled[panoptic_deeplab_loss.TOTAL_LOSS]
      if self.weight_decay > 0:
        kernels = [v for v in self.model.trainable_variables
                   if 'kernel' in v.path]
        l2 = self.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in kernels])
        total += l2 / self.strategy.num_replicas_in_sync
      if hasattr(self.optimizer, 'scale_loss'):
        total = self.optimizer.scale_loss(total)
    gradients = tape.gradient(total, self.model.trainable_variables)
    return scaled, gradients

  def _replica_step(self, batch):
    if self._compiled_losses_and_gradients is not None:
      scaled, gradients = self._compiled_losses_and_gradients(batch)
    else:
      scaled, gradients = self._losses_and_gradients(batch)
    variables = self.model.trainable_variables
    if self.strategy.num_replicas_in_sync > 1:
      gradients = _all_reduce_sum(gradients)
    self.optimizer.apply_gradients(zip(gradients, variables))
    return scaled

  def _train_steps_impl(self, iterator, num_steps):
    # An explicit while_loop, traced without AutoGraph: converting the loss
    # and step code took several seconds of every first trace.
    def keep_going(done, sums):
      del sums
      more = done < num_steps
      if self.stop_flag is not None:
        more = tf.logical_and(more, tf.logical_not(self.stop_flag.read_value()))
      return more

    def one_step(done, sums):
      per_replica = self.strategy.run(self._replica_step,
                                      args=(next(iterator),))
      sums = {name: sums[name] + self.strategy.reduce(
          tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
              for name in sums}
      return done + 1, sums

    sums = {name: tf.constant(0.0) for name in self.loss_fn.loss_names}
    done, sums = tf.while_loop(keep_going, one_step, (tf.constant(0), sums))
    return {name: value / tf.cast(tf.maximum(done, 1), tf.float32)
            for name, value in sums.items()}, done

  def train(self, iterator, num_steps):
    """Runs `num_steps` steps (fewer when stop_flag is set); returns host
    floats of the mean losses. `batches_read` then says how many global
    batches the steps took from `iterator` (a step that a loss-scaling
    optimizer skips takes one without moving the global step).

    Raises:
      FloatingPointError: a loss is NaN or infinite (the weights are then
        not saved by the caller).
    """
    means, done = self._train_steps(iterator,
                                    tf.constant(num_steps, tf.int32))
    self.batches_read = int(done)
    means = {name: float(value) for name, value in means.items()}
    bad = {name: value for name, value in means.items()
           if value != value or value in (float('inf'), float('-inf'))}
    if bad:
      raise FloatingPointError(
          f'Non-finite loss at step {int(self.global_step.numpy())}: {bad}.')
    return means
