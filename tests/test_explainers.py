"""Explainers (stt/explain/explainers.py) on a tiny STAN with precomputed features: shapes and
normalisation under jit, the intrinsic maps, rollout and occlusion against hand computations,
target classes, seeded randomness and integrated-gradients completeness."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.common import default_model_config
from stt.explain import explainers
from stt.models.stan import Stan

B, T, C = 2, 4, 5
GRID = (3, 3)
DIM_V, DIM_A = 8, 8
MASK = np.array([[True, True, True, False], [True, True, True, True]])  # video 0: last padded


def make_model(seed: int = 0) -> Stan:
  config = default_model_config()
  config.visual_backbone, config.audio_backbone = "features", "features"
  config.visual_feature_dim, config.audio_feature_dim = DIM_V, DIM_A
  config.grid_size, config.num_segments = GRID, T
  config.width, config.num_heads, config.num_layers, config.mlp_ratio = 16, 2, 2, 2
  return Stan(config, C, rngs=nnx.Rngs(params=seed, dropout=seed + 1))


def make_inputs(seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  return {
      "visual_features": jnp.asarray(rng.normal(size=(B, T) + GRID + (DIM_V,)), jnp.float32),
      "audio_features": jnp.asarray(rng.normal(size=(B, T, DIM_A)), jnp.float32),
      "segment_mask": jnp.asarray(MASK),
  }


@nnx.jit
def forward(model, inputs):
  return model(inputs)


@nnx.jit
def explain_all(model, inputs, target):
  """Every explainer for the predicted class, the gradient for `target` and the raw integrated
  gradients, in one jitted program (one compilation; the explainers share computations)."""
  explained = {name: fn(model, inputs) for name, fn in explainers.EXPLAINERS.items()}
  explained["gradient_for_target"] = explainers.gradient(model, inputs, target)
  explained["ig_attributions"] = explainers.integrated_gradient_attributions(model, inputs)
  return explained


@pytest.fixture(scope="module")
def setup():
  """(model, inputs, model outputs, explanations from `explain_all`); the target explains video 0's
  predicted class and another class for video 1."""
  model, inputs = make_model(), make_inputs()
  outputs = forward(model, inputs)
  predicted = jnp.argmax(outputs["logits"], axis=-1)
  explained = explain_all(model, inputs, predicted.at[1].set((predicted[1] + 1) % C))
  return model, inputs, outputs, jax.tree.map(np.asarray, explained)


@pytest.mark.parametrize("name", sorted(explainers.EXPLAINERS))
def test_shapes_and_normalisation(setup, name):
  out = setup[3][name]
  assert out["where"].shape == (B, T) + GRID and out["where"].dtype == jnp.float32
  assert out["when"].shape == (B, T) and out["when"].dtype == jnp.float32
  where, when = np.asarray(out["where"]), np.asarray(out["when"])
  assert np.isfinite(where).all() and np.isfinite(when).all()
  assert (where[~MASK] == 0).all() and (when[~MASK] == 0).all()  # padded segment
  np.testing.assert_allclose(np.abs(where).sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.abs(when).sum(axis=1), 1.0, rtol=1e-5)
  assert np.ptp(where[1]) > 1e-4 or name == "center"  # not constant


def test_non_negative_explainers_are_non_negative(setup):
  for name in ("attention", "rollout", "gradient", "gradcam", "random", "center"):
    out = setup[3][name]
    assert (np.asarray(out["where"]) >= 0).all() and (np.asarray(out["when"]) >= 0).all(), name


def test_attention_is_the_models_own_maps(setup):
  _, _, outputs, explained = setup
  model_maps = outputs["explanations"]
  valid_segments = MASK.sum(axis=1)[:, None, None, None]
  np.testing.assert_allclose(
      explained["attention"]["where"][MASK], (model_maps["where"] / valid_segments)[MASK], rtol=1e-5
  )
  np.testing.assert_allclose(explained["attention"]["when"], model_maps["when"], rtol=1e-5)


def test_rollout_matches_hand_computation(setup):
  _, _, outputs, explained = setup
  maps = jax.tree.map(np.asarray, outputs["explanations"])
  for video in range(B):
    layers = maps["temporal_attention"][:, video].mean(axis=1)  # [L,2T,2T]
    relevance_map = np.eye(2 * T)
    for layer in layers:
      augmented = layer + np.eye(2 * T)
      relevance_map = (augmented / augmented.sum(-1, keepdims=True)) @ relevance_map
    pooling = 0.5 * np.concatenate([maps["when_audio"][video], maps["when_visual"][video]])
    relevance = pooling @ relevance_map
    when = relevance[:T] + relevance[T:]
    where = maps["where"][video] * relevance[T:, None, None]
    valid = MASK[video]
    np.testing.assert_allclose(
        explained["rollout"]["when"][video][valid], when[valid] / when[valid].sum(), rtol=1e-4
    )
    np.testing.assert_allclose(
        explained["rollout"]["where"][video][valid], where[valid] / where[valid].sum(), rtol=1e-4
    )


def test_target_class(setup):
  _, _, _, explained = setup
  targeted, default = explained["gradient_for_target"], explained["gradient"]
  for key in ("where", "when"):  # video 0: its predicted class; video 1: another class
    np.testing.assert_allclose(targeted[key][0], default[key][0], rtol=1e-5, atol=1e-7)
    assert np.abs(targeted[key][1] - default[key][1]).max() > 1e-3
  logits = jnp.asarray([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
  np.testing.assert_array_equal(explainers.target_classes(logits, None), [1, 0])
  np.testing.assert_array_equal(explainers.target_classes(logits, 2), [2, 2])
  np.testing.assert_array_equal(explainers.target_classes(logits, np.array([0, 2])), [0, 2])


def test_occlusion_matches_one_at_a_time_drops(setup):
  model, inputs, outputs, explained = setup
  probs = np.asarray(jax.nn.softmax(outputs["logits"]))
  target = probs.argmax(-1)
  head = nnx.jit(lambda m, v, a, mask: jax.nn.softmax(m.head(v, a, mask)["logits"]))
  visual, audio = np.asarray(inputs["visual_features"]), np.asarray(inputs["audio_features"])
  for video in range(B):
    cells, segments = [], []
    for t in range(T):
      segment_visual, segment_audio = visual[video].copy(), audio[video].copy()
      segment_visual[t], segment_audio[t] = 0, 0
      segments.append((segment_visual, segment_audio))
      for row in range(GRID[0]):
        for col in range(GRID[1]):
          cell_visual = visual[video].copy()
          cell_visual[t, row, col] = 0
          cells.append((cell_visual, audio[video]))
    variants = cells + segments  # T*N cell occlusions, then T segment occlusions
    mask = np.repeat(MASK[video : video + 1], len(variants), axis=0)
    occluded = head(
        model,
        jnp.asarray(np.stack([v for v, _ in variants])),
        jnp.asarray(np.stack([a for _, a in variants])),
        jnp.asarray(mask),
    )
    drops = probs[video, target[video]] - np.asarray(occluded)[:, target[video]]
    where = drops[: len(cells)].reshape((T,) + GRID) * MASK[video][:, None, None]
    when = drops[len(cells) :] * MASK[video]
    np.testing.assert_allclose(
        explained["occlusion"]["where"][video], where / np.abs(where).sum(), rtol=1e-3, atol=1e-6
    )
    np.testing.assert_allclose(
        explained["occlusion"]["when"][video], when / np.abs(when).sum(), rtol=1e-3, atol=1e-6
    )


def test_gradcam_maps_hand_case():
  visual_grad = np.zeros((1, 1, 2, 2, 2), np.float32)
  visual_grad[..., 0] = [[1, 3], [0, 0]]  # channel weights: mean 1 for channel 0,
  visual_grad[..., 1] = -2  # -2 for channel 1
  visual_map = np.zeros((1, 1, 2, 2, 2), np.float32)
  visual_map[..., 0] = [[1, 2], [3, 4]]
  visual_map[..., 1] = [[0, 1], [1, 3]]
  audio_grad, audio_vec = np.array([[[1.0, -1.0]]]), np.array([[[2.0, 5.0]]])
  visual_cam, audio_cam = explainers.gradcam_maps(visual_grad, visual_map, audio_grad, audio_vec)
  # 1*F0 - 2*F1 = [[1, 0], [1, -2]] -> ReLU
  np.testing.assert_allclose(visual_cam[0, 0], [[1, 0], [1, 0]])
  np.testing.assert_allclose(audio_cam, [[0.0]])  # ReLU(2 - 5)


def test_random_is_seeded_and_center_peaks_in_the_centre(setup):
  model, inputs, _, _ = setup
  random = nnx.jit(explainers.random)
  first = random(model, inputs, key=jax.random.key(3))
  again = random(model, inputs, key=jax.random.key(3))
  other = random(model, inputs, key=jax.random.key(4))
  np.testing.assert_array_equal(first["where"], again["where"])
  np.testing.assert_array_equal(first["when"], again["when"])
  assert not np.allclose(first["where"], other["where"])
  center = explainers.center(model, inputs)
  where = np.asarray(center["where"][1, 0])
  assert np.unravel_index(where.argmax(), GRID) == (1, 1)
  assert where[0, 0] == where[2, 2] < where[0, 1] < where[1, 1]
  np.testing.assert_allclose(center["when"], [[1 / 3] * 3 + [0], [1 / 4] * 4], rtol=1e-6)


def test_integrated_gradients_completeness(setup):
  model, inputs, outputs, explained = setup
  predicted = np.asarray(outputs["logits"]).argmax(-1)
  visual_attribution, audio_attribution = explained["ig_attributions"]
  total = visual_attribution.sum(axis=(1, 2, 3, 4)) + audio_attribution.sum(axis=(1, 2))
  baseline = forward(
      model,
      {
          key: jnp.zeros_like(value) if key != "segment_mask" else value
          for key, value in inputs.items()
      },
  )["logits"]
  expected = (np.asarray(outputs["logits"]) - np.asarray(baseline))[np.arange(B), predicted]
  np.testing.assert_allclose(total, expected, rtol=2e-3)
  assert np.abs(expected).min() > 0.05  # the check is not vacuous
