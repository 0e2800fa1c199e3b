"""Plain values the config door hands to training and evaluation."""

import dataclasses

from deeplab2.inference import tta as tta_lib


@dataclasses.dataclass(frozen=True)
class TrainSchedule:
  """When training stops, logs, summarises and saves.

  Attributes:
    total_steps: training_number_of_steps.
    steps_per_loop: steps per call of the compiled training loop.
    save_checkpoints_steps: a checkpoint every this many steps.
    save_summaries_steps: TensorBoard scalars every this many steps.
    num_checkpoints_to_keep: older checkpoints are deleted.
  """
  total_steps: int
  steps_per_loop: int
  save_checkpoints_steps: int
  save_summaries_steps: int
  num_checkpoints_to_keep: int


@dataclasses.dataclass(frozen=True)
class BestCheckpoint:
  """Whether and by what the best evaluated checkpoint is kept.

  Attributes:
    keep: keep_best_checkpoint: each evaluation of a checkpoint of
      model_dir that beats the best so far copies it into model_dir/best.
    metric: best_checkpoint_metric, a key of the evaluation's metrics
      (validated: one the config's evaluation reports); higher is better.
  """
  keep: bool = False
  metric: str = 'pq_all'


@dataclasses.dataclass(frozen=True)
class EvalSchedule:
  """When, how much and how evaluation runs.

  Attributes:
    eval_steps: batches per evaluation, -1 for the whole eval set.
    eval_interval: train_and_eval evaluates every this many steps.
    continuous_eval_timeout: seconds continuous_eval waits for a new
      checkpoint; None waits forever.
    num_vis_samples: eval images drawn into TensorBoard at each evaluation.
    tta: the test-time augmentation of the evaluator's forward pass (the
      one of ExperimentParts.inference_options too).
    save_predictions: each evaluation writes its predictions in the
      official formats, into predictions-<step> under save_dir.
    save_dir: where prediction folders go; '' is model_dir/eval.
  """
  eval_steps: int
  eval_interval: int
  continuous_eval_timeout: int | None
  num_vis_samples: int = 0
  tta: tta_lib.TestTimeAugmentation = tta_lib.TestTimeAugmentation()
  save_predictions: bool = False
  save_dir: str = ''


@dataclasses.dataclass(frozen=True)
class InitialCheckpoint:
  """Weights to start from when model_dir has no checkpoint.

  Attributes:
    path: a checkpoint prefix (ours or deeplab2's) or a Keras Applications
      weights file; '' for none.
    restore_semantic_last_layer: also restore the semantic head's last conv.
    restore_instance_last_layer: also restore the center and offset heads'
      last convs.
  """
  path: str
  restore_semantic_last_layer: bool
  restore_instance_last_layer: bool
