"""The explanation evaluation of a trained model (`python -m stt.main ... --mode=explain`).

For every explainer in `config.explain.explainers`, on the test split (one jitted computation
per batch):
- maps for each video's ground-truth class, scored by the pointing games and localisation
  (TorchRay's protocol explains each annotated class), and maps for its predicted class, scored
  by the perturbation tests (Chefer et al.); a class-agnostic explainer (its record's
  `class_agnostic`, stt/explain/explainers.py) is computed once for both;
- pointing games (DESIGN §5), relevance mass and LVS cIoU against the boxes, the pointing
  games' chance levels on the same annotations (`explain/chance/...`) and the spatial pointing
  of the exact frame centre (`explain/center_prior/...`), the tables' last rows;
- perturbation tests, fractions 0..0.9: spatial and temporal, positive and negative,
  AUC = trapz(accuracy) x 100; in `config.explain.perturbation_mode` ('feature' or 'pixel'),
  the temporal test removing `config.explain.temporal_modality` ('both', 'audio', 'visual'),
  once per `config.explain.perturbation_baselines`: 'zero' (the removal value: keys
  `explain/<e>/<test>/<order>_auc`) and 'road' (ROAD's noisy linear imputation,
  stt/explain/road_imputation.py: `explain/<e>/road/<test>/<order>_auc`), each with its
  probability-drop AUC `..._probability_auc`;
- the ground-truth-class maps, `explain/maps/<explainer>.npz` in the format of
  `python -m stt.explain.score_maps --maps` (video_id [V], where [V,T,h,w], when [V,T],
  segment_mask [V,T], explained_class [V]: the class the maps explain, -1 for a class-agnostic
  explainer), so they can be rescored or compared with other models' maps.
- the per-video scores, `explain/videos.json` (stt/explain/video_scores.py): each test video's
  correctness and each explainer's pointing hits, for the suite's paired tests across models.
With `config.explain.dataset` (e.g. 'vggss', stt/explain/explained_split.py) the same is done on
that annotation set, into `explain_<set>/...` keys and `<workdir>/explain_<set>/`; its tables also
print the published rows of sound-localization methods, and the field's cIoU@0.5 / AUC
(`field_ciou`, `field_auc`, stt/explain/sound_source_benchmark.py) are columns for every set.

This file runs the explainers over a split (`explain_split`) and one annotation set
(`explain_annotation_set`); stt/explain/suite_scores.py scores them (bare metric names, and
`namespaced`, the one place that makes them `explain/<explainer>/...` or
`explain_<set>/<explainer>/...` keys) and stt/explain/suite_reports.py writes
`<workdir>/explain/tables.md`, `tables.csv`, `curves.png` (`curves.json` the same numbers), the
maps and `panels/<video_id>/<explainer>.png` for the first `config.explain.num_panels` videos.
"""

from __future__ import annotations

import functools

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp

from data_pipelines import catalogue
from stt import input_pipeline
from stt import models
from stt import sharding
from stt.explain import explainers as explainer_lib
from stt.explain import perturbation
from stt.explain import road_imputation
from stt.explain import suite_reports
from stt.explain import suite_scores
from stt.explain import video_scores


def _explain_batch(
    model,
    batch: dict,
    *,
    name: str,
    mode: str,
    temporal_modality: str,
    spatial: bool = True,
    temporal: bool = True,
    baselines: tuple = ("zero",),
    road_noise: float = road_imputation.DEFAULT_NOISE,
) -> dict:
  """One explainer on one batch: maps of the ground-truth class ("where" [B,T,h,w], "when"
  [B,T], "explained_class" [B], -1 when class-agnostic) and perturbation curves [B,P] of the
  maps of the predicted class, `<test>/<order>/correct|probability` for baseline 'zero', the
  same under `road/` for ROAD's imputation (spatial False: a model without frames or an
  explainer without a "where" on it; temporal False: without a "when" (AVEL's attention); those
  curves are NaN)."""
  inputs = input_pipeline.model_inputs(batch)
  explainer = explainer_lib.EXPLAINERS[name]
  label = batch["label"].astype(jnp.int32)
  maps = explainer(model, inputs, target_class=label)
  if explainer.class_agnostic:
    predicted_maps, explained_class = maps, jnp.full_like(label, -1)
  else:
    predicted_maps, explained_class = explainer(model, inputs, target_class=None), label
  out = {"where": maps["where"], "when": maps["when"], "explained_class": explained_class}
  for baseline in baselines:
    prefix = "" if baseline == "zero" else f"{baseline}/"
    for test, order in suite_scores.TESTS:
      key = f"{prefix}{test}/{order}"
      if not {"spatial": spatial, "temporal": temporal}[test]:
        nan = jnp.full((label.shape[0], len(perturbation.FRACTIONS)), jnp.nan)
        out[f"{key}/correct"] = out[f"{key}/probability"] = nan
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
          baseline=baseline,
          road_noise=road_noise,
      )
      out[f"{key}/correct"] = curves["correct"].T  # [B,P]
      out[f"{key}/probability"] = curves["probability"].T
  return out


def explain_split(model, source, mesh, config) -> dict[str, dict]:
  """{explainer: per-example outputs over `source` (valid rows, split order)} of `model`.

  The split is read once: each batch goes through every explainer's jitted step in turn.
  """
  steps = {
      name: nnx.jit(
          functools.partial(
              _explain_batch,
              name=name,
              mode=config.explain.perturbation_mode,
              temporal_modality=config.explain.temporal_modality,
              spatial=models.sees_frames(model)
              and "where" in explainer_lib.EXPLAINERS[name].dimensions(model),
              temporal="when" in explainer_lib.EXPLAINERS[name].dimensions(model),
              baselines=tuple(config.explain.get("perturbation_baselines", ("zero",))),
              road_noise=config.explain.get("road_noise", road_imputation.DEFAULT_NOISE),
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


def explain_annotation_set(
    model, source, mesh, config, workdir: epath.Path, class_names, annotation_set: str = ""
) -> dict:
  """Every configured explainer of `model` on `source`: the test split (annotation_set '') or an
  annotation set (e.g. 'vggss'); writes the reports to `<workdir>/explain/` or
  `<workdir>/explain_<set>/` (process 0) and returns the namespaced metrics
  (`suite_scores.namespaced`)."""
  outputs = explain_split(model, source, mesh, config)
  tolerance_px = config.explain.pointing_tolerance_px
  scores = suite_scores.baseline_scores(
      next(iter(outputs.values())), tolerance_px, spatial=models.sees_frames(model)
  )
  curves = {}
  field_options = {
      key: config.explain[key] for key in ("gt_geometry", "median_rule") if key in config.explain
  }
  record = catalogue.spec(annotation_set) if annotation_set else None  # its ground truth, labels
  if record is not None:
    field_options["ground_truth"] = record.ground_truth
  labelled = record is None or record.labelled
  # The boxes' set: the annotation set, or the dataset the run was trained on (its test split).
  boxes_record = record or catalogue.trained(config.dataset.name, config.dataset.get("input", ""))
  for name, out in outputs.items():
    scores[name], curves[name] = suite_scores.explainer_scores(
        name,
        out,
        tolerance_px,
        field_options,
        model=model,
        labelled=labelled,
        small_boxes=boxes_record is not None and boxes_record.small_boxes,
    )
  report_dir = workdir / (f"explain_{annotation_set}" if annotation_set else "explain")
  if jax.process_index() == 0:
    suite_reports.write_reports(report_dir, scores, curves, list(outputs), annotation_set)
    video_ids = suite_reports.video_ids_of(outputs, source)  # read once for both files
    suite_reports.write_maps(report_dir / "maps", outputs, source, video_ids)
    suite_reports.write_video_curves(report_dir / "video_curves", outputs, video_ids)
    video_scores.write(  # per-video scores, for the suite's paired tests
        report_dir, video_scores.records(outputs, scores, video_ids, tolerance_px, labelled)
    )
    suite_reports.write_panels(
        report_dir / "panels",
        outputs,
        source,  # no made-up class on the panels
        class_names if labelled else ["unlabelled"] * len(class_names),
        config.explain.num_panels,
    )
  return {
      key: value
      for row, row_scores in scores.items()
      for key, value in suite_scores.namespaced(
          row_scores, explainer=row, annotation_set=annotation_set
      ).items()
  }


def run(
    graphdef, state, source, mesh, config, workdir: epath.Path, class_names, annotation_set=None
) -> dict:
  """Evaluates every configured explainer on `source`, the test split ('') or the annotation set
  `annotation_set` (default `config.explain.dataset`); writes the reports (process 0); returns
  the metrics."""
  model, _ = nnx.merge(graphdef, state)
  if annotation_set is None:
    annotation_set = config.explain.get("dataset", "")
  return explain_annotation_set(model, source, mesh, config, workdir, class_names, annotation_set)
