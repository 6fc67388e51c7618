"""Adding an explainer is its function plus one record in `explainers.EXPLAINERS` (docs/design.md
§6): a toy explainer, added that way and nowhere else, runs through the explanation suite, its
scores, its tables and the sanity checks like the built-in ones."""

import functools
import json
import shutil

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from stt import evaluation_modes
from stt import models
from stt.explain import explainers
from stt.explain import pointing
from stt.explain import sanity
from stt.explain import suite
from stt.explain import suite_scores
from tests.test_explainers import MASK
from tests.test_explainers import make_inputs
from tests.test_explainers import make_model


def feature_norm(model, inputs: dict, target_class=None) -> dict:
  """The toy: where[t,i,j] = |visual_map[t,i,j,:]|_2, when[t] = |audio_vec[t,:]|_2, normalised
  as every explainer's maps; class-agnostic."""
  del target_class
  visual_map, audio_vec = model.encode(inputs, train=False)
  return explainers.normalise(
      jnp.linalg.norm(visual_map.astype(jnp.float32), axis=-1),
      jnp.linalg.norm(audio_vec.astype(jnp.float32), axis=-1),
      explainers.segment_mask_of(inputs),
  )


# Its one record: everything the suite, the sanity checks and the tables need to know of it.
FEATURE_NORM = explainers.Explainer(feature_norm, class_agnostic=True)


@pytest.fixture
def with_toy(monkeypatch):
  """The toy's record added to the table, as its line in explainers.py would add it."""
  monkeypatch.setitem(explainers.EXPLAINERS, "feature_norm", FEATURE_NORM)


def test_the_toy_runs_through_the_suite_step_and_scores(with_toy, monkeypatch):
  del with_toy
  monkeypatch.setattr(suite_scores, "TESTS", (("temporal", "positive"),))  # one compilation
  model, inputs = make_model(), make_inputs()
  label = jnp.asarray([1, 3])
  step = nnx.jit(
      functools.partial(
          suite._explain_batch,  # pylint: disable=protected-access
          name="feature_norm",
          mode="feature",
          temporal_modality="both",
      )
  )
  out = jax.tree.map(np.asarray, step(model, {**inputs, "label": label}))
  # Its maps are the hand-computed norms, normalised over the valid segments.
  visual_map, audio_vec = (np.asarray(x, np.float64) for x in model.encode(inputs))
  where = np.linalg.norm(visual_map, axis=-1) * MASK[:, :, None, None]
  when = np.linalg.norm(audio_vec, axis=-1) * MASK
  np.testing.assert_allclose(
      out["where"], where / where.sum(axis=(1, 2, 3), keepdims=True), rtol=1e-5, atol=1e-8
  )
  np.testing.assert_allclose(out["when"], when / when.sum(1, keepdims=True), rtol=1e-5)
  np.testing.assert_array_equal(out["explained_class"], [-1, -1])  # class-agnostic, as recorded
  # Scored like any explainer: its temporal pointing is the pointing game's on its own maps.
  event_start, event_end = np.array([0, 2]), np.array([1, 4])
  gathered = {
      **out,
      "label": np.asarray(label),
      "segment_mask": MASK,
      "event_start": event_start,
      "event_end": event_end,
      "boxes": np.tile(np.array([0, 0, 10, 10], np.float32), (2, 4, 1, 1)),
      "box_mask": np.ones((2, 4, 1), bool),
      "frame_size": np.full((2, 2), 30),
  }
  scores, _ = suite_scores.explainer_scores("feature_norm", gathered, 15.0, model=model)
  expected = pointing.temporal_pointing(
      when, MASK, event_start, event_end, np.asarray(label)
  ).overall
  assert scores["pointing_temporal"] == expected
  assert 0.0 <= scores["pointing_spatial"] <= 1.0
  # It reads the model, needs nothing of it: the sanity checks take it on every model.
  for name, model_class in models.MODELS.items():
    assert FEATURE_NORM.applies_to(model_class), name
  assert sanity.applicable_explainers(model, ("feature_norm", "random")) == ["feature_norm"]


def test_the_toy_in_the_explain_and_sanity_modes_of_a_trained_run(with_toy, smoke_run, tmp_path):
  """--mode=explain and --mode=sanity, in process, on the smoke run with the toy configured."""
  del with_toy
  data_dir, workdir = smoke_run[0], epath.Path(tmp_path) / "run"
  shutil.copytree(smoke_run[1], workdir)
  trained = json.loads((workdir / "results.json").read_text())
  config = synthetic.get_config("smoke")
  config.data_dir = str(data_dir)
  config.explain.explainers = ("attention", "feature_norm")
  config.explain.num_panels = 1
  config.sanity.explainers = ("feature_norm",)
  results = evaluation_modes.explain_best(config, str(workdir))
  # The toy's row: every score the built-in explainers have, under its name.
  toy_keys = {k.removeprefix("explain/feature_norm/") for k in results if "/feature_norm/" in k}
  attention_keys = {  # less the per-modality "when" of training's evaluation of its own maps
      k.removeprefix("explain/attention/")
      for k in results
      if k.startswith("explain/attention/") and "_audio" not in k and "_visual" not in k
  }
  assert toy_keys == attention_keys and len(toy_keys) == 20
  assert 0.0 <= results["explain/feature_norm/pointing_spatial"] <= 1.0
  assert 0.0 <= results["explain/feature_norm/temporal/positive_auc"] <= 90.0
  # The other explainers' numbers do not move when it is added: attention's pointing is the one
  # training's final evaluation of the model's own maps reported.
  for key in ("pointing_spatial", "pointing_temporal"):
    assert results[f"explain/attention/{key}"] == pytest.approx(trained[f"explain/attention/{key}"])
  explain_dir = workdir / "explain"
  assert "| feature_norm |" in (explain_dir / "tables.md").read_text()
  with np.load(explain_dir / "maps" / "feature_norm.npz") as maps:
    assert (maps["explained_class"] == -1).all()
  assert list((explain_dir / "panels").glob("*/feature_norm.png"))
  sanity_results = evaluation_modes.sanity_best(config, str(workdir))
  blocks = sanity_results["sanity/blocks"]
  first = sanity_results[f"sanity/cascading/{blocks[0]}/feature_norm/where_spearman"]
  last = sanity_results[f"sanity/cascading/{blocks[-1]}/feature_norm/where_spearman"]
  # The features come from the backbones only: randomising the classifier leaves its maps.
  assert first == pytest.approx(1.0) and last < 0.99
