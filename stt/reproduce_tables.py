"""The paper-style tables of a reproduce suite, from the runs' results.json files.

One record per table cell (long form), each the mean ± std over seeds of one metric:

    {"table": "recognition" | "perturbation" | "pointing" | "sanity", "model": ...,
     "explainer": ... or None, "metric": ..., "split": "val" | "test", "randomised": None or
     [block, ...], "mean": ..., "std": ..., "n": ...}

Table 4 ("sanity", stt/explain/sanity.py): `randomised` lists the re-initialised parameter
blocks: None for the trained model, the blocks from the top down to b for the cascade's step b
(a prefix of the model's block order), [b] for block b alone (never the first block: that is the
cascade's first step).

std is the sample standard deviation (ddof=1; 0.0 for one seed). A metric missing or null in a
run (an explainer that does not apply to a model, a metric without trials) is left out of that
cell's n; a cell no run has is not written, and the Markdown tables show "—" for it.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math

from etils import epath
import numpy as np

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
    "pointing_temporal",
    "pointing_temporal_audio",
    "pointing_temporal_visual",
)
CSV_FIELDS = ("table", "model", "explainer", "metric", "split", "randomised", "mean", "std", "n")


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
    for metric in VAL_POINTING_METRICS:
      add("pointing", model, "attention", metric, "val", f"val/explain/attention/{metric}")
    for explainer in _explainers_in(results):
      for metric in PERTURBATION_METRICS:
        add("perturbation", model, explainer, metric, "test", f"explain/{explainer}/{metric}")
      for metric in POINTING_METRICS:
        add("pointing", model, explainer, metric, "test", f"explain/{explainer}/{metric}")
  return rows


def _sanity_rows(model: str, results: list[dict]) -> list[dict]:
  """Table 4 records of one model (module docstring), mean ± std over the seeds' runs."""
  rows = []
  parsed = [sanity_report.parse(result) for result in results]
  blocks = next((blocks for blocks, _ in parsed if blocks), [])
  keys = list(dict.fromkeys(key for _, values in parsed for key in values))
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
  return f"{row['mean']:.3f} ± {row['std']:.3f}"


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
  val_cells = {
      model: [index.get(("pointing", model, "attention", m, "val")) for m in VAL_POINTING_METRICS]
      for model in models
  }
  if any(any(cells) for cells in val_cells.values()):
    lines += [
        "",
        "## Validation: the model's own maps (what design choices are made on)",
        "",
        "| model | val accuracy | " + " | ".join(VAL_POINTING_METRICS) + " |",
        "|---" * (len(VAL_POINTING_METRICS) + 2) + "|",
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
      )
      lines += ["", table.rstrip("\n")]
  lines += [
      "",
      "Each cell: mean ± sample std over seeds; — : not applicable to that model or "
      "not measured. Perturbation AUCs are on the scale 0..90.",
  ]
  return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
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
