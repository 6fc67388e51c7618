"""The explanation suite's reports (stt/explain/suite.py): tables, curves, maps and panels.

In the report folder (`<workdir>/explain/`, or `<workdir>/explain_<set>/` for an annotation set):
`tables.md`, `tables.csv` (one row per explainer, then the baseline rows), `curves.json` and
`curves.png` (accuracy vs fraction removed for each perturbation test), `maps/<explainer>.npz`
(the ground-truth-class maps in the format of `python -m stt.explain.score_maps --maps`) and
`panels/<video_id>/<explainer>.png` (frames with "where", "when" over the spectrogram).
"""

from __future__ import annotations

import csv
import io
import json

from etils import epath
import matplotlib
import numpy as np

from data_pipelines import catalogue
from stt.explain import panels
from stt.explain import perturbation
from stt.explain import sound_source_benchmark
from stt.explain import suite_scores

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

BASELINE_ROWS = ("chance", "center_prior")  # computed on the annotations, no maps
TABLE_COLUMNS = (
    "pointing_spatial",
    "pointing_temporal",
    "relevance_mass",
    "ciou",
    "ciou_mean",
    "field_ciou",
    "field_auc",
    "spatial/positive_auc",
    "spatial/negative_auc",
    "temporal/positive_auc",
    "temporal/negative_auc",
)


def write_reports(
    directory: epath.Path,
    scores: dict[str, dict],
    curves: dict[str, dict],
    names,
    published_dataset: str = "",
):
  """tables.md, tables.csv, curves.json and curves.png in `directory`.

  scores: {row: bare {metric: value}} (suite_scores) for the explainers `names` and the
  baseline rows; curves: {explainer: {test/order: accuracy [P]}}. The table ends with the chance
  and centre-prior rows, then, for an annotation set (VGG-SS), the published rows of
  sound-localization methods.
  """
  directory.mkdir(parents=True, exist_ok=True)
  rows = [
      [name] + [scores.get(name, {}).get(column) for column in TABLE_COLUMNS]
      for name in [*names, *BASELINE_ROWS]
  ]
  fmt = (
      lambda v: "—"
      if v is None or (isinstance(v, float) and not np.isfinite(v))
      else (f"{v:.3f}" if abs(v) <= 1 else f"{v:.1f}")
  )
  lines = [
      "| explainer | " + " | ".join(TABLE_COLUMNS) + " |",
      "|---" * (len(TABLE_COLUMNS) + 1) + "|",
  ]
  lines += ["| " + " | ".join([row[0]] + [fmt(v) for v in row[1:]]) + " |" for row in rows]
  note = (
      "\nPointing and localisation: higher is better; `chance` is the expected pointing of a "
      "uniformly random cell and segment on these annotations; `center_prior` points at the "
      "exact frame centre (spatial only). On STAN, `rollout`'s spatial scores are attention's "
      "by construction (its where is alpha scaled per frame) and are not reported. "
      "Perturbation AUC (trapz of accuracy over p = 0..0.9, x100, max 90): positive (most "
      "relevant removed first) lower is better, negative higher is better.\n"
  )
  published = sound_source_benchmark.published_rows(published_dataset)
  if published:
    note += (
        "\nPublished on this set, field_ciou / field_auc in % (these methods are trained "
        "to localize sounds; STAN's maps explain a classifier's decision):\n\n"
        "| method | field_ciou | field_auc | source |\n|---|---|---|---|\n"
        + "".join(
            f"| {method} | {ciou:.2f} | {'—' if auc is None else f'{auc:.2f}'} | {source} |\n"
            for method, ciou, auc, source in published
        )
    )
  if published_dataset and not catalogue.spec(published_dataset).labelled:
    note += (
        "\nThis set has no class labels: the maps explain the predicted class; pointing and "
        "the field's scores are class-agnostic (one label for all: class means = overall); "
        "perturbation AUCs need the true class and are not reported (—).\n"
    )
  (directory / "tables.md").write_text("\n".join(lines) + "\n" + note)
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(("explainer",) + TABLE_COLUMNS)
  writer.writerows(rows)
  (directory / "tables.csv").write_text(buffer.getvalue())
  # The accuracy curves, for figures across runs (stt.reproduce); NaN (not applicable) is null.
  (directory / "curves.json").write_text(
      json.dumps(
          {
              "fractions": [float(f) for f in perturbation.FRACTIONS],
              **{
                  name: {
                      test: [float(v) if np.isfinite(v) else None for v in curve]
                      for test, curve in curves[name].items()
                  }
                  for name in names
              },
          }
      )
  )

  figure, axes = plt.subplots(
      1, len(suite_scores.TESTS), figsize=(4 * len(suite_scores.TESTS), 3.2), sharey=True
  )
  for axis, (test, order) in zip(axes, suite_scores.TESTS):
    for name in names:
      axis.plot(
          perturbation.FRACTIONS, curves[name][f"{test}/{order}"], marker="o", ms=3, label=name
      )
    axis.set_title(f"{test}, {order}")
    axis.set_xlabel("fraction removed")
  axes[0].set_ylabel("top-1 accuracy")
  axes[-1].legend(fontsize=7)
  figure.tight_layout()
  with (directory / "curves.png").open("wb") as file:
    figure.savefig(file, format="png", dpi=100)
  plt.close(figure)


def write_panels(
    directory: epath.Path, outputs: dict[str, dict], source, class_names, count: int
) -> None:
  """`<directory>/<video_id>/<explainer>.png` for the first `count` examples of the split."""
  for name, out in outputs.items():
    positions = range(min(count, len(out["label"])))
    for video_id, image in panels.panels_for_examples(out, source, positions, class_names).items():
      (directory / video_id).mkdir(parents=True, exist_ok=True)
      panels.save_png(directory / video_id / f"{name}.png", image)


def video_ids_of(outputs: dict[str, dict], source) -> np.ndarray:
  """[V] str: the video id of each row of `outputs` (split order: row i is `source[i]`)."""
  count = len(next(iter(next(iter(outputs.values())).values())))  # any per-example array's V
  video_ids = [source[i]["video_id"] for i in range(count)]
  return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in video_ids])


def write_maps(
    directory: epath.Path, outputs: dict[str, dict], source, video_ids: np.ndarray | None = None
) -> None:
  """`<directory>/<explainer>.npz`: the maps in stt.explain.score_maps's --maps format.

  outputs: per-example arrays in split order, so row i is `source[i]`; video_ids [V]
  (`video_ids_of`), read from `source` when not given.
  """
  directory.mkdir(parents=True, exist_ok=True)
  if video_ids is None:
    video_ids = video_ids_of(outputs, source)
  for name, out in outputs.items():
    with (directory / f"{name}.npz").open("wb") as file:
      np.savez_compressed(
          file,
          video_id=video_ids,
          where=np.asarray(out["where"], np.float32),
          when=np.asarray(out["when"], np.float32),
          segment_mask=np.asarray(out["segment_mask"], bool),
          frame_size=np.asarray(out["frame_size"], np.int32),
          explained_class=np.asarray(out["explained_class"], np.int32),
      )


# The per-video perturbation curves the viewer draws (stt/explain/viewer_build.py reads them).
CURVE_TESTS = ("spatial_positive", "spatial_negative", "temporal_positive", "temporal_negative")


def write_video_curves(
    directory: epath.Path, outputs: dict[str, dict], video_ids: np.ndarray
) -> None:
  """`<directory>/<explainer>.npz`: video_id [V] and each CURVE_TESTS curve [V,P] (the predicted
  class's probability at perturbation.FRACTIONS) of the suite's per-example outputs."""
  directory.mkdir(parents=True, exist_ok=True)
  for name, out in outputs.items():
    curves = {
        test: np.asarray(out[f"{test.replace('_', '/')}/probability"], np.float32)
        for test in CURVE_TESTS
    }
    with (directory / f"{name}.npz").open("wb") as file:
      np.savez_compressed(file, video_id=np.asarray(video_ids), **curves)
