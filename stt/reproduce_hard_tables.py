"""The `synthetic_hard` suite's own tables (issue 27), from each run's maps and the level's truth.

Rows of the suite are `<model>_level<L>` (stt/reproduce_suites.py). Each run's explain step saves
its explainers' ground-truth-class maps, explain/maps/<explainer>.npz (suite_reports.write_maps:
video_id [V], where [V,T,h,w], segment_mask [V,T], frame_size [V,2] as (W, H)); the truth of the
level's test videos is data_pipelines/synthetic_hard_dataset.truth(data_dir, settings), with the
run's data_dir and `synthetic_hard` settings read from its config.json. Scored segments are the
event segments (event_start..event_end) of on-screen videos; the map's point is
pointing.points_of_maps's (its argmax resized over the frame). Per run and explainer:

* `pointing_spatial_in_box`: the point lies inside the SOURCE's box of that segment (no
  tolerance), the share of scored segments.
* `pointing_spatial`, level 2 (`instances`): the instance game: the instance nearest to the
  point (squared distance to its box, 0 inside; the source and the look-alikes of the event
  class) is the source; a tie of k instances that includes the source counts 1/k. Chance is
  1 / num_instances (the `chance` explainer row). Levels 1 and 3 (one visible instance):
  stt/explain/pointing.py's game, a hit within TOLERANCE_PX pixels of the source's box.
* `ap`, `max_f1` (level 1): stt/explain/offscreen_scores.py on every test video, confidence
  `on_screen_score(map over the video's valid segments, STATISTIC)` against source_on_screen.

Tables (records in stt/reproduce_tables.py's long form, plus `ci95`: the Student-t 95 %
half-width over seeds, t_{0.975, n-1} * std / sqrt(n), 0 for n = 1):
`offscreen` (level 1: ap, max_f1, and both pointings on the on-screen videos only),
`instances` (level 2: both pointings, and the `chance` row), `snr` (level 3: both pointings per
SNR level; the SNR in dB is the record's own field `snr_db`, `split` stays 'test').
"""

from __future__ import annotations

import json
import math
import os
import re

from etils import epath
import numpy as np
from scipy import stats

from data_pipelines import synthetic_hard_dataset
from stt.explain import offscreen_scores
from stt.explain import pointing

TABLES = ("offscreen", "instances", "snr")
TABLE_OF_LEVEL = {1: "offscreen", 2: "instances", 3: "snr"}
STATISTIC = "top_quarter_mean"  # SLAVC's confidence (offscreen_scores.py says why)
POINTING = ("pointing_spatial", "pointing_spatial_in_box")
TOLERANCE_PX = 15.0  # pointing.pointing_game's default (Table 3)
_ROW = re.compile(r"^(?P<model>.+)_level(?P<level>\d)$")


def model_and_level(row: str) -> tuple[str, int] | None:
  """('stan', 2) of 'stan_level2'; None for a row of no level."""
  match = _ROW.match(row)
  return (match["model"], int(match["level"])) if match else None


def read_maps(run_dir) -> dict[str, dict[str, np.ndarray]]:
  """{explainer: arrays of explain/maps/<explainer>.npz} of one run (empty when not explained)."""
  found = {}
  for path in sorted(epath.Path(run_dir).glob("explain/maps/*.npz")):
    with path.open("rb") as file, np.load(file) as data:
      found[path.stem] = {key: data[key] for key in data.files}
  return found


def read_truth(run_dir) -> dict[str, dict]:
  """The level's truth rows of the run's data (its config.json's data_dir and settings)."""
  config = json.loads((epath.Path(run_dir) / "config.json").read_text())
  data_dir = (
      config.get("data_dir") or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  )  # stt.datasets.resolve_data_dir's order
  return synthetic_hard_dataset.truth(
      epath.Path(data_dir).expanduser(), dict(config["synthetic_hard"])
  )


def segment_scores(maps: dict, truth: dict, videos=None) -> dict[str, np.ndarray]:
  """Per scored segment [S]: `in_box`, `instance`, `tolerance` (the hits above, float) and
  `chance` (1 / num_instances); `videos` (indices into maps' rows, default all) limits the videos.
  """
  ids = [v.decode() if isinstance(v, bytes) else str(v) for v in maps["video_id"]]
  videos = range(len(ids)) if videos is None else videos
  out = {"in_box": [], "instance": [], "tolerance": [], "chance": []}
  for i in videos:
    row = truth[ids[i]]
    if not row["source_on_screen"]:
      continue
    segments = [
        t for t in range(row["event_start"], row["event_end"]) if maps["segment_mask"][i][t]
    ]
    if not segments:
      continue
    size = tuple(int(v) for v in maps["frame_size"][i])
    points = pointing.points_of_maps(np.asarray(maps["where"][i])[segments], size)
    for point, t in zip(points, segments):
      boxes = [row["source_boxes"][t]] + [boxes[t] for boxes in row["lookalike_boxes"]]
      distances = [pointing.squared_distance_to_box(point, box, size) for box in boxes]
      nearest = [d == min(distances) for d in distances]
      out["in_box"].append(float(distances[0] == 0))
      out["instance"].append(nearest[0] / sum(nearest))
      out["tolerance"].append(float(distances[0] < TOLERANCE_PX**2))
      out["chance"].append(1.0 / len(boxes))
  return {key: np.asarray(values, np.float64) for key, values in out.items()}


def _pointing_metrics(scores: dict[str, np.ndarray], instances=False) -> dict[str, float]:
  if not len(scores["in_box"]):
    return {}
  return {
      "pointing_spatial": float(scores["instance" if instances else "tolerance"].mean()),
      "pointing_spatial_in_box": float(scores["in_box"].mean()),
  }


def offscreen_metrics(maps: dict, truth: dict) -> dict[str, float]:
  """Level 1 on one run and explainer: ap, max_f1 (all videos), pointings (on-screen only)."""
  ids = [v.decode() if isinstance(v, bytes) else str(v) for v in maps["video_id"]]
  on_screen = np.asarray([truth[v]["source_on_screen"] for v in ids], bool)
  confidence = np.asarray(
      [
          offscreen_scores.on_screen_score(
              np.asarray(maps["where"][i])[np.asarray(maps["segment_mask"][i], bool)][None],
              STATISTIC,
          )[0]
          for i in range(len(ids))
      ]
  )
  return {
      "ap": offscreen_scores.average_precision(confidence, on_screen),
      "max_f1": offscreen_scores.max_f1(confidence, on_screen),
      **_pointing_metrics(segment_scores(maps, truth)),
  }


def snr_metrics(maps: dict, truth: dict) -> dict[float, dict[str, float]]:
  """Level 3 on one run and explainer: {snr_db: pointings of that SNR's videos}."""
  ids = [v.decode() if isinstance(v, bytes) else str(v) for v in maps["video_id"]]
  levels = sorted({truth[v]["snr_db"] for v in ids}, reverse=True)
  return {
      float(snr): _pointing_metrics(
          segment_scores(maps, truth, [i for i, v in enumerate(ids) if truth[v]["snr_db"] == snr])
      )
      for snr in levels
  }


def run_metrics(level: int, maps_by_explainer: dict, truth: dict) -> list[tuple]:
  """[(explainer, metric, snr_db or None, value)] of one run of a level."""
  found = []
  for explainer, maps in maps_by_explainer.items():
    if level == 1:
      found += [(explainer, m, None, v) for m, v in offscreen_metrics(maps, truth).items()]
    elif level == 2:
      scores = segment_scores(maps, truth)
      found += [
          (explainer, m, None, v) for m, v in _pointing_metrics(scores, instances=True).items()
      ]
      if len(scores["chance"]) and not any(e == "chance" for e, *_ in found):
        found.append(("chance", "pointing_spatial", None, float(scores["chance"].mean())))
    else:
      for snr, metrics in snr_metrics(maps, truth).items():
        found += [(explainer, m, snr, v) for m, v in metrics.items()]
  return found


def ci95(std: float, n: int) -> float:
  """Student-t 95 % half-width of a mean of n values with sample std `std` (0 for n < 2)."""
  return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0


def records(by_row: dict[str, list]) -> list[dict]:
  """The three tables' records from {row: [run directory of each seed]} (rows without a level,
  and runs without maps, are skipped)."""
  cells: dict[tuple, list[float]] = {}
  for row, run_dirs in by_row.items():
    parsed = model_and_level(row)
    if parsed is None:
      continue
    model, level = parsed
    for run_dir in run_dirs:
      maps = read_maps(run_dir)
      if not maps:
        continue
      for explainer, metric, snr, value in run_metrics(level, maps, read_truth(run_dir)):
        cells.setdefault((TABLE_OF_LEVEL[level], model, explainer, metric, snr), []).append(value)
  rows = []
  for (table, model, explainer, metric, snr), values in cells.items():
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
      continue
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    record = {
        "table": table,
        "model": model,
        "explainer": explainer,
        "metric": metric,
        "split": "test",
        "randomised": None,
        "mean": float(np.mean(finite)),
        "std": std,
        "n": len(finite),
        "ci95": ci95(std, len(finite)),
    }
    if table == "snr":
      record["snr_db"] = snr
    rows.append(record)
  return rows


def _cell(record: dict | None) -> str:
  if record is None:
    return "—"
  return f"{record['mean']:.3f} ± {record['ci95']:.3f}"


def markdown(rows: list[dict]) -> str:
  """The three tables in Markdown (mean ± 95 % half-width over seeds), '' when none."""
  sections = {
      "offscreen": (
          "## Off-screen sources (level 1): is the source on screen? (AP, max-F1 on every test "
          "video; pointing on the on-screen ones)",
          ("ap", "max_f1") + POINTING,
      ),
      "instances": (
          "## Silent look-alikes (level 2): instance pointing (chance = 1 / instances)",
          POINTING,
      ),
      "snr": ("## Noise and motion (level 3): pointing against SNR (dB)", POINTING),
  }
  lines = []
  for table, (title, metrics) in sections.items():
    found = [r for r in rows if r["table"] == table]
    if not found:
      continue
    keys = list(dict.fromkeys((r["model"], r["explainer"], r.get("snr_db")) for r in found))
    index = {(r["model"], r["explainer"], r.get("snr_db"), r["metric"]): r for r in found}
    snr = table == "snr"
    lines += ["", title, "", "| model | explainer | " + ("SNR | " if snr else "")]
    lines[-1] += " | ".join(metrics) + " |"
    lines.append("|---" * (len(metrics) + 2 + snr) + "|")
    for model, explainer, snr_db in keys:
      cells = [_cell(index.get((model, explainer, snr_db, m))) for m in metrics]
      lines.append(
          f"| {model} | {explainer} | "
          + (f"{snr_db:g} | " if snr else "")
          + " | ".join(cells)
          + " |"
      )
  return "\n".join(lines) + "\n" if lines else ""
