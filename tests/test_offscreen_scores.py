"""stt/explain/offscreen_scores.py equals a direct computation of SLAVC's definitions."""

import numpy as np
import pytest

from stt.explain import offscreen_scores


def _reference_pr(scores, on_screen, localized, threshold):
  """SLAVC's EvaluatorFull.calc_precision_recall, one video at a time."""
  true_pos = false_pos = false_neg = 0
  for score, visible, hit in zip(scores, on_screen, localized):
    if not visible:
      false_pos += score >= threshold
    elif score >= threshold:
      true_pos += bool(hit)
      false_pos += not hit
    else:
      false_neg += 1
  precision = 1.0 if true_pos + false_pos == 0 else true_pos / (true_pos + false_pos)
  recall = 1.0 if true_pos + false_neg == 0 else true_pos / (true_pos + false_neg)
  return precision, recall


def _reference_ap(scores, on_screen, localized, skip=1):
  """SLAVC's EvaluatorFull.calc_ap."""
  precision, recall = [], []
  for threshold in np.sort(np.array(scores))[:-1][::-skip]:
    p, r = _reference_pr(scores, on_screen, localized, threshold)
    precision.append(p)
    recall.append(r)
  precision_max = [np.max(precision[i:]) for i in range(len(precision))]
  return sum(precision_max[i] * (recall[i + 1] - recall[i]) for i in range(len(precision) - 1))


def _reference_interpolated_ap(scores, on_screen, localized):
  """All-point interpolated AP, straight from its definition."""
  points = [_reference_pr(scores, on_screen, localized, t) for t in sorted(set(scores))[::-1]]
  total, previous_recall = 0.0, 0.0
  for i, (_, recall) in enumerate(points):
    total += max(p for p, _ in points[i:]) * (recall - previous_recall)
    previous_recall = recall
  return total


def _reference_max_f1(scores, on_screen, localized, stride=1):
  f1 = []
  for threshold in sorted(scores)[::stride]:
    p, r = _reference_pr(scores, on_screen, localized, threshold)
    f1.append(2 * r * p / (r + p) if r + p > 0 else 0.0)
  return max(f1)


SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]
ON_SCREEN = [True, False, True, True, False]
LOCALIZED = [True, True, False, True, True]


def test_hand_case_with_localization():
  # Thresholds 0.9 .. 0.5: (P, R) = (1, 1/3), (1/2, 1/3), (1/3, 1/2), (1/2, 1), (2/5, 1);
  # monotone P = 1, 1/2, 1/2, 1/2, 2/5; AP = 1 (1/3) + 1/2 (1/2 - 1/3) + 1/2 (1 - 1/2) = 2/3.
  ap = offscreen_scores.average_precision(SCORES, ON_SCREEN, LOCALIZED)
  assert ap == pytest.approx(2 / 3)
  # SLAVC's sum starts at its first kept threshold (0.8): 1/2 (1/6) + 1/2 (1/2) = 1/3.
  ap = offscreen_scores.average_precision(SCORES, ON_SCREEN, LOCALIZED, slavc_exact=True)
  assert ap == pytest.approx(1 / 3)
  # Best F1 at t = 0.6: P = 1/2, R = 1 -> 2/3.
  assert offscreen_scores.max_f1(SCORES, ON_SCREEN, LOCALIZED) == pytest.approx(2 / 3)


def test_hand_case_detection_only():
  # Every on-screen detection is a hit: (P, R) = (1, 1/3), (1/2, 1/3), (2/3, 2/3), (3/4, 1),
  # (3/5, 1); AP = 1/3 + 3/4 (1/3) + 3/4 (1/3) = 5/6 (SLAVC's: 1/2); best F1 at t = 0.6:
  # 2 (3/4) / (7/4) = 6/7.
  assert offscreen_scores.average_precision(SCORES, ON_SCREEN) == pytest.approx(5 / 6)
  slavc = offscreen_scores.average_precision(SCORES, ON_SCREEN, slavc_exact=True)
  assert slavc == pytest.approx(0.5)
  assert offscreen_scores.max_f1(SCORES, ON_SCREEN) == pytest.approx(6 / 7)


def test_perfect_and_inverted_rankings():
  on_screen = [True, True, False, False]
  assert offscreen_scores.max_f1([4, 3, 2, 1], on_screen) == 1.0
  assert offscreen_scores.max_f1([1, 2, 3, 4], on_screen) == pytest.approx(2 / 3)  # all: P=1/2
  assert offscreen_scores.average_precision([4, 3, 2, 1], on_screen) == pytest.approx(1.0)
  # Inverted: precision reaches 1/2 only at full recall.
  assert offscreen_scores.average_precision([1, 2, 3, 4], on_screen) == pytest.approx(0.5)
  # SLAVC's sum gives the perfect ranking 0 (its first kept threshold already has R = 1).
  perfect = offscreen_scores.average_precision([4, 3, 2, 1], on_screen, slavc_exact=True)
  assert perfect == 0.0


@pytest.mark.parametrize("count, slavc", [(37, False), (37, True), (450, True), (450, False)])
def test_random_cases_equal_the_reference(count, slavc):
  rng = np.random.default_rng(count)
  scores = np.round(rng.normal(size=count), 1)  # ties included
  on_screen = rng.random(count) < 0.7
  localized = rng.random(count) < 0.6
  stride = max(1, count // 10) if slavc else 1
  for hits in (localized, np.ones(count, bool)):
    got = offscreen_scores.average_precision(scores, on_screen, hits, slavc_exact=slavc)
    if slavc:
      want = _reference_ap(list(scores), on_screen, hits, max(1, count // 200))
    else:
      want = _reference_interpolated_ap(list(scores), on_screen, hits)
    assert got == pytest.approx(want, abs=1e-12)
    got = offscreen_scores.max_f1(scores, on_screen, hits, slavc_exact=slavc)
    assert got == pytest.approx(_reference_max_f1(list(scores), on_screen, hits, stride))


def test_on_screen_score_statistics():
  maps = np.array([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]])  # [N=2, 2, 2]
  np.testing.assert_allclose(offscreen_scores.on_screen_score(maps), [3.0, 1.0])  # top 1 of 4
  np.testing.assert_allclose(offscreen_scores.on_screen_score(maps, "peak"), [3.0, 1.0])
  np.testing.assert_allclose(offscreen_scores.on_screen_score(maps, "peak_to_mean"), [2.0, 1.0])
  eight = np.arange(8.0).reshape(1, 2, 2, 2)  # [N=1, T=2, 2, 2]: top quarter = {6, 7}
  np.testing.assert_allclose(offscreen_scores.on_screen_score(eight), [6.5])
  with pytest.raises(ValueError, match="unknown statistic"):
    offscreen_scores.on_screen_score(maps, "entropy")


def test_softmax_maps_cannot_say_nowhere_by_their_peak_but_logits_can():
  """Why the score is taken on the un-normalised map: two videos whose logits differ only by a
  constant (one strong, one weak everywhere) have the same softmax map."""
  logits = np.array([[5.0, 1.0, 0.0, 0.0], [1.0, -3.0, -4.0, -4.0]])
  softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  on_softmax = offscreen_scores.on_screen_score(softmax, "peak")
  assert on_softmax[0] == pytest.approx(on_softmax[1])
  on_logits = offscreen_scores.on_screen_score(logits, "peak")
  assert on_logits[0] - on_logits[1] == pytest.approx(4.0)
