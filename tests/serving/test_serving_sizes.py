"""The SavedModel takes any size from 1 x 1 to 4097 x 4097 and grey or
RGBA arrays: a correct-size output or a clear error, never a crash."""

import json
import os
import subprocess
import sys

_SCRIPT = """
import json, sys, numpy as np, tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
results = []
for height, width, channels in json.loads(sys.argv[2]):
  image = np.full([height, width, channels], 100, np.uint8)
  try:
    out = serve(image=tf.constant(image))
    results.append(['ok', list(out['panoptic_pred'].shape),
                    list(out['semantic_probs'].shape),
                    list(out['offset_map'].shape)])
  except tf.errors.InvalidArgumentError as e:
    results.append(['error', e.message])
print(json.dumps(results))
"""

# Odd and even sides up to 4097 (an even one at 4096 beside 129 rows: the
# full 4096 x 4096 took 15-20 s more and proves nothing 4097 x 4097 does not).
CASES = [(1, 1, 3), (2, 2, 3), (1, 4097, 3), (4097, 1, 3), (32, 34, 3),
         (33, 33, 3), (64, 33, 3), (129, 4096, 3), (4097, 4097, 3),
         (37, 29, 1), (37, 29, 2), (37, 29, 4), (37, 29, 5), (0, 29, 3)]


def test_sizes_and_channel_counts_in_a_separate_process(tiny_saved_model):
  path, parts = tiny_saved_model
  num_classes = parts.descriptor('eval').num_classes
  done = subprocess.run([sys.executable, '-c', _SCRIPT, path,
                         json.dumps(CASES)], capture_output=True, text=True,
                        env={**os.environ, 'PYTHONPATH': ''}, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads(done.stdout.strip().splitlines()[-1])
  for (height, width, channels), result in zip(CASES, results):
    if channels == 5:
      assert result[0] == 'error' and '4 (RGBA)' in result[1], result
    elif height == 0:
      assert result[0] == 'error' and 'one row and one column' in result[1]
    else:
      assert result == ['ok', [height, width],
                        [height, width, num_classes],
                        [height, width, 2]], (height, width, channels)
