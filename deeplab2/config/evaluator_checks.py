"""Checks of evaluator_options, and of test-time scales given elsewhere.

`check_eval_scales` is the rule for test-time scales wherever they come
from: the config's evaluator_options.eval_scales, or a command line's
--eval_scales.
"""

from collections.abc import Iterable
import math

from deeplab2.config import checker as checker_lib
from deeplab2.config import errors
from deeplab2.data import dataset_descriptor
from deeplab2.protos import config_pb2


def eval_scales_problem(scales: Iterable[float]) -> str | None:
  """Why `scales` cannot be test-time scales, or None when they can.

  The rule: each scale positive and finite, none listed twice (any order;
  no scales at all is valid: one pass at scale 1).

  Returns:
    e.g. 'must all be positive, got [0.0, 1.0]', or None.
  """
  values = [float(scale) for scale in scales]
  # Finiteness first: NaN fails `> 0` too, but is no sign error.
  if not all(math.isfinite(value) for value in values):
    return f'must all be finite, got {values}'
  if not all(value > 0 for value in values):
    return f'must all be positive, got {values}'
  if len(set(values)) != len(values):
    return f'lists a scale twice: {values}'
  return None


def check_eval_scales(scales: Iterable[float],
                      field: str = 'evaluator_options.eval_scales'
                      ) -> tuple[float, ...]:
  """Checks test-time input scales; returns them as a tuple of floats.

  The rule of eval_scales_problem.

  Args:
    scales: the scales, e.g. (0.5, 1.0, 1.5).
    field: what to name in the message: the config field, or a flag such
      as '--eval_scales'.

  Returns:
    tuple of float, in the given order.

  Raises:
    ConfigError (a ValueError): e.g. with field '--eval_scales', str(error)
      is '<config>: --eval_scales: must all be positive, got [0.0, 1.0]';
      `error.field` and `error.reason` hold the parts.
  """
  checked = tuple(float(scale) for scale in scales)
  problem = eval_scales_problem(checked)
  if problem is not None:
    raise errors.ConfigError(problem, field=field)
  return checked


def check_evaluator(check: checker_lib.Checker,
                    evaluator: config_pb2.EvaluatorOptions) -> None:
  """Checks `evaluator_options`.

  Raises:
    ConfigError: the first problem found.
  """
  field = 'evaluator_options'
  check.require(evaluator.num_vis_samples >= 0, f'{field}.num_vis_samples',
                f'must be >= 0, got {evaluator.num_vis_samples}')
  check.require(evaluator.eval_interval > 0, f'{field}.eval_interval',
                f'must be positive, got {evaluator.eval_interval}')
  timeout = evaluator.continuous_eval_timeout
  check.require(timeout == -1 or timeout >= 0,
                f'{field}.continuous_eval_timeout',
                f'must be >= 0 seconds or -1 (wait forever), got {timeout}')
  check.require(evaluator.eval_steps == -1 or evaluator.eval_steps > 0,
                f'{field}.eval_steps',
                f'must be positive or -1 (all), got {evaluator.eval_steps}')
  check.require(evaluator.nms_kernel > 0 and evaluator.nms_kernel % 2 == 1,
                f'{field}.nms_kernel',
                f'must be a positive odd number, got {evaluator.nms_kernel}')
  check.require(evaluator.keep_k_centers == -1 or evaluator.keep_k_centers > 0,
                f'{field}.keep_k_centers',
                f'must be positive or -1, got {evaluator.keep_k_centers}')
  check.require_non_negative(evaluator.center_score_threshold,
                             f'{field}.center_score_threshold')
  check.require(evaluator.stuff_area_limit >= 0, f'{field}.stuff_area_limit',
                f'must be >= 0, got {evaluator.stuff_area_limit}')
  problem = eval_scales_problem(evaluator.eval_scales)
  if problem is not None:
    check.fail(f'{field}.eval_scales', problem)


def check_instance_ids_fit(
    check: checker_lib.Checker, evaluator: config_pb2.EvaluatorOptions,
    descriptor: dataset_descriptor.DatasetDescriptor, dataset_field: str,
    dataset_options: config_pb2.DatasetOptions) -> None:
  """Refuses more centers than the label divisor has instance ids.

  Instance ids of a class run 1..label_divisor - 1; with keep_k_centers >=
  label_divisor one class can get an id that encodes an instance of the
  next class (deeplab2 encodes COCO's 257th instance of a class so).
  keep_k_centers -1 (keep all) is bounded by the merge instead, which turns
  instances past label_divisor - 1 of a class into void.

  Raises:
    ConfigError: keep_k_centers is label_divisor or more.
  """
  keep_k = evaluator.keep_k_centers
  divisor = descriptor.label_divisor
  default = '' if evaluator.HasField('keep_k_centers') else ' (the default)'
  check.require(
      keep_k < divisor, 'evaluator_options.keep_k_centers',
      f'{keep_k}{default} centers can give one class {keep_k} instances, but '
      f'{dataset_field}.dataset "{dataset_options.dataset}" has label_divisor '
      f'{divisor} (instance ids 1..{divisor - 1}); set keep_k_centers to at '
      f'most {divisor - 1}')
