"""Checks of trainer_options: its schedule, the best checkpoint's metric,
the losses and the solver.

Valid values come from the loss names, the optimizer registry, the
learning policies and the metrics evaluation reports.
"""

from deeplab2.config import checker as checker_lib
from deeplab2.evaluation import metric_names
from deeplab2.losses import names as loss_names
from deeplab2.protos import config_pb2
from deeplab2.solver import optimizers
from deeplab2.solver import schedules


def check_trainer(check: checker_lib.Checker,
                  trainer: config_pb2.TrainerOptions,
                  with_mask_ap: bool) -> None:
  """Checks `trainer_options`.

  Args:
    check: the config's Checker.
    trainer: its trainer_options.
    with_mask_ap: whether its evaluation computes mask AP (the model has
      the instance branch), which decides the valid best_checkpoint_metric.

  Raises:
    ConfigError: the first problem found.
  """
  field = 'trainer_options'
  for name in ('save_checkpoints_steps', 'save_summaries_steps',
               'steps_per_loop', 'num_checkpoints_to_keep'):
    value = getattr(trainer, name)
    check.require(value > 0, f'{field}.{name}',
                  f'must be positive, got {value}')
  _check_best_checkpoint(check, trainer, field, with_mask_ap)
  _check_losses(check, trainer.loss_options, f'{field}.loss_options')
  _check_solver(check, trainer.solver_options, f'{field}.solver_options')


def _check_best_checkpoint(check: checker_lib.Checker,
                           trainer: config_pb2.TrainerOptions, field: str,
                           with_mask_ap: bool) -> None:
  """best_checkpoint_metric names a metric this config's evaluation reports
  (also while keep_best_checkpoint is off: a misspelt name is refused
  before it is used); set without keep_best_checkpoint, a warning."""
  metric = trainer.best_checkpoint_metric
  metric_field = f'{field}.best_checkpoint_metric'
  valid = metric_names.quality_metrics(with_mask_ap)
  if metric not in valid:
    why = ''
    if metric in metric_names.MASK_AP:
      why = (' (mask AP is computed with the instance branch only: '
             'model_options.panoptic_deeplab.instance.enable)')
    check.fail(metric_field, f'"{metric}" is not a metric of this config\'s '
               f'evaluation{why}; valid: {", ".join(valid)}')
  if trainer.HasField('best_checkpoint_metric') and (
      not trainer.keep_best_checkpoint):
    check.warn(metric_field, 'applies with keep_best_checkpoint: true only; '
               'ignored')


def _check_losses(check: checker_lib.Checker,
                  losses: config_pb2.LossOptions, field: str) -> None:
  for name, valid in (
      ('semantic_loss', loss_names.SEMANTIC_LOSS_NAMES),
      ('center_loss', loss_names.CENTER_LOSS_NAMES),
      ('regression_loss', loss_names.REGRESSION_LOSS_NAMES)):
    if not losses.HasField(name):
      continue
    loss = getattr(losses, name)
    loss_field = f'{field}.{name}'
    check.require(loss.name in valid, f'{loss_field}.name',
                  f'"{loss.name}" is not one of {valid}')
    check.require_non_negative(loss.weight, f'{loss_field}.weight')
    check.require(0 < loss.top_k_percent <= 1, f'{loss_field}.top_k_percent',
                  f'must be in (0, 1], got {loss.top_k_percent}')


def _check_solver(check: checker_lib.Checker,
                  solver: config_pb2.SolverOptions, sfield: str) -> None:
  check.require(solver.learning_policy in schedules.LEARNING_POLICIES,
                f'{sfield}.learning_policy',
                f'"{solver.learning_policy}" is not one of '
                f'{schedules.LEARNING_POLICIES}')
  names = optimizers.OPTIMIZERS.names()
  check.require(solver.optimizer in names, f'{sfield}.optimizer',
                f'"{solver.optimizer}" is not one of {tuple(names)}')
  check.require_positive(solver.base_learning_rate,
                         f'{sfield}.base_learning_rate')
  check.require_positive(solver.poly_learning_power,
                         f'{sfield}.poly_learning_power')
  check.require(0 <= solver.poly_end_learning_rate <= solver.base_learning_rate,
                f'{sfield}.poly_end_learning_rate',
                f'{solver.poly_end_learning_rate} must be in [0, '
                f'base_learning_rate={solver.base_learning_rate}]')
  if solver.learning_policy == 'cosine':
    for name in ('poly_end_learning_rate', 'poly_learning_power'):
      if solver.HasField(name):
        check.warn(f'{sfield}.{name}',
                   'the cosine policy decays to 0 (as deeplab2); ignored')
  check.require(solver.training_number_of_steps > 0,
                f'{sfield}.training_number_of_steps',
                f'must be positive, got {solver.training_number_of_steps}')
  check.require(0 <= solver.warmup_steps < solver.training_number_of_steps,
                f'{sfield}.warmup_steps',
                f'{solver.warmup_steps} must be in [0, '
                f'training_number_of_steps={solver.training_number_of_steps})')
  check.require(0 < solver.batchnorm_momentum < 1,
                f'{sfield}.batchnorm_momentum',
                f'must be in (0, 1), got {solver.batchnorm_momentum}')
  check.require_positive(solver.batchnorm_epsilon,
                         f'{sfield}.batchnorm_epsilon')
  for name in ('weight_decay', 'adamw_weight_decay'):
    check.require_non_negative(getattr(solver, name), f'{sfield}.{name}')
  decoupled = optimizers.uses_decoupled_weight_decay(solver.optimizer)
  check.require(decoupled or not solver.adamw_weight_decay,
                f'{sfield}.adamw_weight_decay',
                f'applies to optimizer "adamw" only, not '
                f'"{solver.optimizer}"; use weight_decay (an L2 loss term)')
  check.require(not decoupled or not solver.weight_decay,
                f'{sfield}.weight_decay',
                'optimizer "adamw" decays the weights itself; use '
                'adamw_weight_decay')
  if solver.use_gradient_clipping:
    check.require_positive(solver.clip_gradient_norm,
                           f'{sfield}.clip_gradient_norm')
