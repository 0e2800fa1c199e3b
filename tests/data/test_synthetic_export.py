"""build_synthetic_data.py --format=coco_panoptic: the synthetic images as a
labelling tool exports them (docs/custom_data.md's demo data)."""

import json

import numpy as np
from PIL import Image

from deeplab2.cli import build_synthetic_data
from deeplab2.data import synthetic
from deeplab2.data import synthetic_export
from deeplab2.utils import segment_ids
import cli_runner


def test_segments_are_the_synthetic_segments_with_export_ids():
  _, panoptic, _ = synthetic.generate_sample(np.random.default_rng(3), 65)
  divisor = synthetic.LABEL_DIVISOR
  segment_ids, info = synthetic_export.coco_panoptic_segments(panoptic)
  void = (panoptic // divisor) == synthetic.IGNORE_LABEL
  assert ((segment_ids == 0) == void).all()
  labelled = np.unique(panoptic[~void])
  assert [s['id'] for s in info] == list(range(1, len(labelled) + 1))
  for entry, panoptic_id in zip(info, labelled):
    mask = segment_ids == entry['id']
    assert (mask == (panoptic == panoptic_id)).all()
    class_id, instance = divmod(int(panoptic_id), divisor)
    assert entry['category_id'] == synthetic_export.EXPORT_CATEGORY_IDS[
        class_id]
    assert entry['iscrowd'] == int(
        class_id in synthetic.DESCRIPTOR.thing_class_ids and instance == 0)
    assert entry['area'] == mask.sum()
    x, y, w, h = entry['bbox']
    assert mask[y:y + h, x:x + w].sum() == mask.sum()
    assert mask[y, :].any() and mask[:, x].any()


def test_segment_ids_as_rgb_and_back():
  ids = np.array([[0, 1, 300, 70000], [0, 255, 256, segment_ids.MAX_ID]])
  rgb = segment_ids.ids_to_rgb(ids)
  assert rgb[0].tolist() == [[0, 0, 0], [1, 0, 0], [44, 1, 0], [112, 17, 1]]
  np.testing.assert_array_equal(segment_ids.rgb_to_ids(rgb), ids)


def test_the_command_writes_an_export_and_refuses_to_replace_it(tmp_path,
                                                                 capsys):
  out = tmp_path / 'labelled'
  args = [f'--output_dir={out}', '--format=coco_panoptic', '--num_train=3',
          '--num_val=2', '--image_size=33']
  done = cli_runner.run_main(build_synthetic_data.main, args, capsys)
  assert done.returncode == 0, done.stderr
  for split, count in (('train', 3), ('val', 2)):
    with open(out / 'annotations' / f'panoptic_{split}.json') as f:
      data = json.load(f)
    assert [c['id'] for c in data['categories']] == [1, 2, 11, 12, 13]
    assert len(data['images']) == len(data['annotations']) == count
    for image, annotation in zip(data['images'], data['annotations']):
      assert image['id'] == annotation['image_id']
      picture = Image.open(out / 'images' / split / image['file_name'])
      assert picture.format == 'JPEG' and picture.size == (33, 33)
      ids = np.asarray(Image.open(
          out / 'annotations' / f'panoptic_{split}' /
          annotation['file_name'])).astype(np.int64)
      ids = ids[..., 0] + 256 * ids[..., 1] + 65536 * ids[..., 2]
      assert sorted(np.unique(ids[ids > 0])) == [
          s['id'] for s in annotation['segments_info']]
  again = cli_runner.run_main(build_synthetic_data.main, args, capsys)
  assert again.returncode == 1
  assert again.stderr.strip() == (
      f'error: {out} exists; pass --overwrite to replace it (the whole '
      'folder).')
  bad = cli_runner.run_main(build_synthetic_data.main, args[:-1] + [
      '--image_size=3', '--overwrite'], capsys)
  assert bad.returncode == 1 and '--image_size=3: must be' in bad.stderr
