"""The synthetic_hard suite's tables (stt/reproduce_hard_tables.py) on hand-made runs: maps with
known peaks, truth rows with known boxes, numbers computed by hand from the definitions."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines import synthetic_hard_dataset
from stt import reproduce
from stt import reproduce_hard_tables as tables
from stt import reproduce_runs
from stt import reproduce_suites

T, SIZE = 2, 64
TOP_LEFT, TOP_RIGHT = [0, 0, 31, 31], [32, 0, 63, 31]
BOTTOM_LEFT, BOTTOM_RIGHT = [0, 32, 31, 63], [32, 32, 63, 63]


def _one_hot(*cells):
  """[T,4,4] maps peaking at one (row, col) cell per segment (resized: near the cell's centre)."""
  maps = np.zeros((len(cells), 4, 4), np.float32)
  for t, (r, c) in enumerate(cells):
    maps[t, r, c] = 1.0
  return maps


def _row(video_id, on_screen=True, source=TOP_LEFT, lookalikes=(), snr=None):
  return {
      "video_id": video_id,
      "source_on_screen": on_screen,
      "event_start": 0,
      "event_end": T,
      "source_boxes": [source] * T if on_screen else [],
      "lookalike_boxes": [[box] * T for box in lookalikes],
      "num_instances": 1 + len(lookalikes) if on_screen else 0,
      "snr_db": snr,
  }


def _run(directory, level, rows, where, explainer="gradient"):
  """A run directory: config.json naming its data, the level's truth, explain/maps/*.npz."""
  data_dir = directory / "data"
  settings = {"level": level, "case": directory.name}
  raw = synthetic_hard_dataset.raw_dir(data_dir, settings)
  raw.mkdir(parents=True)
  (raw / "scenes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (directory / "config.json").write_text(
      json.dumps({"data_dir": str(data_dir), "synthetic_hard": settings})
  )
  (directory / "explain" / "maps").mkdir(parents=True)
  v = len(rows)
  np.savez(
      directory / "explain" / "maps" / f"{explainer}.npz",
      video_id=np.asarray([r["video_id"] for r in rows]),
      where=np.asarray(where, np.float32),
      when=np.ones((v, T), np.float32),
      segment_mask=np.ones((v, T), bool),
      frame_size=np.full((v, 2), SIZE, np.int32),
      explained_class=np.zeros(v, np.int32),
  )
  return directory


def test_instances_count_the_nearest_instance_and_the_source_box(tmp_path):
  rows = [
      _row("a", source=TOP_LEFT, lookalikes=[BOTTOM_RIGHT]),
      _row("b", source=TOP_RIGHT, lookalikes=[BOTTOM_LEFT, BOTTOM_RIGHT]),
  ]
  # a: on the source, then on its look-alike. b: on the source, then at (23, 23): 9 px from
  # the source and from the bottom-left look-alike (a tie of 2: 1/2), 9*sqrt(2) from the other.
  where = [_one_hot((0, 0), (3, 3)), _one_hot((0, 3), (1, 1))]
  run = _run(tmp_path / "run", 2, rows, where)
  got = {(r["explainer"], r["metric"]): r for r in tables.records({"stan_level2": [run]})}
  assert got["gradient", "pointing_spatial"]["mean"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)
  assert got["gradient", "pointing_spatial_in_box"]["mean"] == pytest.approx(2 / 4)
  assert got["chance", "pointing_spatial"]["mean"] == pytest.approx((1 / 2 * 2 + 1 / 3 * 2) / 4)
  assert {r["table"] for r in got.values()} == {"instances"}
  assert all(r["model"] == "stan" and r["n"] == 1 and r["ci95"] == 0 for r in got.values())


def test_offscreen_ap_and_max_f1_by_their_definitions(tmp_path):
  rows = [
      _row("on1", source=TOP_LEFT),
      _row("off1", on_screen=False),
      _row("on2", source=BOTTOM_RIGHT),
      _row("off2", on_screen=False),
  ]
  # Near-flat maps, 1 % higher in the top-left cell: the confidence (top-quarter mean,
  # 1.0025 x the value) ranks them 0.9 > 0.6 > 0.4 > 0.1 (on, off, on, off); the point is in the
  # top-left cell, in on1's box, far from on2's.
  where = [np.full((T, 4, 4), c, np.float32) for c in (0.9, 0.6, 0.4, 0.1)]
  for map_ in where:
    map_[:, 0, 0] *= 1.01
  run = _run(tmp_path / "run", 1, rows, where)
  got = {r["metric"]: r["mean"] for r in tables.records({"avel_level1": [run]})}
  # Thresholds 0.9, 0.6, 0.4, 0.1: precision 1, 1/2, 2/3, 1/2; recall 1/2, 1/2, 1, 1.
  # Interpolated precision 1, 2/3, 2/3, 1/2: AP = 1 * 1/2 + 2/3 * 1/2; F1 best at 0.4: 0.8.
  assert got["ap"] == pytest.approx(1 / 2 + 1 / 3)
  assert got["max_f1"] == pytest.approx(0.8)
  assert got["pointing_spatial_in_box"] == pytest.approx(0.5)  # on-screen videos only
  assert got["pointing_spatial"] == pytest.approx(0.5)  # 15 px: on2's box is 32 px away


def test_snr_rows_per_level_and_seed_intervals(tmp_path):
  rows = [_row("loud", source=TOP_LEFT, snr=20.0), _row("quiet", source=TOP_LEFT, snr=0.0)]
  runs = []
  for seed, quiet_cells in enumerate([((0, 0), (3, 3)), ((3, 3), (3, 3))]):
    where = [_one_hot((0, 0), (0, 0)), _one_hot(*quiet_cells)]
    runs.append(_run(tmp_path / f"seed{seed}", 3, rows, where))
  got = {(r["snr_db"], r["metric"]): r for r in tables.records({"stan_level3": runs})}
  assert got[20.0, "pointing_spatial_in_box"]["mean"] == 1.0
  quiet = got[0.0, "pointing_spatial_in_box"]
  assert quiet["mean"] == pytest.approx(0.25) and quiet["n"] == 2
  assert quiet["std"] == pytest.approx(math.sqrt(2) * 0.25)  # values 0.5 and 0
  assert quiet["ci95"] == pytest.approx(12.7062047 * quiet["std"] / math.sqrt(2), rel=1e-6)
  text = tables.markdown(list(got.values()))
  assert "## Noise and motion" in text and "| stan | gradient | 0 | " in text


def test_suite_rows_and_aggregate_write_the_tables(tmp_path):
  suite = reproduce_suites.SUITES["synthetic_hard"]
  names = [row.name for row in suite.rows]
  assert len(names) == 3 * len(reproduce_suites.COMPARED_MODELS)
  assert {tables.model_and_level(n)[1] for n in names} == {1, 2, 3}
  assert tables.model_and_level("stan") is None
  rows = [_row("a", source=TOP_LEFT, lookalikes=[BOTTOM_RIGHT])]
  run = _run(tmp_path / "stan_level2" / "seed0", 2, rows, [_one_hot((0, 0), (0, 0))])
  assert tables.markdown(tables.records({"stan_level2": [run]})).count("| stan |") == 2
  assert tables.records({"stan": [run]}) == []  # not a level row: no extra tables
  row = next(r for r in suite.rows if r.name == "stan_level2")
  summary = reproduce.aggregate(
      "synthetic_hard",
      [reproduce_runs.Run(row, 0, run, ())],
      tmp_path / "suite",
      doc=tmp_path / "doc.md",
  )
  hard = [r for r in summary["rows"] if r["table"] in tables.TABLES]
  assert {(r["explainer"], r["metric"]) for r in hard} == {
      ("gradient", "pointing_spatial"),
      ("gradient", "pointing_spatial_in_box"),
      ("chance", "pointing_spatial"),
  }
  assert "## Silent look-alikes" in (tmp_path / "suite" / "tables.md").read_text()
  assert "## Silent look-alikes" in (tmp_path / "doc.md").read_text()


@pytest.mark.slow
def test_synthetic_hard_suite_at_smoke_size_writes_the_three_tables(tmp_path):
  """The real suite at smoke size, STAN on each level, 1 seed: every table has finite cells."""
  done = subprocess.run(
      [
          sys.executable,
          "-m",
          "stt.reproduce",
          "--suite=synthetic_hard",
          "--smoke",
          "--seeds=1",
          "--models=stan_level1,stan_level2,stan_level3",
          "--explainers=attention,gradient,random",
          f"--workdir={tmp_path / 'suite'}",
          f"--config_override=--config.data_dir={tmp_path / 'data'}",
      ],
      capture_output=True,
      text=True,
      cwd=pathlib.Path(__file__).parent.parent,
      timeout=1800,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  summary = json.loads((tmp_path / "suite" / "summary.json").read_text())
  hard = [r for r in summary["rows"] if r["table"] in tables.TABLES]
  assert {r["table"] for r in hard} == set(tables.TABLES)
  assert all(math.isfinite(r["mean"]) and math.isfinite(r["ci95"]) for r in hard)
  metrics = {(r["table"], r["metric"]) for r in hard}
  assert {("offscreen", "ap"), ("offscreen", "max_f1"), ("instances", "pointing_spatial")} <= (
      metrics
  )
  assert all(r["snr_db"] in (20.0, 10.0, 0.0) for r in hard if r["table"] == "snr")
