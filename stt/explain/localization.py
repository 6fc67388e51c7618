"""Localization scores of "where" maps against boxes: relevance mass and LVS-style cIoU.

Trials are those of the spatial pointing game: one per annotated valid (video, segment). The
[h,w] map is bilinearly resized over the centred square crop of the original frame that the model
saw, as in `pointing.point_of_map` (side S = round(min(W, H)) pixels); both scores are computed on
that S x S pixel grid. Pixel (r, c) has its centre at original-frame coordinates
(x_offset + (c + ½) s, y_offset + (r + ½) s), s = side / S, and is inside a box [x0,y0,x1,y1]
when x0 <= x < x1 and y0 <= y < y1 (integer boxes cover pixels x0..x1-1, as LVS's slicing). The
ground-truth mask is the union of the segment's boxes, clipped to the crop.

- Relevance mass (Arras et al. 2022): sum of max(map, 0) inside the mask / sum of max(map, 0)
  over the crop; 0 when the map has no positive relevance.
- cIoU (Chen et al. 2021, "Localizing Visual Sounds the Hard Way", their test.py): the map is
  binarised as pred = map > v, with v the value at index floor(S*S/2) of the ascending sorted
  pixel values (about the top half of the pixels);
  cIoU = |pred ∩ mask| / (|mask| + |pred \\ mask|), 0 when both are empty.
  Reported: `ciou` = share of trials with cIoU >= 0.5, `ciou_auc` = trapezoid area under
  (share of trials with cIoU >= θ) over θ = 0, 0.05, ..., 1, and `ciou_mean`.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from stt.explain.pointing import crop_region
from stt.explain.pointing import trial_segments

CIOU_THRESHOLDS = tuple(0.05 * i for i in range(21))


# `localization_scores`'s metrics: relevance_mass, the mean over trials; ciou, the share of
# trials with cIoU >= 0.5; ciou_auc, the area under the success-vs-threshold curve (thresholds
# 0..1); ciou_mean, the mean cIoU; the number of trials.
METRICS = ("relevance_mass", "ciou", "ciou_auc", "ciou_mean", "localization_trials")


@functools.partial(jax.jit, static_argnames="size")
def _resize(where_map: jax.Array, size: int) -> jax.Array:
  return jax.image.resize(where_map.astype(np.float32), (size, size), method="linear")


def resize_over_crop(where_map: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
  """[h,w] -> [S,S] bilinear resize over the centred square crop of a (W, H) frame."""
  _, _, side = crop_region(frame_size)
  return np.asarray(_resize(np.asarray(where_map, np.float32), max(1, int(round(side)))))


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


def ciou(resized: np.ndarray, mask: np.ndarray) -> float:
  """LVS cIoU of resized [S,S] binarised at its median-rank value against mask [S,S]."""
  values = np.asarray(resized, np.float64)
  threshold = np.sort(values, axis=None)[values.size // 2]
  predicted = values > threshold
  union = mask.sum() + (predicted & ~mask).sum()
  return float((predicted & mask).sum() / union) if union > 0 else 0.0


def ciou_auc(cious: np.ndarray) -> float:
  """Area under (share of cIoUs >= θ) for θ in CIOU_THRESHOLDS, trapezoid rule."""
  cious = np.asarray(cious, np.float64)
  success = np.array([(cious >= theta).mean() for theta in CIOU_THRESHOLDS])
  return float(np.sum((success[1:] + success[:-1]) / 2 * np.diff(CIOU_THRESHOLDS)))


def localization_scores(
    where: np.ndarray,
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size: np.ndarray,
    segment_mask: np.ndarray | None = None,
) -> dict:
  """Relevance mass and cIoU over all trials: `{metric: value}` for `METRICS` (NaN, and 0
  trials, when there is no trial).

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
      cious.append(ciou(resized, mask))
  if not cious:
    return {**{name: float("nan") for name in METRICS[:-1]}, "localization_trials": 0}
  cious = np.asarray(cious)
  return {
      "relevance_mass": float(np.mean(masses)),
      "ciou": float(np.mean(cious >= 0.5)),
      "ciou_auc": ciou_auc(cious),
      "ciou_mean": float(np.mean(cious)),
      "localization_trials": int(cious.size),
  }
