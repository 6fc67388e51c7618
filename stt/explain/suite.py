"""The explanation evaluation of a trained model (`python -m stt.main ... --mode=explain`).

For every explainer in `config.explain.explainers`, on the test split (one jitted computation
per batch):
- maps for each video's ground-truth class, scored by the pointing games and localisation
  (TorchRay's protocol explains each annotated class), and maps for its predicted class, scored
  by the perturbation tests (Chefer et al.); a class-agnostic explainer
  (`explainers.CLASS_AGNOSTIC`) is computed once for both;
- pointing games (DESIGN §5), relevance mass and LVS cIoU against the boxes, the pointing
  games' chance levels on the same annotations (`explain/chance/...`) and the spatial pointing
  of the exact frame centre (`explain/center_prior/...`), the tables' last rows;
- perturbation tests, fractions 0..0.9: spatial and temporal, positive and negative,
  AUC = trapz(accuracy) x 100; in `config.explain.perturbation_mode` ('feature' or 'pixel'),
  the temporal test removing `config.explain.temporal_modality` ('both', 'audio', 'visual');
- the ground-truth-class maps, `explain/maps/<explainer>.npz` in the format of
  `python -m stt.explain.evaluate --maps` (video_id [V], where [V,T,h,w], when [V,T],
  segment_mask [V,T], explained_class [V]: the class the maps explain, -1 for a class-agnostic
  explainer), so they can be rescored or compared with other models' maps.
With `config.explain.dataset` (e.g. 'vggss', stt/explain/explain_sets.py) the same is done on
that annotation set, into `explain_<set>/...` keys and `<workdir>/explain_<set>/`; its tables also
print the published rows of sound-localization methods, and the field's cIoU@0.5 / AUC
(`field_ciou`, `field_auc`, stt/explain/sound_localization.py) are columns for every set.
Writes `explain/<explainer>/...` keys into the returned dict, and `<workdir>/explain/tables.md`,
`tables.csv`, `curves.png` (accuracy vs fraction for each test; `curves.json` the same numbers) and
`panels/<video_id>/<explainer>.png` (frames with "where", "when" over the spectrogram) for the
first `config.explain.num_panels` test videos.
"""

from __future__ import annotations

from collections.abc import Collection
import csv
import functools
import io
import json

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from stt import input_pipeline
from stt import models
from stt import sharding
from stt.explain import explain_sets
from stt.explain import explainers as explainer_lib
from stt.explain import localization
from stt.explain import panels
from stt.explain import perturbation
from stt.explain import pointing
from stt.explain import sound_localization
from stt.explain import viewer_data

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

TESTS = (
    ("spatial", "positive"),
    ("spatial", "negative"),
    ("temporal", "positive"),
    ("temporal", "negative"),
)
# The scores of "where" (NaN where explainers.spatial_is_attention, "—" in the tables).
SPATIAL_METRICS = (
    "pointing_spatial",
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


def _explain_batch(
    model, batch: dict, *, name: str, mode: str, temporal_modality: str, spatial: bool = True
) -> dict:
  """One explainer on one batch: maps of the ground-truth class ("where" [B,T,h,w], "when"
  [B,T], "explained_class" [B], -1 when class-agnostic) and perturbation curves [B,P] of the
  maps of the predicted class (spatial False: a model without frames; its spatial curves are
  NaN)."""
  inputs = input_pipeline.model_inputs(batch)
  explainer = explainer_lib.EXPLAINERS[name]
  label = batch["label"].astype(jnp.int32)
  maps = explainer(model, inputs, target_class=label)
  if name in explainer_lib.CLASS_AGNOSTIC:
    predicted_maps, explained_class = maps, jnp.full_like(label, -1)
  else:
    predicted_maps, explained_class = explainer(model, inputs, target_class=None), label
  out = {"where": maps["where"], "when": maps["when"], "explained_class": explained_class}
  for test, order in TESTS:
    if test == "spatial" and not spatial:
      nan = jnp.full((label.shape[0], len(perturbation.FRACTIONS)), jnp.nan)
      out[f"{test}/{order}/correct"] = out[f"{test}/{order}/probability"] = nan
      continue
    curves = perturbation.curves(
        model,
        inputs,
        batch["label"],
        predicted_maps["where"],
        predicted_maps["when"],
        test=test,
        order=order,
        modality=temporal_modality,
        mode=mode,
    )
    out[f"{test}/{order}/correct"] = curves["correct"].T  # [B,P]
    out[f"{test}/{order}/probability"] = curves["probability"].T
  return out


def explain_split(graphdef, state, source, mesh, config) -> dict[str, dict]:
  """{explainer: per-example outputs over `source` (valid rows, split order)}.

  The split is read once: each batch goes through every explainer's jitted step in turn.
  """
  model, _ = nnx.merge(graphdef, state)
  steps = {
      name: nnx.jit(
          functools.partial(
              _explain_batch,
              name=name,
              mode=config.explain.perturbation_mode,
              temporal_modality=config.explain.temporal_modality,
              spatial=models.sees_frames(config.model),
          )
      )
      for name in config.explain.explainers
  }

  def every_explainer(batch: dict) -> dict:
    return {
        f"{name}:{key}": value  # explainer names hold no ":"
        for name, step in steps.items()
        for key, value in step(model, batch).items()
    }

  gathered = input_pipeline.gather_split(
      every_explainer,
      source,
      global_batch_size=config.eval_batch_size,
      batch_sharding=sharding.batch_sharding(mesh),
  )
  annotations = {key: gathered[key] for key in input_pipeline.ANNOTATION_KEYS}
  return {
      name: {
          **annotations,
          **{
              key.removeprefix(f"{name}:"): value
              for key, value in gathered.items()
              if key.startswith(f"{name}:")
          },
      }
      for name in steps
  }


def metrics_of(
    name: str,
    out: dict,
    tolerance_px: float,
    field_options: dict | None = None,
    labelled: bool = True,
    model_explanations: Collection[str] = (),
    spatial: bool = True,
) -> tuple[dict, dict]:
  """(flat `explain/<name>/...` metrics, accuracy curves {test/order: [P]}); field_options:
  gt_geometry / median_rule / ground_truth of sound_localization.box_field_scores; labelled
  False (a set without classes): the perturbation scores, accuracies against the true class,
  are NaN; model_explanations: the explained model's `EXPLANATIONS`, whose structure decides
  whether the spatial scores are attention's by construction (then NaN,
  `explainers.spatial_is_attention`)."""
  metrics = pointing.pointing_metrics(out, tolerance_px, explainer=name)
  scores = localization.localization_scores(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      segment_mask=out["segment_mask"],
  )
  prefix = f"explain/{name}"
  metrics[f"{prefix}/relevance_mass"] = float(scores.relevance_mass)
  # LVS's `ciou` (share of trials with cIoU >= 0.5) is 0 by construction when objects cover
  # well under half the frame (the map is binarised at its median); the mean and AUC are not.
  metrics[f"{prefix}/ciou"] = float(scores.ciou)
  metrics[f"{prefix}/ciou_mean"] = float(scores.ciou_mean)
  metrics[f"{prefix}/ciou_auc"] = float(scores.ciou_auc)
  # The sound-localization field's protocol (224 px, min-max, whole-frame boxes): cIoU@0.5, AUC.
  field = sound_localization.box_field_scores(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["segment_mask"],
      **(field_options or {}),
  )
  metrics[f"{prefix}/field_ciou"] = field.ciou
  metrics[f"{prefix}/field_auc"] = field.auc
  curves = {}
  for test, order in TESTS:
    summary = perturbation.summarise(
        out[f"{test}/{order}/correct"].T, out[f"{test}/{order}/probability"].T
    )
    if not labelled:
      summary = {
          "auc": float("nan"),
          "probability_auc": float("nan"),
          "accuracy": np.full(len(perturbation.FRACTIONS), np.nan),
      }
    metrics[f"{prefix}/{test}/{order}_auc"] = summary["auc"]
    metrics[f"{prefix}/{test}/{order}_probability_auc"] = summary["probability_auc"]
    curves[f"{test}/{order}"] = summary["accuracy"]
  # Not applicable: attention's by construction, or a model that does not see the frames.
  if not spatial or explainer_lib.spatial_is_attention(name, model_explanations):
    for key in SPATIAL_METRICS:
      metrics[f"{prefix}/{key}"] = float("nan")
    for order in ("positive", "negative"):
      curves[f"spatial/{order}"] = [float("nan")] * len(curves[f"spatial/{order}"])
  return metrics, curves


def chance_metrics(out: dict, tolerance_px: float) -> dict:
  """`explain/chance/pointing_*`: the pointing games' chance levels on these annotations (a
  uniformly random cell, a uniformly random valid segment), and `explain/center_prior/
  pointing_spatial*`: pointing at the exact frame centre, to read every explainer against."""
  spatial = pointing.chance_spatial_pointing(
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
  return {
      "explain/chance/pointing_spatial": spatial.overall,
      "explain/chance/pointing_spatial_class_mean": spatial.class_mean,
      "explain/chance/pointing_temporal": temporal.overall,
      "explain/chance/pointing_temporal_class_mean": temporal.class_mean,
      "explain/center_prior/pointing_spatial": center.overall,
      "explain/center_prior/pointing_spatial_class_mean": center.class_mean,
  }


def write_reports(
    directory: epath.Path,
    metrics: dict,
    curves: dict[str, dict],
    names,
    published_dataset: str = "",
):
  """tables.md, tables.csv and curves.png in `directory`; the table ends with the chance and
  centre-prior rows, then, for an annotation set (VGG-SS), the published rows of
  sound-localization methods."""
  directory.mkdir(parents=True, exist_ok=True)
  rows = [
      [name] + [metrics.get(f"explain/{name}/{column}") for column in TABLE_COLUMNS]
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
  published = sound_localization.published_rows(published_dataset)
  if published:
    note += (
        "\nPublished on this set, field_ciou / field_auc in % (these methods are trained "
        "to localize sounds; STAN's maps explain a classifier's decision):\n\n"
        "| method | field_ciou | field_auc | source |\n|---|---|---|---|\n"
        + "".join(
            f"| {method} | {ciou:.2f} | {'—' if auc is None else f'{auc:.2f}'} | " f"{source} |\n"
            for method, ciou, auc, source in published
        )
    )
  if published_dataset in explain_sets.UNLABELLED_SETS:
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

  figure, axes = plt.subplots(1, len(TESTS), figsize=(4 * len(TESTS), 3.2), sharey=True)
  for axis, (test, order) in zip(axes, TESTS):
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


def write_maps(directory: epath.Path, outputs: dict[str, dict], source) -> None:
  """`<directory>/<explainer>.npz`: the maps in stt.explain.evaluate's --maps format.

  outputs: per-example arrays in split order, so row i is `source[i]`.
  """
  directory.mkdir(parents=True, exist_ok=True)
  count = len(next(iter(outputs.values()))["where"])
  video_ids = [source[i]["video_id"] for i in range(count)]
  video_ids = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in video_ids])
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


def run(graphdef, state, source, mesh, config, workdir: epath.Path, class_names) -> dict:
  """Evaluates every configured explainer; writes the reports (process 0); returns metrics."""
  outputs = explain_split(graphdef, state, source, mesh, config)
  metrics = chance_metrics(next(iter(outputs.values())), config.explain.pointing_tolerance_px)
  curves = {}
  annotation_set = config.explain.get("dataset", "")
  field_options = {
      key: config.explain[key] for key in ("gt_geometry", "median_rule") if key in config.explain
  }
  if annotation_set in sound_localization.SET_GROUND_TRUTH:
    field_options["ground_truth"] = sound_localization.SET_GROUND_TRUTH[annotation_set]
  labelled = annotation_set not in explain_sets.UNLABELLED_SETS
  model_explanations = models.explanations_of(config.model)
  for name, out in outputs.items():
    metrics_one, curves[name] = metrics_of(
        name,
        out,
        config.explain.pointing_tolerance_px,
        field_options,
        labelled=labelled,
        model_explanations=model_explanations,
        spatial=models.sees_frames(config.model),
    )
    metrics.update(metrics_one)
  # An annotation set (explain.dataset, e.g. 'vggss') reports to explain_<set>/ and keys
  # explain_<set>/..., beside the run's own test split in explain/.
  report_dir = workdir / (f"explain_{annotation_set}" if annotation_set else "explain")
  if jax.process_index() == 0:
    write_reports(report_dir, metrics, curves, list(outputs), annotation_set)
    write_maps(report_dir / "maps", outputs, source)
    viewer_data.save_video_curves(report_dir / "video_curves", outputs, source)  # the viewer's
    write_panels(
        report_dir / "panels",
        outputs,
        source,  # no made-up class on the panels
        class_names if labelled else ["unlabelled"] * len(class_names),
        config.explain.num_panels,
    )
  if annotation_set:
    metrics = {
        key.replace("explain/", f"explain_{annotation_set}/", 1): value
        for key, value in metrics.items()
    }
  return metrics
