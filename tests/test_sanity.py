"""The sanity checks (stt/explain/sanity.py): parameter blocks, re-initialisation, rank
correlation, what randomising each block does to each explainer, and --mode=sanity (slow)."""

import json
import shutil

from etils import epath
from flax import nnx
import jax
import numpy as np
import pytest
from scipy import stats

from configs import synthetic
from stt import evaluation_modes
from stt import models
from stt.explain import explainers
from stt.explain import sanity
from stt.explain import sanity_report
from tests.test_compared_models import C
from tests.test_compared_models import _config
from tests.test_compared_models import _inputs


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_declares_blocks_that_cover_its_parameters(name):
  model = models.create_model(_config(name), C, rngs=nnx.Rngs(0))
  blocks = sanity.parameter_blocks(model)
  assert blocks and blocks[0][0] == "classifier"  # the top block first
  steps = sanity.steps(blocks)
  assert [mode for mode, _, _ in steps].count("cascading") == len(blocks)
  owners = {path[0] for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  assert steps[len(blocks) - 1][2] >= owners  # the last cascade step randomises everything


def test_blocks_that_miss_or_repeat_a_parameter_are_an_error():
  model = models.create_model(_config("late_fusion"), C, rngs=nnx.Rngs(0))
  model.PARAMETER_BLOCKS = (("classifier", ("classifier_out",)),)
  with pytest.raises(ValueError, match=r"missing \['audio_norm'"):
    sanity.parameter_blocks(model)
  model.PARAMETER_BLOCKS = models.MODELS["late_fusion"].PARAMETER_BLOCKS + (
      ("again", ("classifier_out",)),
  )
  with pytest.raises(ValueError, match=r"repeated \['classifier_out'\]"):
    sanity.parameter_blocks(model)


def test_randomised_state_replaces_exactly_the_named_blocks():
  model = models.create_model(_config("stan"), C, rngs=nnx.Rngs(0))
  fresh = models.create_model(_config("stan"), C, rngs=nnx.Rngs(7))
  _, state = nnx.split(model)
  mixed = dict(
      nnx.to_flat_state(
          sanity.randomised_state(state, nnx.state(fresh, nnx.Param), {"transformer"})
      )
  )
  fresh_flat = dict(nnx.to_flat_state(nnx.state(fresh, nnx.Param)))
  changed = 0
  for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    expected = fresh_flat[path] if path[0] == "transformer" else variable
    np.testing.assert_array_equal(mixed[path].get_value(), expected.get_value())
    changed += path[0] == "transformer" and not np.array_equal(
        variable.get_value(), expected.get_value()
    )
  assert changed > 4 and len(mixed) == len(nnx.to_flat_state(state))


def test_spearman_matches_scipy_and_handles_constant_maps():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=50), rng.normal(size=50)
  assert sanity.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
  assert sanity.spearman(a, 3 * a + 1) == pytest.approx(1.0)
  assert sanity.spearman(a, -a) == pytest.approx(-1.0)
  assert sanity.spearman(np.zeros(5), np.zeros(5)) == 1.0
  assert sanity.spearman(a, np.zeros(50)) == 0.0
  maps = {"where": rng.normal(size=(2, 3, 2, 2)), "when": rng.normal(size=(2, 3))}
  mask = np.array([[True, True, False], [True, True, True]])
  other = {"where": maps["where"].copy(), "when": -maps["when"]}  # |when| equal: ρ = 1
  other["where"][0, 2] = 99.0  # a padded segment: ignored
  scores = sanity.map_correlations({**maps, "segment_mask": mask}, other)
  # The signed maps (Adebayo et al. report both): the flipped "when" ranks in reverse.
  assert scores == {
      "where_spearman": pytest.approx(1.0),
      "when_spearman": pytest.approx(1.0),
      "where_spearman_signed": pytest.approx(1.0),
      "when_spearman_signed": pytest.approx(-1.0),
  }


def test_map_correlations_match_scipy_per_video_with_ties_and_mixed_masks():
  rng = np.random.default_rng(1)
  # Coarse values: many ties, as attention maps that saturate have.
  maps = {"where": rng.integers(0, 3, (6, 4, 2, 2)), "when": rng.integers(0, 3, (6, 4))}
  other = {"where": rng.integers(0, 3, (6, 4, 2, 2)), "when": rng.integers(0, 3, (6, 4))}
  mask = np.array(
      [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]] + [[0] * 4]
  )
  mask = mask.astype(bool)
  maps["when"][4] = other["when"][4] = 7  # one valid segment: constant against constant
  expected = {"where_spearman": [], "when_spearman": []}
  for video in range(5):  # the last video has no valid segment: left out
    valid = mask[video]
    for key, metric in (("where", "where_spearman"), ("when", "when_spearman")):
      a, b = (np.abs(m[key][video][valid]).ravel() for m in (maps, other))
      if np.ptp(a) == 0 or np.ptp(b) == 0:
        expected[metric].append(float(np.ptp(a) == 0 and np.ptp(b) == 0))
      else:
        expected[metric].append(stats.spearmanr(a, b).statistic)
  scores = sanity.map_correlations({**maps, "segment_mask": mask}, other)
  assert scores["where_spearman"] == pytest.approx(np.mean(expected["where_spearman"]))
  assert scores["when_spearman"] == pytest.approx(np.mean(expected["when_spearman"]))


def _correlations(model, fresh, attributes, name):
  graphdef, state = nnx.split(model)
  variant = nnx.merge(
      graphdef, sanity.randomised_state(state, nnx.state(fresh, nnx.Param), attributes)
  )
  inputs = _inputs()
  explain = nnx.jit(explainers.EXPLAINERS[name])
  maps = [jax.device_get(explain(m, inputs)) for m in (model, variant)]
  mask = np.asarray(inputs["segment_mask"])
  return sanity.map_correlations({**maps[0], "segment_mask": mask}, maps[1])


def test_what_randomising_each_stan_block_does_to_attention_and_gradients():
  model = models.create_model(_config("stan"), C, rngs=nnx.Rngs(0))
  fresh = models.create_model(_config("stan"), C, rngs=nnx.Rngs(1))
  blocks = dict(sanity.parameter_blocks(model))
  above = set(blocks["classifier"]) | set(blocks["temporal_pool"]) | set(blocks["transformer"])
  # STAN's "where" (alpha) is computed below the transformer: randomising the blocks above it
  # leaves it exactly as it was; randomising the spatial attention changes it.
  assert _correlations(model, fresh, above, "attention")["where_spearman"] == pytest.approx(1.0)
  below = above | set(blocks["spatial_attention"])
  assert _correlations(model, fresh, below, "attention")["where_spearman"] < 0.9
  # The temporal pooling forms "when": it changes with that block.
  pool = set(blocks["temporal_pool"])
  assert _correlations(model, fresh, pool, "attention")["when_spearman"] < 0.9
  # Gradients read the classifier: randomising it alone changes them.
  gradient = _correlations(model, fresh, set(blocks["classifier"]), "gradient")
  assert gradient["where_spearman"] < 0.95 and gradient["when_spearman"] < 0.95


def test_blocks_above_each_map_are_those_that_cannot_change_it():
  # Issue 29 §5: the cells randomising only these blocks are 1 by construction (marked).
  stan = models.create_model(_config("stan"), C, rngs=nnx.Rngs(0))
  avel = models.create_model(_config("avel"), C, rngs=nnx.Rngs(0))
  assert sanity.blocks_above_maps(stan, "attention") == {
      "where": ["classifier", "temporal_pool", "transformer"],
      "when": ["classifier"],
  }
  assert sanity.blocks_above_maps(stan, "rollout") == {
      "where": ["classifier"],
      "when": ["classifier"],
  }
  assert sanity.blocks_above_maps(avel, "attention") == {"where": ["classifier", "lstm"]}
  assert sanity.blocks_above_maps(stan, "gradient") == {}
  blocks = [name for name, _ in sanity.parameter_blocks(stan)]
  above = ["classifier", "temporal_pool", "transformer"]
  assert sanity_report.by_construction("cascading", "transformer", blocks, above)
  assert not sanity_report.by_construction("cascading", "spatial_attention", blocks, above)
  assert sanity_report.by_construction("independent", "temporal_pool", blocks, above)
  assert not sanity_report.by_construction("independent", "embedding", blocks, above)


def test_applicable_explainers_skip_the_model_independent_and_missing_maps():
  names = ("attention", "rollout", "gradient", "random", "center")
  stan = models.create_model(_config("stan"), C, rngs=nnx.Rngs(0))
  late = models.create_model(_config("late_fusion"), C, rngs=nnx.Rngs(0))
  assert sanity.applicable_explainers(stan, names) == ["attention", "rollout", "gradient"]
  assert sanity.applicable_explainers(late, names) == ["gradient"]
  avel = models.create_model(_config("avel"), C, rngs=nnx.Rngs(0))
  assert sanity.applicable_explainers(avel, names) == ["attention", "gradient"]


def test_report_reads_the_stop_from_the_cascade(tmp_path):
  metrics = {
      "sanity/blocks": ["classifier", "transformer", "embedding"],
      "sanity/trained/accuracy": 0.9,
      "sanity/cascading/classifier/gradient/where_spearman": 0.9,
      "sanity/cascading/transformer/gradient/where_spearman": 0.6,
      "sanity/cascading/embedding/gradient/where_spearman": 0.1,
      "sanity/cascading/classifier/attention/where_spearman": 1.0,
      "sanity/cascading/transformer/attention/where_spearman": 1.0,
      "sanity/cascading/embedding/attention/where_spearman": 0.7,
      "sanity/independent/embedding/gradient/where_spearman": 0.3,
  }
  blocks, values = sanity_report.parse(metrics)
  assert blocks == ["classifier", "transformer", "embedding"]
  assert sanity_report.first_mismatch(blocks, values, "gradient", "where_spearman") == "embedding"
  assert sanity_report.first_mismatch(blocks, values, "attention", "where_spearman") == "none"
  assert sanity_report.first_mismatch(blocks, values, "gradient", "when_spearman") == "—"
  sanity_report.write(epath.Path(tmp_path), metrics)
  table = (tmp_path / "sanity.md").read_text()
  assert "| gradient | where_spearman | 1 | 0.900 | 0.600 | 0.100 | 0.300 | embedding |" in table
  assert (tmp_path / "cascading.png").stat().st_size > 1000


@pytest.mark.slow
def test_mode_sanity_on_the_smoke_run(tmp_path, smoke_run):
  """--mode=sanity's in-process entry on a trained run: its accuracy is the run's test accuracy,
  and the attention "where" keeps ρ = 1 until the spatial attention is randomised."""
  data_dir, workdir = smoke_run[0], epath.Path(tmp_path) / "run"
  shutil.copytree(smoke_run[1], workdir)
  config = synthetic.get_config("smoke")
  config.data_dir = str(data_dir)
  config.sanity.num_videos = 0
  results = evaluation_modes.sanity_best(config, str(workdir))
  assert results["sanity/trained/accuracy"] == pytest.approx(results["test/accuracy"])
  assert results["sanity/blocks"][0] == "classifier" and results["sanity/blocks"][-1] == "backbones"
  for block in ("classifier", "temporal_pool", "transformer"):
    assert results[f"sanity/cascading/{block}/attention/where_spearman"] == pytest.approx(1.0)
  assert results["sanity/cascading/spatial_attention/attention/where_spearman"] < 0.9
  assert results["sanity/cascading/classifier/gradcam/where_spearman"] < 0.9
  assert np.isnan(results["sanity/cascading/classifier/rollout/where_spearman"])  # not applicable
  assert results["sanity/above/attention/where"] == ["classifier", "temporal_pool", "transformer"]
  saved = json.loads((workdir / "results.json").read_text())
  assert saved["test/accuracy"] == results["test/accuracy"]  # the training results are kept
  assert (workdir / "sanity" / "sanity.md").exists()
