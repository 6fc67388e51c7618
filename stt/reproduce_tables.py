"""The paper-style tables of a reproduce suite, from the runs' results.json files.

One record per table cell (long form), each the mean ± std over seeds of one metric:

    {"table": "recognition" | "perturbation" | "pointing" | "sanity", "model": ...,
     "explainer": ... or None, "metric": ..., "split": "val" | "test", "randomised": None or
     [block, ...], "mean": ..., "std": ..., "n": ..., "ci95": ...}

Table 4 ("sanity", stt/explain/sanity.py): `randomised` lists the re-initialised parameter
blocks: None for the trained model, the blocks from the top down to b for the cascade's step b
(a prefix of the model's block order), [b] for block b alone (never the first block: that is the
cascade's first step).

std is the sample standard deviation (ddof=1; 0.0 for one seed); ci95 the half-width of the 95 %
confidence interval of the mean over seeds, Student t with n - 1 degrees of freedom,
t(0.975, n - 1) * std / sqrt(n) (None for one seed: no interval). It assumes the seeds' values
are independent draws of a normal variable; with 3 seeds t(0.975, 2) = 4.30, so the interval is
2.5 std wide on each side. A metric missing or null in a
run (an explainer that does not apply to a model, a metric without trials) is left out of that
cell's n; a cell no run has is not written, and the Markdown tables show "—" for it.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math
import re

from etils import epath
import numpy as np
from scipy import stats

from stt.explain import sanity_report
from stt.explain import suite_reports

RECOGNITION_METRICS = ("accuracy", "segment_accuracy")
# Accuracy AUCs, then the predicted class's probability-drop AUCs (the same curves' other record),
# each for the zero baseline and ROAD's imputation (`road/`, explain.perturbation_baselines).
PERTURBATION_METRICS = tuple(
    f"{baseline}{test}/{order}_{kind}"
    for baseline in ("", "road/")
    for kind in ("auc", "probability_auc")
    for test in ("spatial", "temporal")
    for order in ("positive", "negative")
)
POINTING_METRICS = (
    "pointing_spatial",
    "pointing_spatial_class_mean",
    "pointing_spatial_in_box",
    "pointing_temporal",
    "relevance_mass",
    "ciou",
    "ciou_mean",
)
# Rows of the pointing table computed on the annotations alone.
REFERENCE_ROWS = suite_reports.BASELINE_ROWS
# The model's own maps scored on val during training (stt/split_evaluator.py): the split that design
# choices (e.g. STAN's pool_values and joint "when") are made on.
VAL_POINTING_METRICS = (
    "pointing_spatial",
    "pointing_spatial_in_box",
    "pointing_temporal",
    "pointing_temporal_audio",
    "pointing_temporal_visual",
)
# Beside them, each head's map alone (split_evaluator.head_pointing), as many as the model has.
HEAD_POINTING = re.compile(r"^pointing_spatial_head\d+$")
CSV_FIELDS = (
    "table",
    "model",
    "explainer",
    "metric",
    "split",
    "randomised",
    "mean",
    "std",
    "n",
    "by_construction",
    "ci95",
    # The comparisons table's (stt/reproduce_comparisons.py), empty in the other tables' rows.
    "versus",
    "versus_explainer",
    "versus_mean",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "n_seeds",
    "n_pairs",
)


def ci95(std: float | None, n: int) -> float | None:
  """Half-width of the 95 % Student-t interval of a mean of n values with sample std `std`;
  None for n < 2."""
  if std is None or n < 2:
    return None
  return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def _cell(values: list) -> tuple[float | None, float | None, int]:
  finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  if not finite:
    return None, None, 0
  std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
  return float(np.mean(finite)), std, len(finite)


def _explainers_in(results: list[dict]) -> list[str]:
  """Explainer names with keys in any of `results`, in first-seen order."""
  names = {}
  for result in results:
    for key in result:
      if key.startswith("explain/"):
        names.setdefault(key.split("/")[1], None)
  return list(names)


def _head_metrics(results: list[dict]) -> tuple[str, ...]:
  """The per-head val pointing metrics (`HEAD_POINTING`) in any of `results`, in order."""
  prefix = "val/explain/attention/"
  found = {
      key.removeprefix(prefix)
      for result in results
      for key in result
      if key.startswith(prefix) and HEAD_POINTING.match(key.removeprefix(prefix))
  }
  return tuple(sorted(found, key=lambda metric: int(metric.removeprefix("pointing_spatial_head"))))


def summary_rows(results_by_model: dict[str, list[dict]]) -> list[dict]:
  """Long-form records (module docstring) from {model: [results.json of each seed]}."""
  rows = []

  def add(table, model, explainer, metric, split, key):
    mean, std, n = _cell([result.get(key) for result in results])
    if n:
      rows.append(
          dict(
              table=table,
              model=model,
              explainer=explainer,
              metric=metric,
              split=split,
              randomised=None,
              mean=mean,
              std=std,
              n=n,
          )
      )

  for model, results in results_by_model.items():
    rows += _sanity_rows(model, results)
    for split in ("test", "val"):
      for metric in RECOGNITION_METRICS:
        add("recognition", model, None, metric, split, f"{split}/{metric}")
    for metric in VAL_POINTING_METRICS + _head_metrics(results):
      add("pointing", model, "attention", metric, "val", f"val/explain/attention/{metric}")
    for explainer in _explainers_in(results):
      for metric in PERTURBATION_METRICS:
        add("perturbation", model, explainer, metric, "test", f"explain/{explainer}/{metric}")
      for metric in POINTING_METRICS:
        add("pointing", model, explainer, metric, "test", f"explain/{explainer}/{metric}")
  return [{**row, "ci95": ci95(row["std"], row["n"])} for row in rows]


def _sanity_rows(model: str, results: list[dict]) -> list[dict]:
  """Table 4 records of one model (module docstring), mean ± std over the seeds' runs."""
  rows = []
  parsed = [sanity_report.parse(result) for result in results]
  blocks = next((blocks for blocks, _ in parsed if blocks), [])
  keys = list(dict.fromkeys(key for _, values in parsed for key in values))
  above = {}
  for result in results:
    above.update(sanity_report.blocks_above(result))
  constructed = sanity_report.constructed_keys(blocks, dict.fromkeys(keys), above)
  for mode, block, explainer, metric in keys:
    mean, std, n = _cell([values.get((mode, block, explainer, metric)) for _, values in parsed])
    if not n:
      continue
    if mode == "trained":
      randomised = None
    elif mode == "cascading":
      randomised = blocks[: blocks.index(block) + 1]
    else:
      randomised = [block]
    rows.append(
        dict(
            table="sanity",
            model=model,
            explainer=explainer,
            metric=metric,
            split="test",
            randomised=randomised,
            mean=mean,
            std=std,
            n=n,
            by_construction=(mode, block, explainer, metric) in constructed,
        )
    )
  return rows


def sanity_values(rows: list[dict], model: str) -> tuple[list[str], dict]:
  """(cascade blocks, {(mode, block, explainer, metric): record}) of a model's Table 4 records,
  the form sanity_report draws."""
  records = [r for r in rows if r["table"] == "sanity" and r["model"] == model]
  blocks = max((r["randomised"] or [] for r in records), key=len, default=[])
  values = {}
  for record in records:
    randomised = record["randomised"]
    if randomised is None:
      key = ("trained", None)
    elif randomised == blocks[: len(randomised)]:
      key = ("cascading", randomised[-1])
    else:
      key = ("independent", randomised[0])
    values[key + (record["explainer"], record["metric"])] = record
  return list(blocks), values


def _format(row: dict | None) -> str:
  if row is None:
    return "—"
  interval = row.get("ci95")
  return f"{row['mean']:.3f} ± {row['std']:.3f}" + (
      "" if interval is None else f" [±{interval:.3f}]"
  )


def markdown(rows: list[dict], header: str) -> str:
  """Tables 1-3 in Markdown, mean ± std (n in the text)."""
  index = {(r["table"], r["model"], r["explainer"], r["metric"], r["split"]): r for r in rows}
  models = list(dict.fromkeys(r["model"] for r in rows))
  lines = [header, ""]
  lines += [
      "## Table 1: recognition (test; model selected on val)",
      "",
      "| model | test accuracy | val accuracy | test segment accuracy | n |",
      "|---|---|---|---|---|",
  ]
  for model in models:
    cells = [
        index.get(("recognition", model, None, metric, split))
        for metric, split in (
            ("accuracy", "test"),
            ("accuracy", "val"),
            ("segment_accuracy", "test"),
        )
    ]
    n = cells[0]["n"] if cells[0] else 0
    lines.append(f"| {model} | " + " | ".join(_format(c) for c in cells) + f" | {n} |")
  heads = sorted(
      {r["metric"] for r in rows if r["split"] == "val" and HEAD_POINTING.match(r["metric"])},
      key=lambda metric: int(metric.removeprefix("pointing_spatial_head")),
  )
  val_metrics = VAL_POINTING_METRICS + tuple(heads)
  val_cells = {
      model: [index.get(("pointing", model, "attention", m, "val")) for m in val_metrics]
      for model in models
  }
  if any(any(cells) for cells in val_cells.values()):
    lines += [
        "",
        "## Validation: the model's own maps (what design choices are made on)",
        "",
        "| model | val accuracy | " + " | ".join(val_metrics) + " |",
        "|---" * (len(val_metrics) + 2) + "|",
    ]
    for model in models:
      accuracy = index.get(("recognition", model, None, "accuracy", "val"))
      lines.append(
          f"| {model} | {_format(accuracy)} | "
          + " | ".join(_format(c) for c in val_cells[model])
          + " |"
      )
  for table, metrics, title in (
      (
          "perturbation",
          PERTURBATION_METRICS,
          "## Table 2: perturbation tests (AUC x100 over p = 0..0.9; positive lower is better, "
          "negative higher)",
      ),
      ("pointing", POINTING_METRICS, "## Table 3: pointing games and localisation (test)"),
  ):
    explainers = list(dict.fromkeys(r["explainer"] for r in rows if r["table"] == table))
    # A column no run measured (e.g. ROAD's when no run set explain.perturbation_baselines, or
    # cIoU on a small-box dataset) is left out rather than printed as a column of "—".
    measured = {r["metric"] for r in rows if r["table"] == table and r["split"] == "test"}
    metrics = tuple(m for m in metrics if m in measured) or metrics
    lines += [
        "",
        title,
        "",
        "| model | explainer | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for model in models:
      for explainer in explainers:
        cells = [index.get((table, model, explainer, metric, "test")) for metric in metrics]
        if any(cells) or explainer not in REFERENCE_ROWS:
          lines.append(f"| {model} | {explainer} | " + " | ".join(_format(c) for c in cells) + " |")
  for model in models:
    blocks, values = sanity_values(rows, model)
    if values:
      table = sanity_report.markdown(
          blocks,
          {key: record["mean"] for key, record in values.items()},
          f"Table 4: sanity checks, {model} (test)",
          texts={key: _format(record) for key, record in values.items()},
          constructed={key for key, record in values.items() if record.get("by_construction")},
      )
      lines += ["", table.rstrip("\n")]
  lines += [
      "",
      "Each cell: mean ± sample std over seeds [±ci95: half-width of the 95 % confidence "
      "interval of the mean, Student t with n - 1 degrees of freedom; none for one seed]; — : "
      "not applicable to that model or not measured. Perturbation AUCs are on the scale 0..90.",
  ]
  if heads:
    lines.append(
        "Validation `pointing_spatial_head<k>`: the spatial pointing of head k's attention map "
        'alone (`pointing_spatial` scores their mean, the model\'s "where").'
    )
  pointing_rows = [r for r in rows if r["table"] == "pointing" and r["split"] == "test"]
  if any(r["metric"] == "ciou_mean" for r in pointing_rows) and not any(
      r["metric"] == "ciou" for r in pointing_rows
  ):
    lines.append(
        "`ciou` (LVS's share of cIoU >= 0.5 of the median-binarised map) is — : every box of "
        "this dataset covers under a quarter of the frame (its record's `small_boxes`), so a map "
        "that keeps half the frame has cIoU < 0.5 by construction; `ciou_mean` is its mean cIoU."
    )
  lines.append(
      "`pointing_spatial_in_box`: the pointing games' point (TorchRay's, the centre of a plateau "
      "of tied maxima) inside the box, without TorchRay's 15 px tolerance."
  )
  return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, restval="")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


def read_results(run_dirs: dict[str, list[epath.Path]]) -> dict[str, list[dict]]:
  """{model: [results.json of each run directory that has one]}."""
  found = collections.defaultdict(list)
  for model, directories in run_dirs.items():
    for directory in directories:
      path = epath.Path(directory) / "results.json"
      if path.exists():
        found[model].append(json.loads(path.read_text()))
  return dict(found)
