"""Does an explanation say "the source is not on screen"? Per-video scores, AP and max-F1.

Follows SLAVC (Mo & Morgado, NeurIPS 2022; github.com/stoneMo/SLAVC test.py and utils.py
EvaluatorFull), the extended Flickr / VGG-SS evaluation:

* A video's "source on screen" confidence is a statistic of its map (`on_screen_score`).
  SLAVC's is `top_quarter_mean`: the mean of the largest quarter of the map's values, taken on
  the UN-normalised map (its audio-visual similarity, scaled by one constant for all videos,
  which changes no ranking). The map must not be normalised per video: a softmax attention map
  sums to 1 and a min-max normalised map peaks at 1 in every video, so by value alone neither
  can say "nowhere". Give the pre-softmax logits (or the raw relevance) instead. `peak` (the
  map's maximum) is offered too, and `peak_to_mean` (max / mean of |map|, scale-free) for
  explainers whose raw scale varies from video to video (gradients), at the cost of
  measuring how concentrated the map is rather than how strong.
* At a threshold t, a video with confidence >= t is a detection. An on-screen video detected
  is a true positive if it is also `localized` (SLAVC: cIoU >= 0.5; ours: any localization
  test the caller picks, e.g. in-box pointing; None: every detection of an on-screen video
  counts) and a false positive otherwise; an on-screen video not detected is a false negative;
  an off-screen video detected is a false positive. Precision is 1 when nothing is detected,
  recall 1 when there is nothing to find (SLAVC's conventions).
* `average_precision`: the all-point interpolated AP of that precision-recall curve: thresholds
  at every distinct confidence, from the largest down; precision made monotone (each replaced by
  the maximum at that and all lower thresholds); AP = sum_i p_max[i] * (r[i] - r[i - 1]) with
  r[-1] = 0. *Deviation:* SLAVC's calc_ap sums from its first threshold on: it drops the largest
  confidence as a threshold and the recall gained at the first one it keeps (r[-1] = r[0]), so
  a perfect ranking whose first kept threshold already finds every source scores 0 (e.g.
  confidences 4, 3, 2, 1 with the first two on screen); it also takes only every
  max(1, N // 200)-th threshold. `slavc_exact=True` computes SLAVC's sum as written.
* `max_f1`: the largest F1 = 2 P R / (P + R) (0 when P + R = 0) over thresholds at every
  confidence. SLAVC lists F1 at every max(1, N // 10)-th sorted confidence and its tables
  report the best (`slavc_exact=True` takes those thresholds); ours is never lower.
"""

from __future__ import annotations

import numpy as np

STATISTICS = ("top_quarter_mean", "peak", "peak_to_mean")


def on_screen_score(maps: np.ndarray, statistic: str = "top_quarter_mean") -> np.ndarray:
  """Per-video "source on screen" confidence; maps [N, ...] (any trailing shape, e.g. [T, H, W]
  over a video's scored segments) -> float64 [N]."""
  if statistic not in STATISTICS:
    raise ValueError(f"unknown statistic {statistic!r}; known: {STATISTICS}")
  flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
  if statistic == "peak":
    return flat.max(axis=1)
  if statistic == "peak_to_mean":
    mean = np.abs(flat).mean(axis=1)
    return np.where(mean > 0, flat.max(axis=1) / np.where(mean > 0, mean, 1.0), 0.0)
  top = np.sort(flat, axis=1)[:, -(flat.shape[1] // 4) :] if flat.shape[1] >= 4 else flat
  return top.mean(axis=1)


def precision_recall(
    scores: np.ndarray,
    on_screen: np.ndarray,
    thresholds: np.ndarray,
    localized: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """(precision, recall), float64 [K] each, at thresholds [K]; scores, on_screen (bool),
  localized (bool, or None: all) [N]. Counting as the module docstring says."""
  scores = np.asarray(scores, np.float64)
  on_screen = np.asarray(on_screen, bool)
  hit = on_screen if localized is None else on_screen & np.asarray(localized, bool)
  detected = scores[None, :] >= np.asarray(thresholds, np.float64)[:, None]  # [K, N]
  true_pos = (detected & hit).sum(axis=1)
  false_pos = detected.sum(axis=1) - true_pos
  false_neg = (~detected & on_screen).sum(axis=1)
  with np.errstate(divide="ignore", invalid="ignore"):
    precision = np.where(true_pos + false_pos == 0, 1.0, true_pos / (true_pos + false_pos))
    recall = np.where(true_pos + false_neg == 0, 1.0, true_pos / (true_pos + false_neg))
  return precision, recall


def average_precision(scores, on_screen, localized=None, *, slavc_exact: bool = False) -> float:
  """AP of the on-screen detections; see the module docstring. Inputs [N]."""
  scores = np.asarray(scores, np.float64)
  if slavc_exact:
    thresholds = np.sort(scores)[:-1][:: -max(1, len(scores) // 200)]
  else:
    thresholds = np.unique(scores)[::-1]
  if len(thresholds) == 0:
    return 0.0
  precision, recall = precision_recall(scores, on_screen, thresholds, localized)
  precision_max = np.maximum.accumulate(precision[::-1])[::-1]
  if slavc_exact:
    return float(np.sum(precision_max[:-1] * np.diff(recall)))
  return float(np.sum(precision_max * np.diff(recall, prepend=0.0)))


def max_f1(scores, on_screen, localized=None, *, slavc_exact: bool = False) -> float:
  """The best F1 over thresholds (every confidence, or SLAVC's every N // 10-th); inputs [N]."""
  scores = np.asarray(scores, np.float64)
  stride = max(1, len(scores) // 10) if slavc_exact else 1
  precision, recall = precision_recall(scores, on_screen, np.sort(scores)[::stride], localized)
  total = precision + recall
  f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
  return float(f1.max())
