"""Scores of "where" maps against the boxes of the pointing game: relevance mass and cIoU.

Trials are those of the spatial pointing game: one per annotated valid (video, segment). The
[h,w] map is bilinearly resized (cv2 INTER_LINEAR, `ciou.resize_linear`) over the centred square
crop of the original frame that the model saw, as in `pointing.point_of_map` (side
S = round(min(W, H)) pixels); both scores are computed on that S x S pixel grid. Pixel (r, c) has
its centre at original-frame coordinates (x_offset + (c + ½) s, y_offset + (r + ½) s),
s = side / S, and is inside a box [x0,y0,x1,y1] when x0 <= x < x1 and y0 <= y < y1 (integer
boxes cover pixels x0..x1-1, as LVS's slicing). The ground-truth mask is the union of the
segment's boxes, clipped to the crop.

- Relevance mass (Arras et al. 2022): sum of max(map, 0) inside the mask / sum of max(map, 0)
  over the crop; 0 when the map has no positive relevance.
- cIoU (LVS's, stt/explain/ciou.py): the map binarised by LVS's median rule against the mask.
  Reported: `ciou` = share of trials with cIoU >= 0.5, `ciou_auc` = trapezoid area under
  (share of trials with cIoU >= θ) over θ = 0, 0.05, ..., 1, and `ciou_mean`.
The sound-source benchmarks' protocol (224 px, whole-frame boxes) is
stt/explain/sound_source_benchmark.py.
"""

from __future__ import annotations

import numpy as np

from stt.explain import ciou as ciou_lib
from stt.explain.pointing import crop_region
from stt.explain.pointing import trial_segments

# The keys of `box_scores`, bare (the caller adds its namespace).
METRICS = ("relevance_mass", "ciou", "ciou_auc", "ciou_mean", "localization_trials")


def resize_over_crop(where_map: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
  """[h,w] -> [S,S] bilinear resize (cv2 INTER_LINEAR) over the centred square crop of a (W, H)
  frame."""
  _, _, side = crop_region(frame_size)
  return ciou_lib.resize_linear(where_map, max(1, int(round(side))))


def box_mask_over_crop(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
  """boxes [K,4] ([x0,y0,x1,y1], original pixels) -> [S,S] bool union mask on the crop grid."""
  x_offset, y_offset, side = crop_region(frame_size)
  size = max(1, int(round(side)))
  centres = (np.arange(size) + 0.5) * (side / size)
  xs, ys = x_offset + centres, y_offset + centres
  mask = np.zeros((size, size), bool)
  for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
    mask |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
  return mask


def relevance_mass(resized: np.ndarray, mask: np.ndarray) -> float:
  """Share of the positive relevance of resized [S,S] that lies in mask [S,S]."""
  positive = np.maximum(np.asarray(resized, np.float64), 0.0)
  total = positive.sum()
  return float(positive[mask].sum() / total) if total > 0 else 0.0


def box_scores(
    where: np.ndarray,
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size: np.ndarray,
    segment_mask: np.ndarray | None = None,
) -> dict[str, float]:
  """{metric: value} over all trials, bare names (METRICS): mean relevance_mass, ciou (share of
  trials with cIoU >= 0.5), ciou_auc, ciou_mean, localization_trials (the number of trials; the
  scores are NaN when there is none).

  Args:
    where: [V,T,h,w] relevance maps.
    boxes: [V,T,K,4] boxes [x0,y0,x1,y1] in original-frame pixels.
    box_mask: [V,T,K] which boxes exist; a segment with none is not a trial.
    frame_size: [V,2] original (W, H).
    segment_mask: [V,T] valid segments; a padded one is not a trial. None: all valid.
  """
  trials = trial_segments(box_mask, segment_mask)
  masses, cious = [], []
  for video in range(where.shape[0]):
    size = (int(frame_size[video][0]), int(frame_size[video][1]))
    for segment in np.flatnonzero(trials[video]):
      resized = resize_over_crop(where[video, segment], size)
      mask = box_mask_over_crop(boxes[video, segment][box_mask[video, segment]], size)
      masses.append(relevance_mass(resized, mask))
      cious.append(ciou_lib.ciou(ciou_lib.binarise(resized), mask))
  if not cious:
    return {**{name: float("nan") for name in METRICS[:-1]}, "localization_trials": 0}
  cious = np.asarray(cious)
  return {
      "relevance_mass": float(np.mean(masses)),
      "ciou": float(np.mean(cious >= 0.5)),
      "ciou_auc": ciou_lib.ciou_auc(cious),
      "ciou_mean": float(np.mean(cious)),
      "localization_trials": int(cious.size),
  }
