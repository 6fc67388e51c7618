"""Pointing games against hand-computed cases."""

from etils import epath
import jax
import numpy as np
import pytest

from stt.explain import explainers
from stt.explain import pointing
from stt.explain import suite_reports
from stt.explain import suite_scores


class _Grid:
  """A stand-in model for the baseline explainers: they only read `grid_size`."""

  def __init__(self, grid_size):
    self.grid_size = grid_size


def _one_hot_map(row, col, size=2):
  where = np.zeros((size, size), np.float32)
  where[row, col] = 1.0
  return where


def test_point_of_map_is_the_argmax_or_the_centre_of_its_plateau_in_original_pixels():
  # A 2×2 map peaking top-left, bilinearly resized to 100×100: a plateau of the pixels 0..24
  # (up to the cell centre, 24.5) in x and y; its point is the plateau's centre.
  assert pointing.point_of_map(_one_hot_map(0, 0), (100, 100)) == (12.0, 12.0)
  assert pointing.point_of_map(_one_hot_map(1, 1), (100, 100)) == (87.0, 87.0)
  # A 200×100 frame is centre-cropped to 100×100 starting at x=50.
  assert pointing.point_of_map(_one_hot_map(0, 0), (200, 100)) == (62.0, 12.0)
  # A single maximum is TorchRay's point, the argmax pixel itself.
  single = np.zeros((100, 100), np.float32)
  single[30, 70] = 1.0
  assert pointing.point_of_map(single, (100, 100)) == (70.0, 30.0)


@pytest.mark.parametrize(
    "grid, frame_size",
    [((8, 8), (128, 128)), ((7, 7), (128, 128)), ((3, 3), (30, 30)), ((4, 6), (90, 60))]
    + [((8, 8), (160, 120))],
)
def test_center_explainer_points_at_the_frame_centre(grid, frame_size):
  # One centre, the right one: the `center` map's point is the center_prior's point (it was
  # (56, 56), the first pixel of the central plateau, on 128 px with an 8x8 grid).
  where = np.asarray(
      explainers.center(_Grid(grid), {"segment_mask": np.ones((1, 2), bool)})["where"]
  )
  assert pointing.point_of_map(where[0, 0], frame_size) == pointing.frame_centre(frame_size)


def _run_centre(line: np.ndarray, index: int) -> float:
  """The centre of the run of True in line [n] through line[index] (a plain loop)."""
  start, end = index, index
  while start > 0 and line[start - 1]:
    start -= 1
  while end < len(line) - 1 and line[end + 1]:
    end += 1
  return (start + end) / 2


def test_points_of_maps_equal_one_resize_per_map_across_chunks():
  # More maps than one resize chunk, on a non-square frame: each point is the argmax of that
  # map alone resized over the centred crop, moved to the centre of its plateau (a peak on the
  # border cells is flat up to the border) (the per-map reference, eager jax.image).
  rng = np.random.default_rng(0)
  maps = rng.random((pointing._RESIZE_CHUNK + 7, 4, 4)).astype(np.float32)
  maps[3] = 0.0  # a constant map: one plateau, the whole crop; its centre
  points = pointing.points_of_maps(maps, (90, 60))
  for index, (where_map, point) in enumerate(zip(maps, points)):
    if index == 3:
      continue
    resized = np.asarray(jax.image.resize(where_map, (60, 60), method="linear"))
    row, col = np.unravel_index(np.argmax(resized), resized.shape)
    tied = resized >= resized.max() * (1 - 1e-5)
    assert tuple(point) == (15 + _run_centre(tied[row], col), _run_centre(tied[:, col], row))
  assert tuple(points[3]) == (15 + 29.5, 29.5)


def test_squared_distance_to_box_pixels():
  frame = (100, 100)
  assert pointing.squared_distance_to_box((5, 5), (0, 0, 10, 10), frame) == 0.0
  # Box [14, 30) covers pixels 14..29: 14 px from pixel 0.
  assert pointing.squared_distance_to_box((0, 0), (14, 0, 30, 10), frame) == 14**2
  # Pixels 3..8 x 4..8: the corner pixel (3, 4).
  assert pointing.squared_distance_to_box((0, 0), (3, 4, 9, 9), frame) == 25
  # The right edge is exclusive: [0, 10) covers pixels 0..9, so pixel 12 is 3 px away.
  assert pointing.squared_distance_to_box((12, 0), (0, 0, 10, 10), frame) == 9
  # Fractional edges: a pixel belongs to a box when its centre (x + ½) lies inside.
  assert pointing.squared_distance_to_box((0, 0), (14.4, 0, 30, 10), frame) == 14**2
  assert pointing.squared_distance_to_box((0, 0), (14.6, 0, 30, 10), frame) == 15**2
  # Clipped to the frame; a box outside it covers no pixel.
  assert pointing.squared_distance_to_box((99, 0), (120, 0, 130, 10), frame) == float("inf")


def test_torchray_hit_rule_at_the_boundary():
  """TorchRay's PointingGame: hit iff (x - px)² + (y - py)² < tolerance² for a mask pixel."""
  where = np.stack([_one_hot_map(0, 0, size=100)] * 6)[None]  # [V=1,T=6,100,100] → (0, 0)
  boxes = np.zeros((1, 6, 1, 4), np.float32)
  boxes[0, 0, 0] = (15, 0, 30, 10)  # exactly 15 px away: miss (strict <)
  boxes[0, 1, 0] = (14, 0, 30, 10)  # 14 px away: hit
  boxes[0, 2, 0] = (14.9, 0, 30, 10)  # pixel 14's centre 14.5 is outside: 15 px, miss
  boxes[0, 3, 0] = (14.4, 0, 30, 10)  # pixel 14's centre is inside: 14 px, hit
  boxes[0, 4, 0] = (9, 12, 30, 30)  # corner pixel (9, 12): 81 + 144 = 225, miss
  boxes[0, 5, 0] = (9, 11, 30, 30)  # corner pixel (9, 11): 81 + 121 = 202, hit
  box_mask = np.ones((1, 6, 1), bool)
  result = pointing.spatial_pointing(
      where, boxes, box_mask, np.array([[100, 100]]), labels=np.array([0]), tolerance_px=15
  )
  hits = [
      pointing.spatial_pointing(
          where[:, [t]], boxes[:, [t]], box_mask[:, [t]], np.array([[100, 100]]), np.array([0]), 15
      ).overall
      for t in range(6)
  ]
  assert hits == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
  assert result.overall == pytest.approx(3 / 6)
  # Tolerance 1 hits only on the mask itself; tolerance 0 never hits (TorchRay's rule).
  assert pointing.is_hit((10, 0), [(10, 0, 20, 10)], (100, 100), 1.0)
  assert not pointing.is_hit((9, 0), [(10, 0, 20, 10)], (100, 100), 1.0)
  assert not pointing.is_hit((10, 0), [(10, 0, 20, 10)], (100, 100), 0.0)


def test_spatial_pointing_tolerance_and_class_mean():
  where = np.stack([_one_hot_map(0, 0, size=100)] * 4)[None]  # [V=1,T=4,100,100] → (0, 0)
  where = np.concatenate([where, where])  # V=2
  boxes = np.zeros((2, 4, 1, 4), np.float32)
  box_mask = np.zeros((2, 4, 1), bool)
  boxes[0, 0, 0] = (0, 0, 10, 10)  # inside: hit
  boxes[0, 1, 0] = (14, 0, 30, 10)  # 14 px away: hit
  boxes[0, 2, 0] = (16, 0, 30, 10)  # 16 px away: miss
  boxes[1, 3, 0] = (20, 20, 30, 30)  # 28.3 px away: miss
  box_mask[0, :3, 0] = True
  box_mask[1, 3, 0] = True
  result = pointing.spatial_pointing(
      where, boxes, box_mask, np.array([[100, 100]] * 2), labels=np.array([0, 1]), tolerance_px=15
  )
  assert result.num_trials == 4
  assert result.overall == pytest.approx(2 / 4)
  assert result.class_mean == pytest.approx((2 / 3 + 0) / 2)


def test_temporal_pointing_respects_mask_and_event():
  when = np.array([[0.1, 0.5, 0.4], [0.1, 0.5, 0.4], [0.1, 0.5, 0.4]])
  mask = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)
  start, end = np.array([1, 2, 0]), np.array([3, 3, 1])
  result = pointing.temporal_pointing(when, mask, start, end, labels=np.array([0, 0, 1]))
  # Video 0: argmax 1 in [1,3) hit. Video 1: 1 is padded → argmax 2 in [2,3) hit. Video 2: miss.
  assert result.overall == pytest.approx(2 / 3)
  assert result.class_mean == pytest.approx((1.0 + 0.0) / 2)
  assert result.num_trials == 3
  # A video whose annotated event is empty (start == end) is not a trial.
  result = pointing.temporal_pointing(
      when, mask, np.array([1, 2, 0]), np.array([3, 3, 0]), labels=np.array([0, 0, 1])
  )
  assert result.num_trials == 2 and result.overall == 1.0


def test_padded_segments_are_no_trials():
  where = np.stack([_one_hot_map(0, 0, size=100)] * 3)[None]  # [V=1,T=3,100,100] → (0, 0)
  boxes = np.zeros((1, 3, 1, 4), np.float32)
  boxes[0, :, 0] = (0, 0, 10, 10)
  box_mask = np.ones((1, 3, 1), bool)
  segment_mask = np.array([[True, False, True]])
  result = pointing.spatial_pointing(
      where, boxes, box_mask, np.array([[100, 100]]), np.array([0]), segment_mask=segment_mask
  )
  assert result.num_trials == 2 and result.overall == 1.0
  assert (
      pointing.spatial_pointing(
          where, boxes, box_mask, np.array([[100, 100]]), np.array([0])
      ).num_trials
      == 3
  )  # no mask: every segment
  none_valid = pointing.spatial_pointing(
      where,
      boxes,
      box_mask,
      np.array([[100, 100]]),
      np.array([0]),
      segment_mask=np.zeros((1, 3), bool),
  )
  assert none_valid.num_trials == 0 and np.isnan(none_valid.overall)
  # Temporal: a video without a valid segment is no trial (it used to score a miss at 0).
  when = np.array([[0.1, 0.9, 0.2], [0.1, 0.9, 0.2]])
  mask = np.array([[1, 1, 1], [0, 0, 0]], bool)
  result = pointing.temporal_pointing(
      when, mask, np.array([1, 1]), np.array([2, 2]), labels=np.array([0, 1])
  )
  assert result.num_trials == 1 and result.overall == 1.0 and result.class_mean == 1.0


def test_chance_levels_are_the_shares_of_cells_and_segments_that_hit():
  # 2×2 grid on 100×100 frames. The four one-hot maps point at the centres of their plateaus
  # (pixels 0..24 and 75..99): (12, 12), (87, 12), (12, 87), (87, 87).
  boxes = np.zeros((2, 3, 1, 4), np.float32)
  box_mask = np.zeros((2, 3, 1), bool)
  boxes[0, 0, 0] = (0, 0, 50, 50)  # only the top-left point: 1/4
  boxes[0, 1, 0] = (0, 0, 100, 20)  # the two top points: 2/4
  boxes[1, 2, 0] = (0, 0, 100, 100)  # all four: 4/4, but segment 2 of video 1 is padded
  boxes[1, 0, 0] = (40, 40, 60, 60)  # none on the box
  box_mask[0, :2, 0] = box_mask[1, [0, 2], 0] = True
  segment_mask = np.array([[True, True, True], [True, True, False]])
  labels = np.array([0, 1])
  frame_size = np.full((2, 2), 100)
  spatial = pointing.chance_spatial_pointing(
      boxes, box_mask, frame_size, labels, (2, 2), tolerance_px=1.0, segment_mask=segment_mask
  )
  assert spatial.num_trials == 3
  assert spatial.overall == pytest.approx((0.25 + 0.5 + 0.0) / 3)
  assert spatial.class_mean == pytest.approx((0.375 + 0.0) / 2)
  # Temporal: video 0 has event [0, 2) in 3 valid segments → 2/3; video 1 event [1, 3) in its
  # 2 valid segments → 1/2 (the padded third is no segment); an empty event is no trial.
  temporal = pointing.chance_temporal_pointing(
      np.array([[True, True, True], [True, True, False], [True, True, True]]),
      np.array([0, 1, 2]),
      np.array([2, 3, 2]),
      np.array([0, 1, 1]),
  )
  assert temporal.num_trials == 2
  assert temporal.overall == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_center_prior_points_at_the_exact_frame_centre():
  assert pointing.frame_centre((128, 128)) == (63.5, 63.5)
  boxes = np.zeros((1, 4, 1, 4), np.float32)
  boxes[0, 0, 0] = (78, 60, 90, 70)  # pixels 78..89: 14.5 px from 63.5, hit
  boxes[0, 1, 0] = (79, 60, 90, 70)  # 15.5 px: miss
  boxes[0, 2, 0] = (73, 73, 90, 90)  # 9.5² + 9.5² = 180.5 < 225: hit
  boxes[0, 3, 0] = (20, 20, 40, 40)  # far: miss
  box_mask = np.ones((1, 4, 1), bool)
  result = pointing.center_prior_spatial_pointing(
      boxes, box_mask, np.array([[128, 128]]), np.array([0]), tolerance_px=15
  )
  assert result.num_trials == 4 and result.overall == pytest.approx(2 / 4)
  # The `center` explainer's 8×8 Gaussian points at the same centre: the same hits, and in the
  # box without tolerance only where the box holds the centre.
  where = np.asarray(
      explainers.center(_Grid((8, 8)), {"segment_mask": np.ones((1, 4), bool)})["where"]
  )
  explained = pointing.spatial_pointing(
      where, boxes, box_mask, np.array([[128, 128]]), np.array([0]), tolerance_px=15
  )
  assert explained.overall == pytest.approx(2 / 4) and explained.in_box == 0.0
  boxes[0, 3, 0] = (60, 60, 70, 70)  # holds the centre
  for result in (
      pointing.spatial_pointing(
          where, boxes, box_mask, np.array([[128, 128]]), np.array([0]), tolerance_px=15
      ),
      pointing.center_prior_spatial_pointing(
          boxes, box_mask, np.array([[128, 128]]), np.array([0]), tolerance_px=15
      ),
  ):
    assert result.overall == pytest.approx(3 / 4) and result.in_box == pytest.approx(1 / 4)


def test_pointing_in_box_is_the_same_point_without_tolerance():
  # One map peaking at pixel (x=70, y=30) on 100 px frames; boxes 0 px, 5 px and 20 px away.
  where = np.zeros((1, 3, 100, 100), np.float32)
  where[:, :, 30, 70] = 1.0
  boxes = np.zeros((1, 3, 1, 4), np.float32)
  boxes[0, 0, 0] = (65, 25, 75, 35)  # holds the point
  boxes[0, 1, 0] = (75, 25, 85, 35)  # 5 px right: a TorchRay hit, not in the box
  boxes[0, 2, 0] = (90, 25, 99, 35)  # 20 px: a miss
  out = {
      "where": where,
      "boxes": boxes,
      "box_mask": np.ones((1, 3, 1), bool),
      "frame_size": np.array([[100, 100]]),
      "label": np.array([0]),
      "segment_mask": np.ones((1, 3), bool),
      "when": np.ones((1, 3)),
      "event_start": np.array([0]),
      "event_end": np.array([1]),
  }
  metrics = pointing.pointing_metrics(out, 15.0)
  assert metrics["pointing_spatial"] == pytest.approx(2 / 3)
  assert metrics["pointing_spatial_in_box"] == pytest.approx(1 / 3)


def test_a_model_without_frames_has_no_spatial_baseline_rows():
  # audio_only's 1x1 placeholder map: no spatial chance or centre row ("—"), not 0.000.
  out = {
      "boxes": np.tile(np.array([78, 60, 90, 70], np.float32), (1, 2, 1, 1)),
      "box_mask": np.ones((1, 2, 1), bool),
      "frame_size": np.array([[128, 128]]),
      "label": np.array([0]),
      "where": np.zeros((1, 2, 1, 1), np.float32),
      "segment_mask": np.ones((1, 2), bool),
      "event_start": np.array([0]),
      "event_end": np.array([1]),
  }
  with_frames = suite_scores.baseline_scores(out, 15.0)
  without = suite_scores.baseline_scores(out, 15.0, spatial=False)
  assert np.isfinite(with_frames["chance"]["pointing_spatial"])
  for row in ("chance", "center_prior"):
    assert np.isnan(without[row]["pointing_spatial"]), row
    assert np.isnan(without[row]["pointing_spatial_class_mean"]), row
  assert without["chance"]["pointing_temporal"] == with_frames["chance"]["pointing_temporal"]


def test_suite_reports_the_center_prior_row(tmp_path):
  boxes = np.zeros((1, 2, 1, 4), np.float32)
  boxes[0, :, 0] = (78, 60, 90, 70)
  out = {
      "boxes": boxes,
      "box_mask": np.ones((1, 2, 1), bool),
      "frame_size": np.array([[128, 128]]),
      "label": np.array([0]),
      "where": np.zeros((1, 2, 8, 8), np.float32),
      "segment_mask": np.ones((1, 2), bool),
      "event_start": np.array([0]),
      "event_end": np.array([1]),
  }
  scores = suite_scores.baseline_scores(out, 15.0)
  assert scores["center_prior"]["pointing_spatial"] == 1.0
  assert scores["chance"]["pointing_spatial"] < 0.5
  suite_reports.write_reports(epath.Path(tmp_path), scores, {}, [])
  lines = (tmp_path / "tables.md").read_text().splitlines()
  assert lines[2].startswith("| chance |")
  assert lines[3].startswith("| center_prior | 1.000 | — |")
