"""The field's cIoU@0.5 / AUC protocol on hand-computed cases and against an independent
implementation of the reference code's rules (LVS's test.py and utils.py), written here in numpy:

- cv2.resize(..., interpolation=cv2.INTER_LINEAR): half-pixel centres, the 2x2 input pixels
  around each output pixel's centre, edge pixels clamped, no antialiasing whatever the scale;
- LVS's binarisation: normalize_img(-map) (min-max, a constant map left as it is), pred = 1 - it,
  `pred[pred > thr] = 1; pred[pred < 1] = 0` with thr the sorted value at index floor(S*S/2),
  and cal_CIOU counting pixels >= 0.5; EZ-VSL's: normalize_img(map) >= thr.

Flickr consensus case: annotators A and B mark [0,0,128,128] and C marks [128,128,256,256] on the
256-px image; int(224 * 128 / 256) = 112, so the gt is 1 on the top-left 112x112 block (2/2),
0.5 on the bottom-right one (1/2) and 0 elsewhere. A prediction of the top-left block has
cIoU = 12544 / (12544 + 0.5 * 12544 + 0) = 2/3.
"""

import jax
import numpy as np
import pytest

from stt.explain import ciou as ciou_lib
from stt.explain import sound_source_benchmark as sl


def _cv2_inter_linear(source: np.ndarray, height: int, width: int) -> np.ndarray:
  """cv2's INTER_LINEAR rule in numpy: output pixel i reads input coordinate
  (i + 0.5) * in / out - 0.5, clamped to [0, in - 1], between its two neighbours."""

  def axis(out_size, in_size):
    coordinate = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
    low = np.floor(coordinate).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, coordinate - low

  source = np.asarray(source, np.float64)
  y0, y1, fy = axis(height, source.shape[0])
  x0, x1, fx = axis(width, source.shape[1])
  rows = source[y0] * (1 - fy)[:, None] + source[y1] * fy[:, None]
  return rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]


def _normalize_img(value: np.ndarray) -> np.ndarray:
  """LVS's utils.normalize_img: min-max, a constant map returned as it is."""
  low, high = value.min(), value.max()
  return (value - low) / (high - low) if high - low != 0 else value


def _reference_prediction(heatmap: np.ndarray, rule: str = "gt") -> np.ndarray:
  """0/1 prediction of a [S,S] map: LVS's test.py steps ('gt') or EZ-VSL's ('ge')."""
  heatmap = np.asarray(heatmap, np.float64)
  if rule == "ge":
    pred = _normalize_img(heatmap)
    threshold = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
    return (pred >= threshold).astype(float)
  pred = 1 - _normalize_img(-heatmap)
  threshold = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
  pred[pred > threshold] = 1
  pred[pred < 1] = 0
  return (pred >= 0.5).astype(float)  # cal_CIOU(pred, gt, 0.5)


def _reference_ciou_auc(heatmaps, gts, rule="gt"):
  """An independent loop in the style of LVS's test.py."""
  cious, resized_maps = [], []
  for heatmap, gt in zip(heatmaps, gts):
    resized = _cv2_inter_linear(heatmap, 224, 224)
    resized_maps.append(resized)
    binary = _reference_prediction(resized, rule)
    cious.append(np.sum(binary * gt) / (np.sum(gt) + np.sum(binary * (gt == 0))))
  results = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
  x = [0.05 * i for i in range(21)]
  auc = sum((x[i + 1] - x[i]) * (results[i + 1] + results[i]) / 2 for i in range(20))
  return resized_maps, np.array(cious), np.sum(np.array(cious) >= 0.5) / len(cious), auc


@pytest.mark.parametrize("shape", [(448, 448), (300, 250), (225, 230), (7, 7), (14, 9)])
def test_scored_map_resizes_as_cv2_inter_linear_growing_and_shrinking(shape):
  rng = np.random.default_rng(sum(shape))
  heatmap = rng.uniform(0, 8, size=shape).astype(np.float32)  # the 0-8 scale of the issue
  # Float32 sampling coordinates (cv2 rounds them to float too) are off by up to about
  # in_size * 2**-24 input pixels at a non-integer scale: ~1e-4 on this scale (an antialiased
  # shrink is off by ~1, test_shrinking_does_not_antialias).
  np.testing.assert_allclose(
      sl.scored_map(heatmap), _cv2_inter_linear(heatmap, 224, 224), rtol=0, atol=5e-4
  )
  np.testing.assert_allclose(
      ciou_lib.resize_linear(heatmap, (100, 60)),
      _cv2_inter_linear(heatmap, 100, 60),
      rtol=0,
      atol=5e-4,
  )


def test_shrinking_does_not_antialias():
  # A 448-px map on a 0-8 scale shrunk to 224: cv2 averages the 2x2 pixels around each output
  # centre; an antialiasing resize (jax.image.resize's default) spreads its kernel over 4x4.
  rng = np.random.default_rng(1)
  heatmap = rng.uniform(0, 8, size=(448, 448)).astype(np.float32)
  antialiased = np.asarray(jax.image.resize(heatmap, (224, 224), method="linear"))
  reference = _cv2_inter_linear(heatmap, 224, 224)
  assert np.abs(antialiased - reference).max() > 0.5  # the difference the protocol must avoid
  np.testing.assert_allclose(sl.scored_map(heatmap), reference, atol=2e-5)
  with pytest.raises(ValueError, match=r"must be \[h,w\], got shape \(2, 3, 4\)"):
    ciou_lib.resize_linear(np.zeros((2, 3, 4)), 224)


@pytest.mark.parametrize("rule", ["gt", "ge"])
def test_binarise_follows_the_reference_on_ties_flat_tops_and_constant_maps(rule):
  rng = np.random.default_rng(3)
  maps = [rng.integers(0, levels, size=(16, 16)).astype(float) for levels in (2, 3, 5, 40)]
  flat_top = np.zeros((16, 16))
  flat_top[:10] = 3.0  # 160 of 256 pixels at the maximum: the median value is the maximum
  maps += [flat_top, -flat_top, np.full((16, 16), 2.5), np.zeros((16, 16)), np.full((4, 4), -1.0)]
  for heatmap in maps:
    np.testing.assert_array_equal(
        ciou_lib.binarise(heatmap, rule), _reference_prediction(heatmap, rule)
    )
  # The cases spelled out: LVS keeps the flat top (the maximum) and every pixel of a constant
  # map >= 0 (1 - (-c) >= 1), none of a negative one; EZ-VSL keeps every pixel of any constant.
  assert ciou_lib.binarise(flat_top, rule).sum() == 160
  assert ciou_lib.binarise(np.full((4, 4), 2.5), rule).sum() == 16
  assert ciou_lib.binarise(np.full((4, 4), -1.0), rule).sum() == (0 if rule == "gt" else 16)


def test_flickr_consensus_map_and_ciou_hand_case():
  gt = sl.flickr_gt_map(np.array([[0, 0, 128, 128], [0, 0, 128, 128], [128, 128, 256, 256]]))
  assert gt.shape == (224, 224)
  assert np.all(gt[:112, :112] == 1.0) and np.all(gt[112:, 112:] == 0.5)
  assert gt[:112, 112:].sum() == 0 and gt[112:, :112].sum() == 0
  prediction = np.zeros((224, 224))
  prediction[:112, :112] = 1
  assert ciou_lib.ciou(prediction, gt) == pytest.approx(2 / 3)
  # One annotator alone gives 0.5 everywhere in its box: a perfect prediction scores 1 / 1.5.
  single = sl.flickr_gt_map(np.array([[0, 0, 128, 128]]))
  assert ciou_lib.ciou(prediction, single) == pytest.approx(12544 * 0.5 / (12544 * 0.5))
  # A prediction outside every box adds its area to the denominator.
  prediction[:112, 112:] = 1
  assert ciou_lib.ciou(prediction, gt) == pytest.approx(12544 / (18816 + 12544))


def test_vggss_gt_clamps_the_sentinel_and_maps_boxes():
  boxes = np.array([[0.25, 0.5, 0.5, 1.0], [0.1, 0.2, -2.88e16, 0.5]])  # 2nd: sentinel -> empty
  gt = sl.vggss_gt_map(boxes)
  expected = np.zeros((224, 224))
  expected[112:224, 56:112] = 1
  np.testing.assert_array_equal(gt, expected)
  # Aligned: on a 200x100 frame the crop is x in [50, 150); [0.25,0,0.5,0.5] is x 50..100,
  # y 0..50 in pixels: crop columns 0..112, rows 0..112.
  aligned = sl.vggss_gt_map(np.array([[0.25, 0.0, 0.5, 0.5]]), (200, 100), gt_geometry="aligned")
  expected = np.zeros((224, 224))
  expected[:112, :112] = 1
  np.testing.assert_array_equal(aligned, expected)
  # The reference geometry ignores the crop; map_covers='frame' + aligned equals it.
  reference = sl.vggss_gt_map(np.array([[0.25, 0.0, 0.5, 0.5]]))
  assert reference[:112, 56:112].all() and reference.sum() == 112 * 56
  np.testing.assert_array_equal(
      sl.vggss_gt_map(
          np.array([[0.25, 0.0, 0.5, 0.5]]), (200, 100), gt_geometry="aligned", map_covers="frame"
      ),
      reference,
  )
  with pytest.raises(ValueError, match="frame size"):
    sl.vggss_gt_map(boxes, gt_geometry="aligned")
  with pytest.raises(ValueError, match="gt_geometry='x'"):
    sl.vggss_gt_map(boxes, gt_geometry="x")


def test_binarise_median_rules():
  values = np.arange(16, dtype=float).reshape(4, 4)  # sorted index 8 holds 8
  assert ciou_lib.binarise(values, "gt").sum() == 7  # 9..15
  assert ciou_lib.binarise(values, "ge").sum() == 8  # 8..15
  with pytest.raises(ValueError, match="median_rule"):
    ciou_lib.binarise(values, "above")


def test_a_map_equal_to_the_ground_truth_scores_one():
  gt = sl.vggss_gt_map(np.array([[0.1, 0.1, 0.6, 0.5]]))  # 40 % of the image
  result = sl.field_scores([gt], [gt])
  assert ciou_lib.ciou(ciou_lib.binarise(gt), gt) == 1.0
  assert result == {"field_ciou": 1.0, "field_auc": 1.0, "field_ciou_mean": 1.0, "field_trials": 1}


def test_success_rates_and_auc_hand_case():
  cious = [1.0, 0.5, 0.25, 0.0]
  rates = ciou_lib.success_rates(cious)
  np.testing.assert_allclose(rates, [1.0] + [0.75] * 5 + [0.5] * 5 + [0.25] * 10)
  # 0.05 * (0.875 + 4 * 0.75 + 0.625 + 4 * 0.5 + 0.375 + 9 * 0.25)
  assert ciou_lib.ciou_auc(cious) == pytest.approx(0.45625)


@pytest.mark.parametrize("rule", ["gt", "ge"])
def test_field_scores_match_an_independent_loop(rule):
  rng = np.random.default_rng(0)
  heatmaps = [rng.normal(size=(7, 7)) for _ in range(5)] + [rng.normal(size=(300, 260))]
  gts = [
      sl.vggss_gt_map(
          np.sort(rng.uniform(size=(1, 2, 2)), axis=1)
          .transpose(0, 2, 1)
          .reshape(1, 4)[:, [0, 2, 1, 3]]
      )
      for _ in range(5)
  ]
  gts.append(sl.flickr_gt_map(np.array([[10, 20, 200, 150], [30, 30, 120, 250]])))
  resized, expected_cious, expected_ciou, expected_auc = _reference_ciou_auc(heatmaps, gts, rule)
  # The resize agrees to float32 precision (a pixel at the median may then tie differently, so
  # the scores are compared on the float64 resize).
  for heatmap, expected in zip(heatmaps, resized):
    np.testing.assert_allclose(sl.scored_map(heatmap), expected, rtol=0, atol=5e-4)
  cious = [ciou_lib.ciou(ciou_lib.binarise(r, rule), g) for r, g in zip(resized, gts)]
  np.testing.assert_allclose(cious, expected_cious, atol=1e-12)
  result = sl.field_scores(resized, gts, rule)
  assert result["field_ciou"] == pytest.approx(expected_ciou)
  assert result["field_auc"] == pytest.approx(expected_auc)
  assert 0 < result["field_ciou_mean"] < 1 and result["field_trials"] == 6


def test_published_rows_name_their_sources():
  rows = sl.published_rows("vggss")
  assert [(method, ciou, auc) for method, ciou, auc, _ in rows] == [
      ("EZ-VSL", 39.34, 39.78),
      ("SSL-alignment", 41.42, None),
  ]
  assert all(source.startswith("https://github.com/") for *_, source in rows)
  assert [row[:3] for row in sl.published_rows("flickr_soundnet")] == [
      ("EZ-VSL", 83.94, 63.60),
      ("SSL-alignment", 86.00, None),
  ]
