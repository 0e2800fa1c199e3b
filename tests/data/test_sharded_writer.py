"""tfrecord.ShardedWriter writes shards under unique temporary names
(deeplab2.utils.atomic) and renames them only in commit()."""

import os
import subprocess

import numpy as np
import tensorflow as tf

from deeplab2 import common
from deeplab2.data import tfrecord
from deeplab2.utils import atomic


def _example(name):
  image = tfrecord.encode_png(np.zeros((1, 1, 3), np.uint8))
  return tfrecord.make_example(image, 'png', 1, 1, name, None)


def _names(path):
  """The file names of a shard's records, in order."""
  return [tfrecord.parse_example(r)[common.FILENAME].numpy().decode()
          for r in tf.data.TFRecordDataset(path)]


def test_shards_appear_only_on_commit(tmp_path):
  with tfrecord.ShardedWriter(str(tmp_path), 'train', 2) as writer:
    for i in range(3):
      writer.write(_example(f'{i}.png'))
    entries = os.listdir(tmp_path)
    assert len(entries) == 2 and all(atomic.is_temporary(e) for e in entries)
    assert writer.commit() == 3
  assert sorted(os.listdir(tmp_path)) == [
      'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord']
  assert _names(writer.paths[0]) == ['0.png', '2.png']


def test_two_writers_of_one_split_never_share_a_file(tmp_path):
  first = tfrecord.ShardedWriter(str(tmp_path), 'val', 1)
  second = tfrecord.ShardedWriter(str(tmp_path), 'val', 1)
  first.write(_example('first.png'))
  second.write(_example('second.png'))
  assert len(os.listdir(tmp_path)) == 2
  second.abort()
  first.commit()
  assert os.listdir(tmp_path) == ['val-00000-of-00001.tfrecord']
  assert _names(first.paths[0]) == ['first.png']


def test_temporary_shards_of_a_killed_writer_go(tmp_path, caplog):
  dead = subprocess.Popen(['true'])
  dead.wait()
  final = str(tmp_path / 'val-00000-of-00001.tfrecord')
  stale = atomic.sibling_path(final).replace(f'-{os.getpid()}-',
                                             f'-{dead.pid}-')
  with open(stale, 'wb') as f:
    f.write(b'partial')
  with tfrecord.ShardedWriter(str(tmp_path), 'val', 1) as writer:
    writer.write(_example('a.png'))
    writer.commit()
  assert os.listdir(tmp_path) == ['val-00000-of-00001.tfrecord']
  assert f'removed {stale}, left by process {dead.pid}' in caplog.text


def test_a_jpeg_record_decodes_to_the_pixels_pil_reads(tmp_path):
  # What infer.py and the Predictor serve (PIL) is what evaluation scores:
  # TF's default fast inverse DCT is off by up to ~10 levels.
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='JPEG', quality=90)
  encoded = buffer.getvalue()
  example = tfrecord.make_example(encoded, 'jpeg', 33, 47, 'a.jpg',
                                  np.zeros((33, 47), np.int32))
  decoded = tfrecord.parse_example(example.SerializeToString())
  read = np.asarray(Image.open(io.BytesIO(encoded)).convert('RGB'))
  np.testing.assert_array_equal(decoded[common.IMAGE].numpy(), read)
  fast = tf.io.decode_jpeg(encoded, channels=3).numpy()
  assert (fast != read).any()       # the test can tell the two apart
  png = tfrecord.make_example(tfrecord.encode_png(pixels), 'png', 33, 47,
                              'a.png', np.zeros((33, 47), np.int32))
  np.testing.assert_array_equal(
      tfrecord.parse_example(png.SerializeToString())[common.IMAGE].numpy(),
      pixels)
