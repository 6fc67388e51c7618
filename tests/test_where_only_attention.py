"""A model whose own attention has a "where" and no "when" (AVEL) goes through every test that
STAN's map goes through: the suite, its scores, the sanity checks and Table 4 (issue 29 §1)."""

from flax import nnx
import numpy as np
import pytest

from configs.common import get_common_config
from stt import models
from stt import reproduce_tables
from stt import sharding
from stt.explain import explainers
from stt.explain import sanity
from stt.explain import sanity_report
from stt.explain import suite
from stt.explain import suite_scores
from tests.test_compared_models import CA
from tests.test_compared_models import CV
from tests.test_compared_models import GRID
from tests.test_compared_models import C
from tests.test_compared_models import T
from tests.test_compared_models import _config

V = 4  # test videos
FRAME = 30  # 3x3 grid on 30 px frames


def _source() -> list[dict]:
  """V feature examples, a 10 px box at a random cell in every valid segment."""
  rng = np.random.default_rng(0)
  source = []
  for video in range(V):
    cells = rng.integers(0, GRID[0], size=(T, 2))
    boxes = np.concatenate([cells[:, ::-1] * 10, cells[:, ::-1] * 10 + 10], -1)[:, None]
    source.append(
        {
            "visual_features": rng.normal(size=(T,) + GRID + (CV,)).astype(np.float32),
            "audio_features": rng.normal(size=(T, CA)).astype(np.float32),
            "segment_mask": np.arange(T) < T - video % 2,
            "label": np.int32(video % C),
            "boxes": boxes.astype(np.float32),
            "box_mask": np.ones((T, 1), bool),
            "frame_size": np.array([FRAME, FRAME], np.int32),
            "event_start": np.int32(1),
            "event_end": np.int32(3),
        }
    )
  return source


def _run_config(explainer_names):
  config = get_common_config()
  config.model = _config("avel")
  config.eval_batch_size = 2
  config.explain.explainers = explainer_names
  config.sanity.explainers = explainer_names
  config.sanity.num_videos = V
  config.sanity.seed = 1
  return config


def test_attention_applies_to_a_model_with_a_where_only():
  avel = models.MODELS["avel"]
  record = explainers.EXPLAINERS["attention"]
  assert record.applies_to(avel) and record.dimensions(avel) == ("where",)
  assert record.dimensions(models.MODELS["stan"]) == ("where", "when")
  assert not record.applies_to(models.MODELS["late_fusion"])
  model = models.create_model(_config("avel"), C, rngs=nnx.Rngs(0))
  batch = {key: np.stack([e[key] for e in _source()]) for key in _source()[0]}
  inputs = {key: batch[key] for key in ("visual_features", "audio_features", "segment_mask")}
  maps = nnx.jit(explainers.attention)(model, inputs)
  alpha = np.asarray(model(inputs)["explanations"]["where"])
  mask = batch["segment_mask"]
  # "where" is AVEL's own alpha (normalised over the video); its missing "when" is zero.
  expected = alpha / np.abs(alpha).sum(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(np.asarray(maps["where"]), expected, rtol=1e-5, atol=1e-7)
  assert np.abs(np.asarray(maps["where"])[mask]).sum() > 0
  np.testing.assert_array_equal(np.asarray(maps["when"]), 0.0)


def test_suite_scores_avels_attention_spatially_and_leaves_its_temporal_scores_out():
  model = models.create_model(_config("avel"), C, rngs=nnx.Rngs(0))
  config = _run_config(("attention",))
  mesh = sharding.make_mesh(config)
  outputs = suite.explain_split(model, _source(), mesh, config)
  attention, _ = suite_scores.explainer_scores("attention", outputs["attention"], 15.0, model=model)
  on_stan, _ = suite_scores.explainer_scores(
      "attention", outputs["attention"], 15.0, model=models.MODELS["stan"]
  )
  for key in suite_scores.SPATIAL_METRICS:
    assert np.isfinite(attention[key]), key
  for key in suite_scores.TEMPORAL_METRICS:
    assert np.isnan(attention[key]), key  # no "when" of its own: "—", not a score of zeros
  # Scored as a model with a "when", the zero map would get a pointing score: no more.
  assert np.isfinite(on_stan["pointing_temporal"])
  # The temporal perturbation curves were not even computed for it.
  assert np.isnan(outputs["attention"]["temporal/positive/correct"]).all()
  assert np.isfinite(outputs["attention"]["spatial/positive/probability"]).all()


def test_sanity_checks_run_on_avels_attention_with_its_blocks_above_marked():
  model = models.create_model(_config("avel"), C, rngs=nnx.Rngs(0))
  config = _run_config(("attention", "gradient"))
  mesh = sharding.make_mesh(config)
  graphdef, state = nnx.split((model,))
  metrics = sanity.run(graphdef, state, _source(), mesh, config, C)
  # AVEL's "where" is made by its spatial attention: the classifier and the LSTMs are above it.
  assert metrics["sanity/above/attention/where"] == ["classifier", "lstm"]
  assert "sanity/above/attention/when" not in metrics
  assert "sanity/above/gradient/where" not in metrics
  assert metrics["sanity/cascading/lstm/attention/where_spearman"] == pytest.approx(1.0)
  assert metrics["sanity/cascading/lstm/attention/where_spearman_signed"] == pytest.approx(1.0)
  assert metrics["sanity/cascading/spatial_attention/attention/where_spearman"] < 0.9
  assert np.isfinite(metrics["sanity/trained/attention/pointing_spatial"])
  for key in ("when_spearman", "when_spearman_signed", "pointing_temporal"):
    assert np.isnan(metrics[f"sanity/cascading/lstm/attention/{key}"]), key
  assert np.isfinite(metrics["sanity/cascading/lstm/gradient/when_spearman"])
  # The Table 4 records: AVEL rows with explainer attention, those cells marked.
  rows = reproduce_tables.summary_rows({"avel": [metrics]})
  sanity_rows = {
      (tuple(r["randomised"] or ()), r["explainer"], r["metric"]): r
      for r in rows
      if r["table"] == "sanity"
  }
  marked = sanity_rows[(("classifier", "lstm"), "attention", "where_spearman")]
  assert marked["by_construction"] and marked["mean"] == pytest.approx(1.0)
  assert sanity_rows[(("lstm",), "attention", "where_spearman_signed")]["by_construction"]
  assert not sanity_rows[
      (("classifier", "lstm", "spatial_attention"), "attention", "where_spearman")
  ]["by_construction"]
  assert not sanity_rows[(("classifier",), "gradient", "where_spearman")]["by_construction"]
  assert (("classifier",), "attention", "when_spearman") not in sanity_rows  # NaN: no cell
  table = reproduce_tables.markdown(rows, "# t")
  line = next(x for x in table.splitlines() if x.startswith("| attention | where_spearman |"))
  assert line.count(sanity_report.CONSTRUCTED_MARK) == 3  # → classifier, → lstm, lstm alone
  assert any(x.startswith("| attention | where_spearman_signed |") for x in table.splitlines())
