"""The field's cIoU@0.5 / AUC protocol on hand-computed cases and against an independent loop.

Flickr consensus case: annotators A and B mark [0,0,128,128] and C marks [128,128,256,256] on the
256-px image; int(224 * 128 / 256) = 112, so the gt is 1 on the top-left 112x112 block (2/2),
0.5 on the bottom-right one (1/2) and 0 elsewhere. A prediction of the top-left block has
cIoU = 12544 / (12544 + 0.5 * 12544 + 0) = 2/3.
"""

import numpy as np
import pytest

from stt.explain import sound_localization as sl


def _reference_ciou_auc(heatmaps, gts, strict=True):
  """An independent loop in the style of LVS's test.py (numpy bilinear resize, half-pixel)."""
  cious, resized_maps = [], []
  for heatmap, gt in zip(heatmaps, gts):
    h, w = heatmap.shape
    resized = np.zeros((224, 224))
    for r in range(224):
      y = min(max((r + 0.5) * h / 224 - 0.5, 0), h - 1)
      y0 = int(np.floor(y))
      y1 = min(y0 + 1, h - 1)
      fy = y - y0
      for c in range(224):
        x = min(max((c + 0.5) * w / 224 - 0.5, 0), w - 1)
        x0 = int(np.floor(x))
        x1 = min(x0 + 1, w - 1)
        fx = x - x0
        resized[r, c] = (1 - fy) * ((1 - fx) * heatmap[y0, x0] + fx * heatmap[y0, x1]) + fy * (
            (1 - fx) * heatmap[y1, x0] + fx * heatmap[y1, x1]
        )
    resized_maps.append(resized)
    pred = (resized - resized.min()) / (resized.max() - resized.min())
    threshold = np.sort(pred.flatten())[int(224 * 224 / 2)]
    binary = (pred > threshold) if strict else (pred >= threshold)
    binary = binary.astype(float)
    cious.append(np.sum(binary * gt) / (np.sum(gt) + np.sum(binary * (gt == 0))))
  results = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
  x = [0.05 * i for i in range(21)]
  auc = sum((x[i + 1] - x[i]) * (results[i + 1] + results[i]) / 2 for i in range(20))
  return resized_maps, np.array(cious), np.sum(np.array(cious) >= 0.5) / len(cious), auc


def test_flickr_consensus_map_and_ciou_hand_case():
  gt = sl.flickr_gt_map(np.array([[0, 0, 128, 128], [0, 0, 128, 128], [128, 128, 256, 256]]))
  assert gt.shape == (224, 224)
  assert np.all(gt[:112, :112] == 1.0) and np.all(gt[112:, 112:] == 0.5)
  assert gt[:112, 112:].sum() == 0 and gt[112:, :112].sum() == 0
  prediction = np.zeros((224, 224))
  prediction[:112, :112] = 1
  assert sl.ciou(prediction, gt) == pytest.approx(2 / 3)
  # One annotator alone gives 0.5 everywhere in its box: a perfect prediction scores 1 / 1.5.
  single = sl.flickr_gt_map(np.array([[0, 0, 128, 128]]))
  assert sl.ciou(prediction, single) == pytest.approx(12544 * 0.5 / (12544 * 0.5))
  # A prediction outside every box adds its area to the denominator.
  prediction[:112, 112:] = 1
  assert sl.ciou(prediction, gt) == pytest.approx(12544 / (18816 + 12544))


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
  assert sl.binarise(values, "gt").sum() == 7  # 9..15
  assert sl.binarise(values, "ge").sum() == 8  # 8..15
  assert sl.binarise(np.ones((4, 4))).sum() == 0  # constant: nothing above the median
  with pytest.raises(ValueError, match="median_rule"):
    sl.binarise(values, "above")


def test_a_map_equal_to_the_ground_truth_scores_one():
  gt = sl.vggss_gt_map(np.array([[0.1, 0.1, 0.6, 0.5]]))  # 40 % of the image
  result = sl.field_scores([gt], [gt])
  assert sl.ciou(sl.binarise(gt), gt) == 1.0
  assert (result.ciou, result.auc, result.ciou_mean, result.num_images) == (1.0, 1.0, 1.0, 1)


def test_success_rates_and_auc_hand_case():
  cious = [1.0, 0.5, 0.25, 0.0]
  rates = sl.success_rates(cious)
  np.testing.assert_allclose(rates, [1.0] + [0.75] * 5 + [0.5] * 5 + [0.25] * 10)
  # 0.05 * (0.875 + 4 * 0.75 + 0.625 + 4 * 0.5 + 0.375 + 9 * 0.25)
  assert sl.ciou_auc(cious) == pytest.approx(0.45625)


@pytest.mark.parametrize("rule", ["gt", "ge"])
def test_field_scores_match_an_independent_loop(rule):
  rng = np.random.default_rng(0)
  heatmaps = [rng.normal(size=(7, 7)) for _ in range(6)]
  gts = [
      sl.vggss_gt_map(
          np.sort(rng.uniform(size=(1, 2, 2)), axis=1)
          .transpose(0, 2, 1)
          .reshape(1, 4)[:, [0, 2, 1, 3]]
      )
      for _ in range(5)
  ]
  gts.append(sl.flickr_gt_map(np.array([[10, 20, 200, 150], [30, 30, 120, 250]])))
  resized, expected_cious, expected_ciou, expected_auc = _reference_ciou_auc(
      heatmaps, gts, rule == "gt"
  )
  # The resize agrees to float32 precision (a pixel at the median may then tie differently, so
  # the scores are compared on the float64 resize).
  for heatmap, expected in zip(heatmaps, resized):
    np.testing.assert_allclose(sl.scored_map(heatmap), expected, atol=1e-5)
  cious = [sl.ciou(sl.binarise(r, rule), g) for r, g in zip(resized, gts)]
  np.testing.assert_allclose(cious, expected_cious, atol=1e-12)
  result = sl.field_scores(resized, gts, rule)
  assert result.ciou == pytest.approx(expected_ciou)
  assert result.auc == pytest.approx(expected_auc)
  assert 0 < result.ciou_mean < 1 and result.num_images == 6


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
