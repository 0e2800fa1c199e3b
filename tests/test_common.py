"""The keys of deeplab2.common: one string per meaning."""

from deeplab2 import common


def _keys():
  return {name: value for name, value in vars(common).items()
          if name.isupper() and isinstance(value, str)}


def test_every_key_string_is_distinct():
  keys = _keys()
  assert len(keys) >= 20
  by_value = {}
  for name, value in keys.items():
    by_value.setdefault(value, []).append(name)
  shared = {v: names for v, names in by_value.items() if len(names) > 1}
  assert not shared, f'constants sharing a string: {shared}'


def test_ground_truth_keys_end_in_gt_and_predictions_do_not():
  keys = _keys()
  for name in ('GT_SEMANTIC', 'GT_CENTER_HEATMAP', 'GT_OFFSET',
               'PANOPTIC_LABEL'):
    assert keys[name].endswith('_gt'), name
  for name, value in keys.items():
    if name.startswith('PRED_'):
      assert not value.endswith('_gt'), name
