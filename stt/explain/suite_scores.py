"""The explanation suite's scores (stt/explain/suite.py), and the one place that names them.

Every scorer returns `{metric: value}` with bare metric names (pointing.pointing_metrics,
box_scores.box_scores, sound_source_benchmark.box_field_scores, perturbation.summarise);
`explainer_scores` and `baseline_scores` collect one row of the tables each, still bare, and
`namespaced` alone turns a row into results.json keys: `explain/<explainer>/<metric>` on the run's
test split, `explain_<set>/<explainer>/<metric>` on an annotation set (config.explain.dataset).
"""

from __future__ import annotations

import numpy as np

from stt import models
from stt.explain import box_scores
from stt.explain import explainers as explainer_lib
from stt.explain import perturbation
from stt.explain import pointing
from stt.explain import sound_source_benchmark

TESTS = (
    ("spatial", "positive"),
    ("spatial", "negative"),
    ("temporal", "positive"),
    ("temporal", "negative"),
)
# The scores of "where" (NaN where the explainer's spatial scores are attention's, "—" in the
# tables).
SPATIAL_METRICS = (
    "pointing_spatial",
    "pointing_spatial_in_box",
    "pointing_spatial_class_mean",
    "relevance_mass",
    "ciou",
    "ciou_mean",
    "ciou_auc",
    "field_ciou",
    "field_auc",
    "spatial/positive_auc",
    "spatial/negative_auc",
    "spatial/positive_probability_auc",
    "spatial/negative_probability_auc",
)
# The scores of "when" (NaN for an explainer without a "when" on the model: AVEL's attention).
TEMPORAL_METRICS = (
    "pointing_temporal",
    "pointing_temporal_class_mean",
    "temporal/positive_auc",
    "temporal/negative_auc",
    "temporal/positive_probability_auc",
    "temporal/negative_probability_auc",
)
ROAD_PREFIXES = ("", "road/")  # the perturbation baselines' key prefixes: 'zero', 'road'
# The localisation scores reported per explainer (of box_scores.METRICS and the field's).
LOCALIZATION_METRICS = ("relevance_mass", "ciou", "ciou_mean", "ciou_auc")
FIELD_METRICS = ("field_ciou", "field_auc")


def namespaced(metrics: dict, *, explainer: str, annotation_set: str = "") -> dict:
  """One row's bare `{metric: value}` -> results.json keys: `explain/<explainer>/<metric>`, or
  `explain_<annotation_set>/<explainer>/<metric>` for an annotation set (e.g. 'vggss').
  `explainer` is an explainer's name or a baseline row's (`chance`, `center_prior`)."""
  if not explainer or "/" in explainer:
    raise ValueError(f"explainer must be a non-empty name without '/', got {explainer!r}")
  root = f"explain_{annotation_set}" if annotation_set else "explain"
  return {f"{root}/{explainer}/{metric}": value for metric, value in metrics.items()}


def explainer_scores(
    explainer: str,
    out: dict,
    tolerance_px: float,
    field_options: dict | None = None,
    *,
    model,
    labelled: bool = True,
    small_boxes: bool = False,
) -> tuple[dict, dict]:
  """(bare `{metric: value}` of one explainer, accuracy curves {test/order: [P]}).

  out: the explainer's per-example maps, perturbation curves and annotations (suite.explain_split).
  field_options: gt_geometry / median_rule / ground_truth of sound_source_benchmark.box_field_scores.
  model: the explained model (its class or instance), which decides whether the spatial scores
  are not applicable (NaN): it reads no frames, the explainer has no "where" on it
  (`Explainer.dimensions`), or its "where" is attention's by construction on it
  (`Explainer.spatial_is_attention`); and the temporal ones: the explainer has no "when" on it
  (AVEL's attention).
  labelled False (a set without classes): the perturbation scores, accuracies against the true
  class, are NaN.
  small_boxes True (the dataset record's `small_boxes`: every box under a quarter of the frame):
  `ciou`, 0 by construction there, is NaN (not applicable); ciou_mean and ciou_auc are kept.
  """
  metrics = pointing.pointing_metrics(out, tolerance_px)
  located = box_scores.box_scores(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      segment_mask=out["segment_mask"],
  )
  # LVS's `ciou` (share of trials with cIoU >= 0.5) is 0 by construction when objects cover
  # well under half the frame (the map is binarised at its median); the mean and AUC are not.
  metrics.update({key: located[key] for key in LOCALIZATION_METRICS})
  if small_boxes:
    metrics["ciou"] = float("nan")
  # The sound-localization field's protocol (224 px, min-max, whole-frame boxes): cIoU@0.5, AUC.
  field = sound_source_benchmark.box_field_scores(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["segment_mask"],
      **(field_options or {}),
  )
  metrics.update({key: field[key] for key in FIELD_METRICS})
  curves = {}
  # "" the zero baseline, "road/" ROAD's imputation where the explain step ran it (curves: zero's).
  for prefix, (test, order) in ((p, t) for p in ROAD_PREFIXES for t in TESTS):
    if f"{prefix}{test}/{order}/correct" not in out:
      continue
    summary = perturbation.summarise(
        out[f"{prefix}{test}/{order}/correct"].T, out[f"{prefix}{test}/{order}/probability"].T
    )
    if not labelled:
      summary = {
          "auc": float("nan"),
          "probability_auc": float("nan"),
          "accuracy": np.full(len(perturbation.FRACTIONS), np.nan),
      }
    metrics[f"{prefix}{test}/{order}_auc"] = summary["auc"]
    metrics[f"{prefix}{test}/{order}_probability_auc"] = summary["probability_auc"]
    if not prefix:
      curves[f"{test}/{order}"] = summary["accuracy"]
  # Not applicable: attention's by construction, a model that does not see the frames, or a
  # map the explainer does not give on this model.
  record = explainer_lib.EXPLAINERS[explainer]
  dimensions = record.dimensions(model)
  if (
      not models.sees_frames(model)
      or record.spatial_is_attention(model)
      or "where" not in dimensions
  ):
    metrics.update({key: float("nan") for key in SPATIAL_METRICS})
    metrics.update({f"road/{k}": float("nan") for k in SPATIAL_METRICS if f"road/{k}" in metrics})
    for order in ("positive", "negative"):
      curves[f"spatial/{order}"] = [float("nan")] * len(curves[f"spatial/{order}"])
  if "when" not in dimensions:
    metrics.update({key: float("nan") for key in TEMPORAL_METRICS})
    metrics.update({f"road/{k}": float("nan") for k in TEMPORAL_METRICS if f"road/{k}" in metrics})
    for order in ("positive", "negative"):
      curves[f"temporal/{order}"] = [float("nan")] * len(curves[f"temporal/{order}"])
  return metrics, curves


def baseline_scores(out: dict, tolerance_px: float, *, spatial: bool = True) -> dict[str, dict]:
  """The tables' last rows, bare: {'chance': the pointing games' chance levels on these
  annotations (a uniformly random cell, a uniformly random valid segment), 'center_prior':
  pointing at the exact frame centre}, to read every explainer against.

  spatial False (a model that sees no frames, e.g. audio_only: no spatial map to point with):
  the spatial rows are NaN ("—"), not the chance of its 1x1 placeholder map."""
  spatial_chance = pointing.chance_spatial_pointing(
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["label"],
      out["where"].shape[-2:],
      tolerance_px,
      segment_mask=out["segment_mask"],
  )
  temporal = pointing.chance_temporal_pointing(
      out["segment_mask"], out["event_start"], out["event_end"], out["label"]
  )
  center = pointing.center_prior_spatial_pointing(
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["label"],
      tolerance_px,
      segment_mask=out["segment_mask"],
  )
  nan = float("nan")
  return {
      "chance": {
          "pointing_spatial": spatial_chance.overall if spatial else nan,
          "pointing_spatial_class_mean": spatial_chance.class_mean if spatial else nan,
          "pointing_temporal": temporal.overall,
          "pointing_temporal_class_mean": temporal.class_mean,
      },
      "center_prior": {
          "pointing_spatial": center.overall if spatial else nan,
          "pointing_spatial_class_mean": center.class_mean if spatial else nan,
          "pointing_spatial_in_box": center.in_box if spatial else nan,
      },
  }
