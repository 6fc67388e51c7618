"""The figures of a reproduce suite: Table 4 as curves, and the perturbation curves per model.

figures/sanity_<row>.png         rank correlation vs cascading randomisation depth, one
                                 line per explainer (seed means; stt/explain/sanity_report)
figures/perturbation_<row>.png   top-1 accuracy vs fraction removed for the four tests, one
                                 line per explainer, mean over the seeds' runs
                                 (each run's explain/curves.json)

A curve is drawn only where Table 2 has its AUC (`drawn_tests`): the figure and the table agree.
Rollout's spatial curves on STAN are not drawn: its "where" is attention's alpha times a
positive per-frame constant, and the spatial tests rank cells within each frame, so its curves
are attention's (tests/test_explain_suite.py checks them equal, point for point).
"""

from __future__ import annotations

import json

from etils import epath
import matplotlib
import numpy as np

from stt import reproduce_tables
from stt.explain import sanity_report
from stt.explain import suite_scores

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

TESTS = tuple(f"{test}/{order}" for test, order in suite_scores.TESTS)  # "spatial/positive", ...


def mean_curves(run_dirs: list[epath.Path]) -> tuple[list[float], dict[str, dict]]:
  """(fractions, {explainer: {test: mean accuracy [P] over the runs}}); a point null in every
  run (not applicable) is NaN."""
  fractions, collected = [], {}
  for directory in run_dirs:
    path = epath.Path(directory) / "explain" / "curves.json"
    if not path.exists():
      continue
    curves = json.loads(path.read_text())
    fractions = curves.pop("fractions")
    for explainer, tests in curves.items():
      for test, values in tests.items():
        series = [np.nan if v is None else v for v in values]
        collected.setdefault(explainer, {}).setdefault(test, []).append(series)
  means = {
      explainer: {test: np.nanmean(np.asarray(runs, float), axis=0) for test, runs in tests.items()}
      for explainer, tests in collected.items()
  }
  return fractions, means


def drawn_tests(rows: list[dict], row: str) -> set[tuple[str, str]]:
  """{(explainer, test)} of the row's Table 2 cells (`<test>_auc` records): the curves drawn."""
  return {
      (r["explainer"], r["metric"].removesuffix("_auc"))
      for r in rows
      if r["table"] == "perturbation" and r["model"] == row and r["metric"].endswith("_auc")
  }


def perturbation_figure(
    path: epath.Path, row: str, fractions, curves: dict, drawn: set | None = None
) -> dict[str, list[str]]:
  """The four panels of `curves` {explainer: {test: [P]}}; with `drawn` only its (explainer,
  test) pairs. Returns {test: [explainers drawn]}."""
  figure, axes = plt.subplots(1, len(TESTS), figsize=(4 * len(TESTS), 3.2), sharey=True)
  lines = {}
  for axis, test in zip(axes, TESTS):
    lines[test] = []
    for explainer, tests in curves.items():
      if drawn is not None and (explainer, test) not in drawn:
        continue
      if test in tests and np.isfinite(tests[test]).any():
        axis.plot(fractions, tests[test], marker="o", ms=3, label=explainer)
        lines[test].append(explainer)
    axis.set_title(f"{row}: {test.replace('/', ', ')}")
    axis.set_xlabel("fraction removed")
  axes[0].set_ylabel("top-1 accuracy (mean over seeds)")
  axes[-1].legend(fontsize=7)
  figure.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("wb") as file:
    figure.savefig(file, dpi=100)
  plt.close(figure)
  return lines


def write(workdir: epath.Path, rows: list[dict], run_dirs: dict[str, list[epath.Path]]) -> list:
  """Both figures for every row that has the data; returns the paths written."""
  written = []
  for row, directories in run_dirs.items():
    fractions, curves = mean_curves(directories)
    if curves:
      path = workdir / "figures" / f"perturbation_{row}.png"
      perturbation_figure(path, row, fractions, curves, drawn_tests(rows, row))
      written.append(path)
    blocks, records = reproduce_tables.sanity_values(rows, row)
    if records:
      path = workdir / "figures" / f"sanity_{row}.png"
      means = {key: record["mean"] for key, record in records.items()}
      sanity_report.figure(path, blocks, means, f"{row}: cascading randomisation")
      written.append(path)
  return written
