"""Metrics as text (a per-class table) and as a JSON file."""

from collections.abc import Mapping, Sequence
import json
import os
from typing import Any

from deeplab2.utils import atomic

_GROUPS = (('All', 'all'), ('Things', 'things'), ('Stuff', 'stuff'))


def _percent(value: float | None) -> str:
  # COCO's AP is -1 where it is undefined (a class without ground truth).
  return '-' if value is None or value < 0 else f'{100 * value:.2f}'


def _count(value: int | None) -> str:
  return '-' if value is None else str(value)


def format_table(metrics: Mapping[str, Any],
                 class_names: Mapping[Any, str] | Sequence[str]) -> str:
  """A per-class text table of PQ metrics, then All / Things / Stuff rows.

  Args:
    metrics: PanopticQuality.result()'s keys (pq_all, ..., num_classes_all,
      ..., per_class {class: {pq, sq, rq, tp, fp, fn}}); optionally
      per_class_iou {class: IoU} and miou (an IoU column), per_class_ap
      {class: AP} and ap (an AP column; COCO's -1, undefined, shows '-').
    class_names: {class: name} for the per_class keys, or a sequence of
      names indexed by class (LabelSpec.class_names); a class without a
      name shows its key.

  Returns:
    The table, one row per class of per_class, per_class_iou or
    per_class_ap (ascending), '-' where a class has no value; PQ, SQ, RQ,
    IoU and AP in percent with 2 decimals. No trailing newline.
  """
  per_class = metrics.get('per_class', {})
  columns: dict[str, Mapping[Any, float]] = {
      title: values for title, values in (
          ('IoU', metrics.get('per_class_iou')),
          ('AP', metrics.get('per_class_ap'))) if values is not None}
  classes = sorted(set(per_class).union(*columns.values()))
  if not isinstance(class_names, Mapping):
    class_names = dict(enumerate(class_names))
  names = {c: str(class_names.get(c, c)) for c in classes}
  name_width = max([len(n) for n in names.values()] + [len('Things')])
  id_width = max([len(str(c)) for c in classes] + [2])

  def row(first, name, cells):
    return (f'{first:>{id_width}}  {name:<{name_width}}' +
            ''.join(f'{cell:>9}' for cell in cells)).rstrip()

  lines = [row('id', 'name', ['PQ', 'SQ', 'RQ', 'TP', 'FP', 'FN'] +
               list(columns))]
  for c in classes:
    scores = per_class.get(c, {})
    cells = ([_percent(scores.get(k)) for k in ('pq', 'sq', 'rq')] +
             [_count(scores.get(k)) for k in ('tp', 'fp', 'fn')] +
             [_percent(values.get(c)) for values in columns.values()])
    lines.append(row(c, names[c], cells))
  lines.append('-' * len(lines[0]))
  summary = {'IoU': metrics.get('miou'), 'AP': metrics.get('ap')}
  lines.append(row('', '', ['PQ', 'SQ', 'RQ', 'N'] + list(columns)))
  for title, group in _GROUPS:
    cells = ([_percent(metrics.get(f'{k}_{group}')) for k in ('pq', 'sq', 'rq')]
             + [_count(metrics.get(f'num_classes_{group}'))])
    # mIoU and mAP are over all classes: they go on the All row only.
    cells += [_percent(summary[c]) if group == 'all' else ''
              for c in columns]
    lines.append(row('', title, cells))
  return '\n'.join(lines)


def write_metrics_json(metrics: Mapping[str, Any], path: str,
                       overwrite: bool = False) -> str:
  """Writes metrics as JSON, whole or not at all (atomic.open_atomic).

  Args:
    metrics: JSON-serialisable dict (int keys become strings).
    path: the file to write.
    overwrite: whether an existing `path` may be replaced.

  Returns:
    The absolute path written.

  Raises:
    FileExistsError: `path` exists and overwrite is False.
    OSError: the folder is missing or not writable.
  """
  path = os.path.abspath(path)
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f'{path} exists; pass overwrite to replace it.')
  with atomic.open_atomic(path, 'w', encoding='utf-8') as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
    f.write('\n')
    # Checked again just before the rename: a file that appeared while the
    # metrics were written is not replaced (the temporary file is removed).
    if not overwrite and os.path.exists(path):
      raise FileExistsError(f'{path} exists; pass overwrite to replace it.')
  return path
