"""Box scores (relevance mass, LVS cIoU on the crop) and the standalone evaluator CLI against hand-computed cases.

The map [[1,1],[0,0]] resized bilinearly to 100x100 is 1 on rows 0-24, 1.5 - (r+½)/50 on rows
25-74 (0.99 down to 0.01) and 0 on rows 75-99; each row sums to 100x its value, so the top half
(rows 0-49) holds (25 + 18.75) / 50 = 0.875 of the mass. Its median-rank value (sorted index
5000) is one of row 49's, so the LVS prediction is rows 0-48 plus those of row 49's pixels that
round a bit higher: IoU with the top half in [0.98, 1).
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from stt.explain import box_scores
from stt.explain import ciou as ciou_lib
from stt.explain import score_maps

REPO = pathlib.Path(__file__).resolve().parents[1]
TOP_HALF_MAP = np.array([[1.0, 1.0], [0.0, 0.0]], np.float32)
TOP_HALF_BOX = (0, 0, 100, 50)
BOTTOM_HALF_BOX = (0, 50, 100, 100)


def _scores(where_map, box, frame_size=(100, 100)):
  resized = box_scores.resize_over_crop(where_map, frame_size)
  mask = box_scores.box_mask_over_crop(np.array([box]), frame_size)
  return box_scores.relevance_mass(resized, mask), _ciou(resized, mask)


def _ciou(resized, mask):
  return ciou_lib.ciou(ciou_lib.binarise(resized), mask)


def test_box_mask_covers_integer_pixels_and_follows_the_crop():
  mask = box_scores.box_mask_over_crop(np.array([[2, 1, 5, 3]]), (10, 10))
  expected = np.zeros((10, 10), bool)
  expected[1:3, 2:5] = True
  np.testing.assert_array_equal(mask, expected)
  # A 200x100 frame is seen through the crop x in [50, 150): a box [0,0,60,10] covers crop
  # columns 0-9 only; two boxes are united.
  mask = box_scores.box_mask_over_crop(np.array([[0, 0, 60, 10], [140, 90, 400, 400]]), (200, 100))
  assert mask.shape == (100, 100)
  assert mask[:10, :10].all() and mask.sum() == 100 + 100


def test_relevance_mass_and_ciou_hand_cases():
  mass, iou = _scores(TOP_HALF_MAP, TOP_HALF_BOX)
  assert mass == pytest.approx(0.875, abs=1e-5)
  assert 0.98 <= iou < 1.0
  mass, iou = _scores(TOP_HALF_MAP, BOTTOM_HALF_BOX)
  assert mass == pytest.approx(0.125, abs=1e-5)
  assert iou == 0.0
  # Only positive relevance counts: the negative bottom half adds nothing.
  mass, _ = _scores(np.array([[1.0, 1.0], [-1.0, -1.0]]), TOP_HALF_BOX)
  assert mass == pytest.approx(1.0)
  # No positive relevance: mass 0.
  assert _scores(-np.ones((2, 2)), TOP_HALF_BOX)[0] == 0.0
  # Uniform positive relevance: mass = box area / crop area, with the box clipped to the crop.
  mass, _ = _scores(np.ones((3, 3)), (0, 0, 100, 100), frame_size=(200, 100))
  assert mass == pytest.approx(0.5)


def test_ciou_thresholds_at_the_median_rank_value():
  resized = np.arange(16.0).reshape(4, 4)  # sorted index 8 holds 8: predicted = values 9..15
  mask = np.zeros((4, 4), bool)
  mask[2:] = True  # values 8..15: 7 predicted inside, none outside
  assert _ciou(resized, mask) == pytest.approx(7 / 8)
  mask[2] = False  # values 12..15: 4 inside, 3 predicted outside
  assert _ciou(resized, mask) == pytest.approx(4 / 7)
  assert _ciou(resized, np.zeros((4, 4), bool)) == 0.0
  # LVS keeps every pixel of a constant map >= 0 (stt/explain/ciou.py): 4 inside, 12 outside.
  assert _ciou(np.ones((4, 4)), mask) == pytest.approx(4 / 16)
  assert _ciou(-np.ones((4, 4)), mask) == 0.0  # and none of a negative one


def test_the_crop_grid_resize_shrinks_without_antialiasing():
  # A 20x20 map over a 10x10 frame: cv2's INTER_LINEAR reads the 2x2 pixels around each output
  # pixel's centre, i.e. their mean at this exact halving; an antialiased resize would blur.
  where_map = np.random.default_rng(0).uniform(0, 8, size=(20, 20)).astype(np.float32)
  expected = where_map.reshape(10, 2, 10, 2).mean((1, 3))
  np.testing.assert_allclose(box_scores.resize_over_crop(where_map, (10, 10)), expected, atol=1e-5)


def test_ciou_auc_and_box_scores():
  # cIoUs 0.98 and 0: success share 1 at θ=0, ½ for θ in 0.05..0.95, 0 at θ=1.
  assert ciou_lib.ciou_auc([0.98, 0.0]) == pytest.approx(0.05 * (0.75 + 18 * 0.5 + 0.25))
  where = np.stack([TOP_HALF_MAP] * 2)[None]  # [V=1,T=2,2,2]
  boxes = np.zeros((1, 2, 1, 4), np.float32)
  boxes[0, 0, 0], boxes[0, 1, 0] = TOP_HALF_BOX, BOTTOM_HALF_BOX
  result = box_scores.box_scores(where, boxes, np.ones((1, 2, 1), bool), np.array([[100, 100]]))
  assert list(result) == list(box_scores.METRICS)  # bare names: the caller adds the namespace
  assert result["localization_trials"] == 2
  assert result["relevance_mass"] == pytest.approx(0.5, abs=1e-5)
  assert result["ciou"] == 0.5
  assert result["ciou_mean"] == pytest.approx(0.99 / 2, abs=0.01 / 2)
  empty = box_scores.box_scores(where, boxes, np.zeros((1, 2, 1), bool), np.array([[100, 100]]))
  assert empty["localization_trials"] == 0 and np.isnan(empty["ciou"])
  # Padded segments (segment_mask false) are no trials: only segment 0 (cIoU ~0.99) is left.
  masked = box_scores.box_scores(
      where,
      boxes,
      np.ones((1, 2, 1), bool),
      np.array([[100, 100]]),
      segment_mask=np.array([[True, False]]),
  )
  assert masked["localization_trials"] == 1 and masked["ciou"] == 1.0
  assert masked["relevance_mass"] == pytest.approx(0.875, abs=1e-5)


ANNOTATIONS = """Category&VideoID&Quality&StartTime&EndTime
Dog&vidA&good&1&3
Cat&vidB&good&0&2
Dog&vidC&good&2&4
"""
BOXES = [  # vidA: segment 0 top half (hit), segment 2 bottom-right corner (miss)
    {"video_id": "vidA", "segment": 0, "frame_size": [100, 100], "boxes": [[0, 0, 100, 50]]},
    {"video_id": "vidA", "segment": 2, "frame_size": [100, 100], "boxes": [[90, 90, 100, 100]]},
    {"video_id": "vidB", "segment": 1, "frame_size": [100, 100], "boxes": [[0, 50, 100, 100]]},
    {"video_id": "vidZ", "segment": 0, "frame_size": [100, 100], "boxes": [[0, 0, 9, 9]]},
]


def _write_inputs(directory: pathlib.Path, video_ids=("vidA", "vidB", "vidC"), num_when=4):
  when = np.full((3, num_when), 0.1, np.float32)
  when[0, 2] = when[1, 3] = when[2, 3] = 0.9  # hit [1,3), miss [0,2), hit [2,4)
  np.savez(
      directory / "maps.npz",
      video_id=np.array(video_ids),
      where=np.broadcast_to(TOP_HALF_MAP, (3, 4, 2, 2)),
      when=when,
  )
  (directory / "Annotations.txt").write_text(ANNOTATIONS)
  (directory / "boxes.jsonl").write_text("\n".join(json.dumps(record) for record in BOXES))
  return [
      "--maps",
      str(directory / "maps.npz"),
      "--events",
      str(directory / "Annotations.txt"),
      "--boxes",
      str(directory / "boxes.jsonl"),
      "--out",
      str(directory / "metrics.json"),
  ]


def test_cli_round_trip(tmp_path):
  args = _write_inputs(tmp_path)
  result = subprocess.run(
      [sys.executable, "-m", "stt.explain.score_maps", *args],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert result.returncode == 0, result.stderr
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  # Temporal: Dog 2/2, Cat 0/1. Spatial trials: vidA/0 hit, vidA/2 miss, vidB/1 miss.
  assert metrics["pointing_temporal"] == pytest.approx(2 / 3)
  assert metrics["pointing_temporal_class_mean"] == pytest.approx(0.5)
  assert metrics["pointing_spatial"] == pytest.approx(1 / 3)
  assert metrics["pointing_spatial_class_mean"] == pytest.approx(0.25)
  assert metrics["pointing_spatial_trials"] == metrics["localization_trials"] == 3
  assert metrics["relevance_mass"] == pytest.approx((0.875 + 0.0 + 0.125) / 3, abs=1e-5)
  assert metrics["ciou"] == pytest.approx(1 / 3)
  assert metrics["ciou_mean"] == pytest.approx(0.99 / 3, abs=0.01 / 3)  # [0.98, 1) / 3
  assert metrics["ciou_auc"] == pytest.approx(0.05 * ((1 + 1 / 3) / 2 + 18 / 3 + 1 / 6))
  assert metrics["num_videos"] == 3


def test_cli_without_boxes_reports_null_spatial_scores(tmp_path, capsys):
  args = _write_inputs(tmp_path)
  del args[4:6]  # no --boxes
  assert score_maps.main(args) == 0
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["pointing_spatial"] is None and metrics["ciou"] is None
  assert metrics["pointing_temporal"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "problem, message",
    [
        ({"video_ids": ("vidA", "vidQ", "vidC")}, "'vidQ'"),
        ({"num_when": 5}, "when has shape"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, problem, message):
  args = _write_inputs(tmp_path, **problem)
  assert score_maps.main(args) == score_maps.EXIT_BAD_INPUT
  stderr = capsys.readouterr().err
  assert stderr.count("\n") == 1 and message in stderr
  assert not (tmp_path / "metrics.json").exists()
