"""Every model in MODELS follows the model interface (stt/models/__init__.py) and learns."""

from flax import nnx
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import synthetic
from configs.common import default_model_config
from stt import config_validation
from stt import models
from stt.explain import explainers
from stt.explain import perturbation
from stt.explain import suite
from stt.models import two_stream

B, T, C, GRID, CV, CA = 4, 5, 3, (3, 3), 6, 5
N = GRID[0] * GRID[1]


def _config(name):
  config = default_model_config()
  config.update(
      name=name,
      visual_backbone="features",
      audio_backbone="features",
      visual_feature_dim=CV,
      audio_feature_dim=CA,
      grid_size=GRID,
      width=8,
      num_heads=2,
      num_segments=T,
      segment_head=True,
      dropout=0.0,
  )
  return config


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  return {
      "visual_features": jnp.asarray(rng.normal(size=(B, T) + GRID + (CV,)), jnp.float32),
      "audio_features": jnp.asarray(rng.normal(size=(B, T, CA)), jnp.float32),
      "segment_mask": jnp.asarray(np.arange(T)[None] < np.array([[5], [5], [3], [2]])),
  }


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_outputs_follow_the_interface(name):
  model = models.create_model(_config(name), C, rngs=nnx.Rngs(0))
  out = model(_inputs())
  assert out["logits"].shape == (B, C) and out["logits"].dtype == jnp.float32
  assert out["segment_logits"].shape == (B, T, C + 1)
  assert set(out["explanations"]) == set(model.EXPLANATIONS)
  shapes = {"where": (B, T) + GRID, "when": (B, T), "when_audio": (B, T), "when_visual": (B, T)}
  if name == "joint_transformer":  # 1 layer, 2 heads; 2 CLS, T audio, T*N cells, 4 bottlenecks
    shapes["token_attention"] = (1, B, 2, 2 + T + T * N + 4, 2 + T + T * N + 4)
  for key, shape in shapes.items():
    if key in out["explanations"]:
      assert out["explanations"][key].shape == shape


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_padded_segments_do_not_change_the_prediction(name):
  model = models.create_model(_config(name), C, rngs=nnx.Rngs(0))
  inputs, noisy = _inputs(0), _inputs(1)
  padded = ~inputs["segment_mask"]
  changed = {
      **inputs,
      "visual_features": jnp.where(
          padded[:, :, None, None, None], noisy["visual_features"], inputs["visual_features"]
      ),
      "audio_features": jnp.where(
          padded[:, :, None], noisy["audio_features"], inputs["audio_features"]
      ),
  }
  np.testing.assert_allclose(model(changed)["logits"], model(inputs)["logits"], atol=1e-5)
  assert not np.allclose(model(noisy)["logits"], model(inputs)["logits"], atol=1e-3)


@pytest.mark.parametrize(
    "name, ignored", [("audio_only", "visual_features"), ("visual_only", "audio_features")]
)
def test_a_single_modality_model_ignores_the_other(name, ignored):
  model = models.create_model(_config(name), C, rngs=nnx.Rngs(0))
  inputs = _inputs(0)
  other = {**inputs, ignored: _inputs(1)[ignored]}
  np.testing.assert_array_equal(model(other)["logits"], model(inputs)["logits"])
  kept = "audio_features" if ignored == "visual_features" else "visual_features"
  assert not np.allclose(
      model({**inputs, kept: _inputs(1)[kept]})["logits"], model(inputs)["logits"], atol=1e-3
  )


def test_avel_where_is_a_distribution_over_cells_on_valid_segments():
  model = models.create_model(_config("avel"), C, rngs=nnx.Rngs(0))
  inputs = _inputs()
  where = np.asarray(model(inputs)["explanations"]["where"]).reshape(B, T, -1)
  valid = np.asarray(inputs["segment_mask"])
  np.testing.assert_allclose(where.sum(-1), valid.astype(np.float32), atol=1e-5)
  assert (where >= 0).all() and where[valid].std(axis=-1).min() > 0  # not uniform


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_each_model_fits_a_fixed_batch(name):
  model = models.create_model(_config(name), C, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  inputs, labels = _inputs(), jnp.asarray([0, 1, 2, 1])

  @nnx.jit
  def step(model, optimizer):
    def loss_fn(model):
      logits = model(inputs, train=True)["logits"]
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  losses = [float(step(model, optimizer)) for _ in range(40)]
  assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name", ["late_fusion", "avel", "joint_transformer"])
def test_post_hoc_explainers_and_perturbation_tests_run_on_the_interface(name):
  model = models.create_model(_config(name), C, rngs=nnx.Rngs(0))
  inputs = _inputs()
  maps = explainers.gradient(model, inputs)
  assert maps["where"].shape == (B, T) + GRID and maps["when"].shape == (B, T)
  assert float(jnp.abs(maps["where"]).sum()) > 0
  labels = jnp.argmax(model(inputs)["logits"], -1)
  curves = perturbation.perturbation_curves(
      model, inputs, labels, maps["where"], maps["when"], test="temporal", order="positive"
  )
  assert curves["correct"].shape == (len(perturbation.FRACTIONS), B)
  assert bool(curves["correct"][0].all())  # nothing removed: every prediction is its own label


def test_weak_localization_needs_a_model_with_a_when():
  config = synthetic.get_config("smoke")
  config.task, config.loss.segment_weight = "weak", 0.0
  config_validation.validate(config, device_count=1)
  config.model.name = "late_fusion"
  with pytest.raises(config_validation.ConfigError, match="model.name='late_fusion' has none"):
    config_validation.validate(config, device_count=1)
  config.model.name = "mbt"
  with pytest.raises(config_validation.ConfigError, match=r"model.name='mbt' is not one of"):
    config_validation.validate(config, device_count=1)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_each_model_runs_its_backbones_on_raw_frames_and_log_mel(name):
  config = _config(name)
  config.update(visual_backbone="resnet_tiny", audio_backbone="vggish_tiny", grid_size=(2, 2))
  model = models.create_model(config, C, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  inputs = {
      "frames": jnp.asarray(rng.integers(0, 255, (2, T, 1, 16, 16, 3)), jnp.uint8),
      "log_mel": jnp.asarray(rng.normal(size=(2, T, 96, 64)), jnp.float32),
      "segment_mask": jnp.ones((2, T), bool),
  }
  out = nnx.jit(lambda model, inputs: model(inputs, train=True))(model, inputs)
  assert out["logits"].shape == (2, C) and bool(jnp.isfinite(out["logits"]).all())


def test_joint_transformer_is_a_valid_model_name():
  config = synthetic.get_config("smoke")
  config.model.name = "joint_transformer"
  config_validation.validate(config, device_count=1)


def test_joint_transformer_token_pool_is_the_model_on_pooled_cells():
  """token_pool=2 on a 4x4 grid is the unpooled model on the 2x2 means of the cells (same
  initial weights), and its rollout spreads each token's relevance over its 2x2 cells."""
  inputs = _inputs()
  pooled_config = _config("joint_transformer")
  pooled_config.update(num_layers=2, grid_size=(4, 4), token_pool=2)
  pooled = models.create_model(pooled_config, C, rngs=nnx.Rngs(0))
  reference_config = _config("joint_transformer")
  reference_config.update(num_layers=2, grid_size=(2, 2))
  reference = models.create_model(reference_config, C, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(2)
  fine = jnp.asarray(rng.normal(size=(B, T, 4, 4, CV)), jnp.float32)
  coarse = fine.reshape(B, T, 2, 2, 2, 2, CV).mean(axis=(3, 5))
  fine_inputs = dict(inputs, visual_features=fine)
  coarse_inputs = dict(inputs, visual_features=coarse)
  assert pooled.token_grid == (2, 2)
  out, expected = pooled(fine_inputs), reference(coarse_inputs)
  s = 2 + T + T * 4 + 4
  assert out["explanations"]["token_attention"].shape == (2, B, 2, s, s)
  np.testing.assert_allclose(out["logits"], expected["logits"], rtol=1e-5, atol=1e-6)
  maps = nnx.jit(explainers.rollout)(pooled, fine_inputs)
  reference_maps = nnx.jit(explainers.rollout)(reference, coarse_inputs)
  assert maps["where"].shape == (B, T, 4, 4)
  spread = np.repeat(np.repeat(np.asarray(reference_maps["where"]), 2, 2), 2, 3) / 4
  np.testing.assert_allclose(maps["where"], spread, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(maps["when"], reference_maps["when"], rtol=1e-4, atol=1e-7)
  # Perturbation in feature mode removes cells of the map, inside the pooled tokens: the
  # pooled model's curves are the reference model's on the pooled perturbed map.
  labels = jnp.asarray([0, 1, 2, 0])
  where = jnp.asarray(rng.random((B, T, 4, 4)), jnp.float32)
  when = jnp.asarray(rng.random((B, T)), jnp.float32)
  for test in ("spatial", "temporal"):
    curves = perturbation.perturbation_curves(pooled, fine_inputs, labels, where, when, test=test)
    assert curves["correct"].shape == (len(perturbation.FRACTIONS), B)
    clean_correct = np.asarray(expected["logits"]).argmax(-1) == np.asarray(labels)
    np.testing.assert_array_equal(curves["correct"][0], clean_correct)
  removed = perturbation.perturbation_curves(
      pooled, fine_inputs, labels, where, when, test="spatial", fractions=(0.5,)
  )["probability"]
  kept = perturbation.perturbation_curves(
      pooled, fine_inputs, labels, where, when, test="spatial", fractions=(0.0,)
  )["probability"]
  assert float(jnp.abs(removed - kept).max()) > 1e-4  # half the cells removed changes the output
  pooled_config.token_pool = 3
  with pytest.raises(ValueError, match="token_pool must be >= 1 and divide the grid"):
    models.create_model(pooled_config, C, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "name, pool", [(name, 1) for name in sorted(models.MODELS)] + [("joint_transformer", 2)]
)
def test_feature_perturbation_equals_the_reference_loop_on_every_model(name, pool):
  """Feature-mode curves (token swap where `tokens_are_cells`, else the perturbed features
  embedded again) equal the per-video loop through `model.head` on every model."""
  config = _config(name)
  if pool > 1:
    config.update(num_layers=2, grid_size=(4, 4), token_pool=pool)
  model = models.create_model(config, C, rngs=nnx.Rngs(0))
  assert model.tokens_are_cells == (pool == 1)
  grid = tuple(config.grid_size)
  rng = np.random.default_rng(3)
  inputs = dict(
      _inputs(), visual_features=jnp.asarray(rng.normal(size=(B, T) + grid + (CV,)), jnp.float32)
  )
  labels = jnp.asarray(rng.integers(0, C, B))
  where = jnp.asarray(rng.random((B, T) + grid), jnp.float32)
  when = jnp.asarray(rng.random((B, T)), jnp.float32)
  options = [dict(test="temporal", modality="both", order="positive", audio_value=-1.0)]
  if models.sees_frames(model):
    options.append(dict(test="spatial", order="negative", visual_value=0.5))
  for option in options:
    curves = perturbation.perturbation_curves(model, inputs, labels, where, when, **option)
    expected = perturbation.perturbation_reference(model, inputs, labels, where, when, **option)
    np.testing.assert_array_equal(curves["correct"], expected["correct"], err_msg=str(option))
    np.testing.assert_allclose(
        curves["probability"], expected["probability"], atol=1e-5, err_msg=str(option)
    )


def test_a_model_without_frames_has_no_spatial_scores():
  """audio_only sees no frames: its spatial perturbation curves and spatial scores are NaN
  ("—"), while a grid-shaped map (random, center) is not forced onto its placeholder stream."""
  assert not models.sees_frames(models.MODELS["audio_only"])
  assert models.sees_frames(models.MODELS["stan"]) and models.sees_frames(
      models.MODELS["visual_only"]
  )
  model = models.create_model(_config("audio_only"), C, rngs=nnx.Rngs(0))
  assert not models.sees_frames(model)
  batch = {**_inputs(), "label": jnp.asarray([0, 1, 2, 0])}
  out = nnx.jit(
      lambda m, b: suite._explain_batch(
          m, b, name="random", mode="feature", temporal_modality="both", spatial=False
      )
  )(model, batch)
  assert np.isnan(np.asarray(out["spatial/positive/correct"])).all()
  temporal = np.asarray(out["temporal/positive/correct"])
  assert temporal.shape == (B, len(perturbation.FRACTIONS)) and np.isfinite(temporal).all()


def test_each_model_says_which_explainers_it_has():
  """The explainers ask the model (its class or an instance), never its name: attention needs
  its own where or when, rollout its `rollout_readout` and `rollout_maps`; every model shares
  `head` and `__call__` (two_stream.TwoStreamModel)."""
  intrinsic = {
      name: [e for e in ("attention", "rollout") if explainers.EXPLAINERS[e].applies_to(cls)]
      for name, cls in models.MODELS.items()
  }
  assert intrinsic == {
      "stan": ["attention", "rollout"],
      "late_fusion": [],
      "audio_only": [],
      "visual_only": [],
      "avel": ["attention"],  # its "where" only (issue 29 §1)
      "joint_transformer": ["rollout"],
  }
  assert explainers.EXPLAINERS["attention"].dimensions(models.MODELS["avel"]) == ("where",)
  assert explainers.EXPLAINERS["attention"].dimensions(models.MODELS["stan"]) == ("where", "when")
  assert all(issubclass(cls, two_stream.TwoStreamModel) for cls in models.MODELS.values())
  late = models.create_model(_config("late_fusion"), C, rngs=nnx.Rngs(0))
  assert explainers.EXPLAINERS["gradient"].applies_to(late)
  assert not explainers.EXPLAINERS["rollout"].applies_to(late)
  with pytest.raises(ValueError, match=r"rollout needs .* LateFusion has no rollout_readout"):
    explainers.rollout(late, _inputs())
