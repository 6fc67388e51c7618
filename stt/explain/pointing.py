"""Pointing games: does the argmax of an explanation land on the annotated evidence?

Spatial (one trial per annotated valid (video, segment)), TorchRay's `PointingGame`: the "where"
map [h,w] is bilinearly resized to the part of the original frame it covers (frames are
centre-cropped squares), its argmax is the point, in pixel coordinates (x, y) of the original
frame, and the trial is a hit if some pixel of the segment's box mask lies at squared distance
< `tolerance_px`² from it (TorchRay's disk of radius `tolerance` around the point overlapping
the mask). Ties: TorchRay takes the first argmax; we take the centre of the plateau that the
first argmax starts (the run of pixels equal to the maximum, within float rounding of 1e-5
relative, to its right and below it), so a map symmetric about a point points at that point:
a resized even grid peaks on a plateau between two pixels, whose first pixel is half a cell
off the map's centre (the `center` explainer pointed at (56, 56) instead of 63.5 on 128 px with
an 8x8 grid). A single maximum is TorchRay's point; a plateau's point can be a half pixel.
`pointing_spatial_in_box` scores the same point without tolerance: a hit iff it lies on the
box mask (squared distance 0), as the tolerance of 15 px is 12 % of a 128 px frame. A box [x0,y0,x1,y1] covers the pixels whose
centres lie inside it, x0 <= x + ½ < x1 (for integer boxes the pixels x0..x1-1, as
`box_scores`), clipped to the frame. Reported overall and as the per-class mean (TorchRay's
convention).

Temporal (one trial per video with a non-empty event and at least one valid segment): a hit if
the argmax over valid segments of "when" falls inside the annotated event [event_start, event_end).

Padded segments (segment_mask false) are never trials: they are not real video.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class PointingResult:
  overall: float  # hit rate over all trials
  class_mean: float  # mean over classes of the per-class hit rate
  num_trials: int
  in_box: float = float("nan")  # hit rate of the same points without tolerance (on the mask)


def crop_region(frame_size: tuple[int, int]) -> tuple[float, float, float]:
  """(x_offset, y_offset, side) of the centred square crop of a W×H frame, in original pixels."""
  width, height = frame_size
  side = min(width, height)
  return (width - side) / 2.0, (height - side) / 2.0, float(side)


def point_of_map(where_map: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float]:
  """The (x, y) original-frame point at the argmax of [h,w] resized over the crop (a pixel, or
  the centre of a plateau of tied maxima: module docstring).

  The crop is the centred min(W, H) square, starting at pixel ((W - side) // 2, (H - side) // 2).
  """
  ((x, y),) = points_of_maps(np.asarray(where_map)[None], frame_size)
  return float(x), float(y)


# Maps resized per call of `points_of_maps`: bounds its memory (chunk x side² floats).
_RESIZE_CHUNK = 64


# Pixels within this relative distance of the maximum are tied with it (float rounding of the
# resize: equal cells interpolate to values a few ulps apart).
_TIE_RTOL = 1e-5


@functools.partial(jax.jit, static_argnames="side")
def _crop_argmax(maps: jax.Array, side: int) -> jax.Array:
  """[N,h,w] → [N,2] (row, col) of each map bilinearly resized to side x side: the first argmax,
  moved to the centre of the runs of tied maxima through it along its row (col) and its
  column (row)."""
  n = maps.shape[0]
  resized = jax.image.resize(maps, (n, side, side), method="linear")
  first = jnp.argmax(resized.reshape(n, -1), axis=-1)
  row, col = first // side, first % side
  peak = resized.reshape(n, -1).max(-1)
  tied = resized >= (peak - _TIE_RTOL * jnp.abs(peak))[:, None, None]  # [N,side,side]
  positions = jnp.arange(side)
  along_row = jnp.take_along_axis(tied, row[:, None, None], axis=1)[:, 0]  # [N,side]
  along_col = jnp.take_along_axis(tied, col[:, None, None], axis=2)[:, :, 0]  # [N,side]

  def run_centre(line, at):  # centre of the run of tied pixels of `line` [N,side] through `at`
    untied = ~line
    start = jnp.where(untied & (positions[None] < at[:, None]), positions[None], -1).max(-1) + 1
    end = jnp.where(untied & (positions[None] > at[:, None]), positions[None], side).min(-1) - 1
    return (start + end) / 2

  centre_row = run_centre(along_col, row)
  centre_col = run_centre(along_row, col)
  return jnp.stack([centre_row, centre_col], -1)


def points_of_maps(where_maps: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
  """`point_of_map` of each of where_maps [N,h,w] on one W x H frame size: [N,2] float (x, y),
  whole or half pixels.

  One jitted resize per chunk of maps: the pointing games score thousands of segments.
  """
  width, height = (int(v) for v in frame_size)
  side = max(1, min(width, height))
  where_maps = np.asarray(where_maps, np.float32)
  count = len(where_maps)
  found = []
  for start in range(0, count, _RESIZE_CHUNK):
    chunk = where_maps[start : start + _RESIZE_CHUNK]
    padded = np.zeros((_RESIZE_CHUNK, *chunk.shape[1:]), np.float32)  # one compiled shape
    padded[: len(chunk)] = chunk
    found.append(np.asarray(_crop_argmax(padded, side), np.float64)[: len(chunk)])
  rows, cols = (np.concatenate(found) if found else np.zeros((0, 2))).T
  return np.stack([(width - side) // 2 + cols, (height - side) // 2 + rows], -1)


def box_pixels(box, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
  """(first_col, first_row, last_col, last_row), inclusive, of the pixels an [x0,y0,x1,y1] box
  covers (centres inside it), clipped to the W x H frame; empty when last < first."""
  x0, y0, x1, y1 = (float(v) for v in box)
  width, height = (int(v) for v in frame_size)
  return (
      max(math.ceil(x0 - 0.5), 0),
      max(math.ceil(y0 - 0.5), 0),
      min(math.ceil(x1 - 0.5) - 1, width - 1),
      min(math.ceil(y1 - 0.5) - 1, height - 1),
  )


def squared_distance_to_box(point: tuple[float, float], box, frame_size: tuple[int, int]) -> float:
  """Squared distance from a pixel (x, y) (integer, or the frame centre) to the nearest pixel of a
  box's mask
  (`box_pixels`); 0 on it, inf for a box that covers no pixel of the frame."""
  first_col, first_row, last_col, last_row = box_pixels(box, frame_size)
  if last_col < first_col or last_row < first_row:
    return math.inf
  x, y = point
  dx = min(max(x, first_col), last_col) - x
  dy = min(max(y, first_row), last_row) - y
  return float(dx * dx + dy * dy)


def is_hit(
    point: tuple[float, float], boxes, frame_size: tuple[int, int], tolerance_px: float
) -> bool:
  """TorchRay's hit: a pixel of the boxes' mask at squared distance < tolerance_px² (so a
  tolerance of 0 never hits, 1 hits only on the mask)."""
  return min(squared_distance_to_box(point, box, frame_size) for box in boxes) < tolerance_px**2


def trial_segments(box_mask: np.ndarray, segment_mask: np.ndarray | None = None) -> np.ndarray:
  """[V,T] bool: segments with at least one box of box_mask [V,T,K] that are valid in
  segment_mask [V,T] (None: all valid)."""
  trials = np.asarray(box_mask, bool).any(-1)
  if segment_mask is not None:
    trials &= np.asarray(segment_mask, bool)
  return trials


def spatial_pointing(
    where: np.ndarray,
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size: np.ndarray,
    labels: np.ndarray,
    tolerance_px: float = 15.0,
    segment_mask: np.ndarray | None = None,
) -> PointingResult:
  """Spatial pointing game.

  Args:
    where: [V,T,h,w] relevance maps.
    boxes: [V,T,K,4] boxes [x0,y0,x1,y1] in original-frame pixels.
    box_mask: [V,T,K] which boxes exist; a segment with none is not a trial.
    frame_size: [V,2] original (W, H).
    labels: [V] class of each video, for the per-class mean.
    tolerance_px: hit radius in original-frame pixels (squared distance < tolerance_px²).
    segment_mask: [V,T] valid segments; a padded one is not a trial. None: all valid.
  """
  videos, segments = np.nonzero(trial_segments(box_mask, segment_mask))  # trials, in order
  sizes = np.asarray(frame_size, int)[videos]
  points = np.zeros((len(videos), 2))
  for size in np.unique(sizes, axis=0):  # one batched resize per frame size
    same = np.flatnonzero((sizes == size).all(-1))
    points[same] = points_of_maps(np.asarray(where)[videos[same], segments[same]], tuple(size))
  distances = np.asarray(
      [
          min(
              squared_distance_to_box(point, box, size)
              for box in boxes[video, segment][box_mask[video, segment]]
          )
          for point, video, segment, size in zip(points, videos, segments, sizes)
      ],
      np.float64,
  )
  return _summarise(
      distances < tolerance_px**2, np.asarray(labels, int)[videos], in_box=distances == 0
  )


def temporal_pointing(
    when: np.ndarray,
    segment_mask: np.ndarray,
    event_start: np.ndarray,
    event_end: np.ndarray,
    labels: np.ndarray,
) -> PointingResult:
  """Temporal pointing game.

  Args:
    when: [V,T] temporal relevance.
    segment_mask: [V,T] valid segments; padded ones never win the argmax, and a video with
      none is not a trial.
    event_start, event_end: [V] the annotated event, seconds, end exclusive.
    labels: [V] class of each video.
  """
  segment_mask = np.asarray(segment_mask, bool)
  # Empty events and videos without a valid segment are no trial.
  trial = (np.asarray(event_end) > np.asarray(event_start)) & segment_mask.any(1)
  masked = np.where(segment_mask, np.asarray(when, np.float64), -np.inf)
  peak = np.argmax(masked, axis=1)
  hits = (peak >= event_start) & (peak < event_end)
  return _summarise(hits[trial], np.asarray(labels, int)[trial])


def chance_spatial_pointing(
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size: np.ndarray,
    labels: np.ndarray,
    grid: tuple[int, int],
    tolerance_px: float = 15.0,
    segment_mask: np.ndarray | None = None,
) -> PointingResult:
  """The expected spatial pointing of a map whose argmax is a uniformly random cell of the
  [h,w] `grid` (the chance level that the `random` explainer samples): per trial, the share of
  the h*w one-hot maps that hit. Arguments and trials as in `spatial_pointing`."""
  height, width = grid
  one_hot_maps = np.eye(height * width, dtype=np.float32).reshape(-1, height, width)
  points_by_size = {}
  trials = trial_segments(box_mask, segment_mask)
  shares, trial_labels = [], []
  for video, segment in zip(*np.nonzero(trials)):
    size = (int(frame_size[video][0]), int(frame_size[video][1]))
    if size not in points_by_size:
      points_by_size[size] = points_of_maps(one_hot_maps, size)
    segment_boxes = boxes[video, segment][box_mask[video, segment]]
    shares.append(
        np.mean(
            [is_hit(point, segment_boxes, size, tolerance_px) for point in points_by_size[size]]
        )
    )
    trial_labels.append(int(labels[video]))
  return _summarise(np.asarray(shares, np.float64), np.asarray(trial_labels, int))


def frame_centre(frame_size: tuple[int, int]) -> tuple[float, float]:
  """The (x, y) centre of a W x H frame in pixel coordinates ((W - 1) / 2, (H - 1) / 2): 63.5
  on 128 px, between the two middle pixels (the crop's centre is the frame's)."""
  width, height = (int(v) for v in frame_size)
  return (width - 1) / 2, (height - 1) / 2


def center_prior_spatial_pointing(
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size: np.ndarray,
    labels: np.ndarray,
    tolerance_px: float = 15.0,
    segment_mask: np.ndarray | None = None,
) -> PointingResult:
  """The spatial pointing of the centre prior: the point is the exact frame centre
  (`frame_centre`) in every trial, scored with `is_hit`; the `center` explainer's map points at
  the same centre (a plateau's centre, module docstring). Computed on the annotations, like the
  chance level. Arguments as `spatial_pointing`."""
  trials = trial_segments(box_mask, segment_mask)
  hits, in_box, trial_labels = [], [], []
  for video, segment in zip(*np.nonzero(trials)):
    size = (int(frame_size[video][0]), int(frame_size[video][1]))
    segment_boxes = boxes[video, segment][box_mask[video, segment]]
    hits.append(is_hit(frame_centre(size), segment_boxes, size, tolerance_px))
    in_box.append(
        min(squared_distance_to_box(frame_centre(size), b, size) for b in segment_boxes) == 0
    )
    trial_labels.append(int(labels[video]))
  return _summarise(
      np.asarray(hits, bool), np.asarray(trial_labels, int), in_box=np.asarray(in_box, bool)
  )


def chance_temporal_pointing(
    segment_mask: np.ndarray, event_start: np.ndarray, event_end: np.ndarray, labels: np.ndarray
) -> PointingResult:
  """The expected temporal pointing of a uniformly random valid segment: per trial, the share of
  the video's valid segments inside its event. Arguments and trials as in `temporal_pointing`."""
  segment_mask = np.asarray(segment_mask, bool)
  seconds = np.arange(segment_mask.shape[1])
  inside = (
      (seconds >= np.asarray(event_start)[:, None])
      & (seconds < np.asarray(event_end)[:, None])
      & segment_mask
  )  # [V,T]
  valid = segment_mask.sum(1)
  trial = (np.asarray(event_end) > np.asarray(event_start)) & (valid > 0)
  shares = inside.sum(1)[trial] / valid[trial]
  return _summarise(shares.astype(np.float64), np.asarray(labels, int)[trial])


def _summarise(hits: np.ndarray, labels: np.ndarray, in_box=None) -> PointingResult:
  """hits [trials]: 1/0 per trial, or a trial's expected hit rate; in_box [trials] the hits
  without tolerance, where measured."""
  if hits.size == 0:
    return PointingResult(float("nan"), float("nan"), 0)
  per_class = [hits[labels == c].mean() for c in np.unique(labels)]
  in_box_rate = float("nan") if in_box is None else float(np.mean(in_box))
  return PointingResult(float(hits.mean()), float(np.mean(per_class)), int(hits.size), in_box_rate)


def pointing_metrics(out: dict, tolerance_px: float) -> dict:
  """`{metric: value}` with bare metric names: pointing_{spatial,spatial_class_mean,
  spatial_in_box,temporal,temporal_class_mean} (+ pointing_spatial_trials, per-modality temporal pointing where `out` has
  `when_audio` / `when_visual`); the caller names the explainer (suite_scores.namespaced).

  out: per-example maps and annotations (input_pipeline.gather_split's outputs): where
  [V,T,h,w], when [V,T], boxes [V,T,K,4], box_mask [V,T,K], frame_size [V,2], label [V],
  segment_mask [V,T], event_start / event_end [V].
  """
  spatial = spatial_pointing(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["label"],
      tolerance_px,
      segment_mask=out["segment_mask"],
  )
  metrics = {
      "pointing_spatial": spatial.overall,
      "pointing_spatial_class_mean": spatial.class_mean,
      "pointing_spatial_in_box": spatial.in_box,
      "pointing_spatial_trials": spatial.num_trials,
  }
  # "when" is the explainer's single temporal map; per-modality maps are reported beside it.
  for key, suffix in (("when", ""), ("when_audio", "_audio"), ("when_visual", "_visual")):
    if key not in out:
      continue
    temporal = temporal_pointing(
        out[key], out["segment_mask"], out["event_start"], out["event_end"], out["label"]
    )
    metrics[f"pointing_temporal{suffix}"] = temporal.overall
    metrics[f"pointing_temporal{suffix}_class_mean"] = temporal.class_mean
  return metrics
