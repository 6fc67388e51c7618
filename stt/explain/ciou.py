"""LVS's cIoU of a "where" map against a ground-truth map (Chen et al. 2021, "Localizing Visual
Sounds the Hard Way", their test.py and utils.py), written once for both of its users:
stt/explain/box_scores.py (on the crop grid) and stt/explain/sound_source_benchmark.py (the
VGG-SS / Flickr-SoundNet protocol on 224 px).

1. `resize_linear`: the map is resized as cv2.resize(..., interpolation=cv2.INTER_LINEAR) does:
   bilinear between the input pixels' centres (half-pixel centres), the edge pixels repeated
   outside them, and no antialiasing when it shrinks (each output pixel reads the 2x2 input
   pixels around its centre, whatever the scale).
2. `binarise`: min-max normalised, then split at the value v at index floor(S*S/2) of the
   ascending sorted pixels. LVS ('gt', the default) does `pred[pred > v] = 1; pred[pred < 1] = 0`
   on 1 - normalise(-map) and counts pixels >= 0.5: a pixel is kept when it is above v, or at
   the map's maximum (value 1, kept by `pred < 1` even when v is 1 too, as when the top half of
   the map is flat). A constant map, which normalise leaves as it is, becomes 1 + c: every pixel
   is kept when c >= 0, none when c < 0. EZ-VSL ('ge') keeps pixels >= v (every pixel of a
   constant map).
3. `ciou` = sum(pred * gt) / (sum(gt) + sum(pred * [gt == 0])), 0 when the denominator is 0.
4. Over images: `success_rates` (share of cIoUs >= theta for theta in CIOU_THRESHOLDS = 0,
   0.05, ..., 1) and `ciou_auc`, their trapezoid area (sklearn.metrics.auc in the references).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

CIOU_THRESHOLDS = tuple(0.05 * i for i in range(21))
MEDIAN_RULES = ("gt", "ge")  # LVS: > median (and the maximum); EZ-VSL: >= median


@functools.partial(jax.jit, static_argnames="size")
def _resize(where_map: jax.Array, size: tuple[int, int]) -> jax.Array:
  # antialias=False: the same triangle kernel of one input pixel at every scale, i.e. bilinear
  # interpolation with half-pixel centres and clamped edges (growing is unchanged by it).
  return jax.image.resize(where_map.astype(np.float32), size, method="linear", antialias=False)


def resize_linear(where_map: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
  """[h,w] -> [S,S] (size S) or [H,W] (size (H, W)) float32, as cv2's INTER_LINEAR."""
  shape = (int(size),) * 2 if np.ndim(size) == 0 else tuple(int(v) for v in size)
  where_map = np.asarray(where_map, np.float32)
  if where_map.ndim != 2:
    raise ValueError(f"a map to resize must be [h,w], got shape {where_map.shape}")
  return np.asarray(_resize(where_map, shape))


def binarise(where_map: np.ndarray, median_rule: str = "gt") -> np.ndarray:
  """[S,S] map -> [S,S] 0/1 float64 prediction by LVS's median rule (module docstring, 2)."""
  if median_rule not in MEDIAN_RULES:
    raise ValueError(f"median_rule={median_rule!r}; known: {', '.join(MEDIAN_RULES)}")
  values = np.asarray(where_map, np.float64)
  low, high = values.min(), values.max()
  if high == low:  # normalise leaves a constant map as it is
    kept = np.full(values.shape, median_rule == "ge" or low >= 0)
    return kept.astype(np.float64)
  values = (values - low) / (high - low)
  threshold = np.sort(values, axis=None)[values.size // 2]
  kept = values > threshold if median_rule == "gt" else values >= threshold
  if median_rule == "gt":
    kept |= values == 1.0  # the maximum stays 1 even when it is the threshold
  return kept.astype(np.float64)


def ciou(prediction: np.ndarray, gt: np.ndarray) -> float:
  """sum(pred * gt) / (sum(gt) + sum(pred * [gt == 0])) of a 0/1 prediction [S,S] against a gt
  map [S,S] (0/1, or Flickr-SoundNet's consensus in {0, .5, 1}); 0 when the denominator is 0."""
  prediction, gt = np.asarray(prediction, np.float64), np.asarray(gt, np.float64)
  denominator = gt.sum() + (prediction * (gt == 0)).sum()
  return float((prediction * gt).sum() / denominator) if denominator > 0 else 0.0


def success_rates(cious) -> np.ndarray:
  """[21]: share of cIoUs >= theta for theta in CIOU_THRESHOLDS."""
  cious = np.asarray(cious, np.float64)
  return np.array([(cious >= theta).mean() for theta in CIOU_THRESHOLDS])


def ciou_auc(cious) -> float:
  """Trapezoid area under success_rates(cious) over CIOU_THRESHOLDS."""
  rates = success_rates(cious)
  return float(np.sum((rates[1:] + rates[:-1]) / 2 * np.diff(CIOU_THRESHOLDS)))
