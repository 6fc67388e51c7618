"""Per-video scores of one explain step, for the paired tests of stt/reproduce_comparisons.py.

The suite's tables pool every video of the split into one number per metric; a paired test
between two models needs each video's share instead. `write` puts them in
`<report dir>/videos.json` (`explain/videos.json` for the test split):

    {"video_id": [V] str, "label": [V] int,
     "correct": [V] bool or null (the unperturbed model's top-1 prediction is the label; null for
                a set without class labels),
     "explainers": {name: {"pointing_spatial_hits": [V] int or null,
                           "pointing_spatial_trials": [V] int or null,
                           "pointing_temporal": [V] 0/1, null where the video is no trial}}}

Spatial pointing per video: the hits and trials of TorchRay's spatial pointing game
(stt/explain/pointing.py) among the video's annotated valid segments, for the maps of the
ground-truth class; summed over the videos they give the table's `pointing_spatial` exactly.
`null` for an explainer whose spatial score the table leaves out (a model that sees no frames, or
a "where" that is attention's by construction). Temporal pointing: 1 if the argmax of "when"
over the valid segments falls in the video's event.
"""

from __future__ import annotations

import json
import math

from etils import epath
import numpy as np

from stt.explain import pointing

FILE_NAME = "videos.json"


def spatial_hits(out: dict, tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
  """(hits [V] int, trials [V] int) of the spatial pointing game per video.

  out: one explainer's per-example outputs (suite.explain_split): where [V,T,h,w], boxes
  [V,T,K,4], box_mask [V,T,K], frame_size [V,2], segment_mask [V,T]. The trials and the hit
  rule are `pointing.spatial_pointing`'s.
  """
  box_mask = np.asarray(out["box_mask"], bool)
  boxes = np.asarray(out["boxes"])
  count = len(box_mask)
  videos, segments = np.nonzero(pointing.trial_segments(box_mask, out["segment_mask"]))
  sizes = np.asarray(out["frame_size"], int)[videos]
  points = np.zeros((len(videos), 2), int)
  where = np.asarray(out["where"])
  for size in np.unique(sizes, axis=0):  # one batched resize per frame size
    same = np.flatnonzero((sizes == size).all(-1))
    points[same] = pointing.points_of_maps(where[videos[same], segments[same]], tuple(size))
  hits = np.asarray(
      [
          pointing.is_hit(
              point, boxes[video, segment][box_mask[video, segment]], size, tolerance_px
          )
          for point, video, segment, size in zip(points, videos, segments, sizes)
      ],
      np.float64,
  )
  return (
      np.bincount(videos, weights=hits, minlength=count).astype(int),
      np.bincount(videos, minlength=count).astype(int),
  )


def temporal_hits(out: dict) -> np.ndarray:
  """[V] float: 1.0 / 0.0 the temporal pointing game's hit per video, NaN where the video is no
  trial (`pointing.temporal_pointing`'s trials and rule)."""
  segment_mask = np.asarray(out["segment_mask"], bool)
  start, end = np.asarray(out["event_start"]), np.asarray(out["event_end"])
  trial = (end > start) & segment_mask.any(1)
  peak = np.argmax(np.where(segment_mask, np.asarray(out["when"], np.float64), -np.inf), axis=1)
  hits = ((peak >= start) & (peak < end)).astype(np.float64)
  return np.where(trial, hits, np.nan)


def correct_of(out: dict) -> np.ndarray:
  """[V] bool: the unperturbed model's prediction is the label (the perturbation curves' first
  fraction, 0: nothing removed)."""
  return np.asarray(out["temporal/positive/correct"])[:, 0].astype(bool)


def records(
    outputs: dict[str, dict],
    scores: dict[str, dict],
    video_ids: np.ndarray,
    tolerance_px: float,
    labelled: bool = True,
) -> dict:
  """The `videos.json` content (module docstring) of the explainers' outputs and their pooled
  scores (a NaN `pointing_spatial` in `scores[name]` makes that explainer's spatial entries
  null)."""
  first = next(iter(outputs.values()))
  result = {
      "video_id": [str(v) for v in video_ids],
      "label": [int(v) for v in np.asarray(first["label"])],
      "correct": [bool(v) for v in correct_of(first)] if labelled else None,
      "explainers": {},
  }
  for name, out in outputs.items():
    spatial = scores.get(name, {}).get("pointing_spatial")
    entry = {"pointing_spatial_hits": None, "pointing_spatial_trials": None}
    if spatial is not None and math.isfinite(float(spatial)):
      hits, trials = spatial_hits(out, tolerance_px)
      entry = {
          "pointing_spatial_hits": hits.tolist(),
          "pointing_spatial_trials": trials.tolist(),
      }
    entry["pointing_temporal"] = [None if np.isnan(v) else float(v) for v in temporal_hits(out)]
    result["explainers"][name] = entry
  return result


def write(directory: epath.Path, content: dict) -> None:
  """`<directory>/videos.json` from `records`."""
  directory.mkdir(parents=True, exist_ok=True)
  (directory / FILE_NAME).write_text(json.dumps(content))


def read(directory: epath.Path) -> dict | None:
  """The `videos.json` in `directory` (a run's report dir), None when it has none."""
  path = epath.Path(directory) / FILE_NAME
  return json.loads(path.read_text()) if path.exists() else None
