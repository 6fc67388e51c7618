"""The viewer's data: one JSON-able summary and one detail record per video, from saved arrays.

The summary (`VideoSummary`, what the page filters and sorts on) and the detail (what one video's
view draws) are built from the per-video arrays of an explain run:
- the maps of each explainer, as `explain/maps/<explainer>.npz` holds them (stt/explain/suite.py):
  where [V,T,h,w], when [V,T], optionally when_audio / when_visual [V,T];
- the annotations of the same rows: label [V] (-1 on an unlabelled set), segment_mask [V,T],
  event_start / event_end [V] (seconds, an empty event when end <= start), boxes [V,T,K,4] in
  original-frame pixels, box_mask [V,T,K], frame_size [V,2] (W, H);
- the model's class probabilities [V,C] and, where the explain step saved them
  (`suite_reports.write_video_curves`), each video's perturbation curves [V,P].

Positions (boxes, the pointing game's point) are given as fractions of the centred square crop
the model saw (stt/explain/pointing.py), which is what the page draws its frames from; a box may
reach outside [0, 1]. "Where" maps travel as integers 0..255 of the video's peak over its valid
segments (`where_scale` is that peak), so one video's segments share one colour scale.
"""

from __future__ import annotations

import numpy as np

from stt.explain import perturbation
from stt.explain import pointing
from stt.explain import suite_reports

# The per-video perturbation curves the explain step saves (suite_reports): the probability of the predicted
# class as the most (positive) or least (negative) relevant part is removed.
CURVE_TESTS = suite_reports.CURVE_TESTS
TOP_CLASSES = 3


def _finite_or_none(value: float) -> float | None:
  return round(float(value), 4) if np.isfinite(value) else None


def crop_fractions(xy: np.ndarray, frame_size) -> np.ndarray:
  """Original-frame pixel coordinates [...,2k] (x, y pairs) as fractions of the centred crop."""
  x_offset, y_offset, side = pointing.crop_region(tuple(int(v) for v in frame_size))
  offsets = np.tile([x_offset, y_offset], xy.shape[-1] // 2)
  return (np.asarray(xy, np.float64) - offsets) / max(side, 1.0)


def points_of_videos(where: np.ndarray, frame_size: np.ndarray) -> np.ndarray:
  """[V,T,2] (x, y) original-frame points (whole or half pixels: a plateau's centre) the spatial
  pointing game picks in each map of where [V,T,h,w] (frame_size [V,2]); one batched
  `pointing.points_of_maps` per frame size."""
  where = np.asarray(where, np.float32)
  frame_size = np.asarray(frame_size, np.int64).reshape(len(where), 2)
  pixels = np.zeros((*where.shape[:2], 2))
  for size in np.unique(frame_size, axis=0):
    rows = np.flatnonzero((frame_size == size).all(-1))
    flat = where[rows].reshape(-1, *where.shape[2:])
    pixels[rows] = pointing.points_of_maps(flat, tuple(size)).reshape(len(rows), -1, 2)
  return pixels


def pointing_of_video(
    pixels: np.ndarray,
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size,
    segment_mask: np.ndarray,
    tolerance_px: float,
) -> tuple[list, list]:
  """(points, hits) of one video's segments: points [T] (x, y) crop fractions of the pixel's
  centre (None for a padded segment), hits [T] True / False on a segment with a box, None without
  one (pointing.spatial_pointing's trials).

  pixels [T,2] (`points_of_videos`); boxes [T,K,4] original-frame pixels; box_mask [T,K];
  segment_mask [T].
  """
  points, hits = [], []
  for t, valid in enumerate(np.asarray(segment_mask, bool)):
    if not valid:
      points.append(None)
      hits.append(None)
      continue
    centre = crop_fractions(pixels[t] + 0.5, frame_size)
    points.append([round(float(centre[0]), 4), round(float(centre[1]), 4)])
    present = np.asarray(boxes[t])[np.asarray(box_mask[t], bool)]
    hits.append(
        bool(pointing.is_hit(tuple(pixels[t]), present, frame_size, tolerance_px))
        if len(present)
        else None
    )
  return points, hits


def temporal_hit(when: np.ndarray, segment_mask, event_start: int, event_end: int) -> bool | None:
  """The temporal pointing game of one video: argmax of `when` over valid segments inside
  [event_start, event_end); None without an event or a valid segment."""
  valid = np.asarray(segment_mask, bool)
  if event_end <= event_start or not valid.any():
    return None
  point = int(np.argmax(np.where(valid, when, -np.inf)))
  return bool(event_start <= point < event_end)


def quantised_where(where: np.ndarray, segment_mask) -> tuple[list, float]:
  """(where [T,h,w] as 0..255 integers of the peak over valid segments, the peak)."""
  valid = np.asarray(segment_mask, bool)
  where = np.where(valid[:, None, None], np.maximum(np.asarray(where, np.float64), 0.0), 0.0)
  peak = float(where.max()) if where.size else 0.0
  scaled = np.rint(where / peak * 255.0) if peak > 0 else np.zeros_like(where)
  return scaled.astype(np.uint8).reshape(len(where), -1).tolist(), peak


def _rounded(values) -> list:
  return [round(float(v), 4) for v in values]


def build_videos(
    *,
    video_ids,
    annotations: dict,
    probabilities: np.ndarray,
    maps: dict[str, dict],
    class_names,
    tolerance_px: float,
    levels=None,
    video_curves: dict[str, dict] | None = None,
) -> tuple[list[dict], list[dict]]:
  """(summaries, details), one of each per video (row order of the arrays).

  annotations: label, segment_mask, event_start, event_end, boxes, box_mask, frame_size
    (shapes in the module docstring). probabilities: [V,C]. maps: {explainer: {where, when,
    [when_audio, when_visual]}} rows aligned with video_ids. levels: [V] str (e.g. a dataset
    level such as 'off-screen'), or None. video_curves: {explainer: {CURVE_TESTS key: [V,P]}}.
  """
  video_curves = video_curves or {}
  count = len(video_ids)
  for name, arrays in maps.items():
    if len(arrays["where"]) != count or len(arrays["when"]) != count:
      raise ValueError(
          f"maps of {name!r} have {len(arrays['where'])} videos, the annotations {count}"
      )
  pixels = {
      name: points_of_videos(m["where"], annotations["frame_size"]) for name, m in maps.items()
  }
  summaries, details = [], []
  for row in range(count):
    label = int(annotations["label"][row])
    mask = np.asarray(annotations["segment_mask"][row], bool)
    frame_size = tuple(int(v) for v in annotations["frame_size"][row])
    start, end = int(annotations["event_start"][row]), int(annotations["event_end"][row])
    probs = np.asarray(probabilities[row], np.float64)
    predicted = int(np.argmax(probs))
    boxes = [
        [
            _rounded(crop_fractions(box, frame_size))
            for box, present in zip(annotations["boxes"][row][t], annotations["box_mask"][row][t])
            if present
        ]
        for t in range(len(mask))
    ]
    top = np.argsort(-probs, kind="stable")[:TOP_CLASSES]
    summary = {
        "row": row,
        "id": str(video_ids[row]),
        "label": label,
        "predicted": predicted,
        "confidence": round(float(probs[predicted]), 4),
        "correct": None if label < 0 else predicted == label,
        "level": "" if levels is None else str(levels[row]),
        "spatial_hit_rate": {},
        "temporal_hit": {},
    }
    detail = {
        "id": str(video_ids[row]),
        "segment_mask": mask.tolist(),
        "event": [start, end] if end > start else None,
        "boxes": boxes,
        "top_classes": [[int(c), round(float(probs[c]), 4)] for c in top],
        "explainers": {},
    }
    for name, arrays in maps.items():
      where = np.asarray(arrays["where"][row], np.float32)
      points, hits = pointing_of_video(
          pixels[name][row],
          annotations["boxes"][row],
          annotations["box_mask"][row],
          frame_size,
          mask,
          tolerance_px,
      )
      scored = [hit for hit in hits if hit is not None]
      summary["spatial_hit_rate"][name] = round(sum(scored) / len(scored), 4) if scored else None
      summary["temporal_hit"][name] = temporal_hit(arrays["when"][row], mask, start, end)
      quantised, peak = quantised_where(where, mask)
      entry = {
          "where": quantised,
          "where_scale": peak,
          "grid": list(where.shape[1:]),
          "points": points,
          "hits": hits,
          "when": _rounded(np.where(mask, arrays["when"][row], 0.0)),
      }
      for key in ("when_audio", "when_visual"):
        if key in arrays:
          entry[key] = _rounded(np.where(mask, arrays[key][row], 0.0))
      curves = video_curves.get(name)
      if curves is not None:
        entry["curves"] = {
            test: [_finite_or_none(v) for v in curves[test][row]]
            for test in CURVE_TESTS
            if test in curves
        }
      detail["explainers"][name] = entry
    summaries.append(summary)
    details.append(detail)
  return summaries, details


def page_header(*, title: str, class_names, explainers, num_segments: int, has_frames: bool):
  """What the page needs besides the videos: names, explainers, the curves' fractions."""
  return {
      "title": title,
      "class_names": list(class_names),
      "explainers": list(explainers),
      "num_segments": int(num_segments),
      "has_frames": bool(has_frames),
      "fractions": [round(float(f), 4) for f in perturbation.FRACTIONS],
  }
