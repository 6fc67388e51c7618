"""Perturbation tests (stt/explain/perturbation.py): rounding, ranking and AUC by hand, and the
jitted, fraction-vmapped curves equal to the plain per-video, per-fraction reference loop on a
random tiny model, in feature mode and in pixel mode."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.common import default_model_config
from stt.explain import perturbation
from stt.models.stan import Stan

B, T, C = 2, 4, 5
GRID = (3, 3)
DIM_V, DIM_A = 8, 8
FRAME = 24  # resnet_tiny (stride 8): 24x24 frames -> 3x3 map
MASK = np.array([[True, True, True, False], [True, True, True, True]])  # video 0: last padded


def make_model(kind: str, seed: int = 0) -> Stan:
  config = default_model_config()
  if kind == "features":
    config.visual_backbone, config.audio_backbone = "features", "features"
    config.visual_feature_dim, config.audio_feature_dim = DIM_V, DIM_A
  else:
    config.visual_backbone, config.audio_backbone = "resnet_tiny", "vggish_tiny"
  config.grid_size, config.num_segments = GRID, T
  config.width, config.num_heads, config.num_layers, config.mlp_ratio = 16, 2, 1, 2
  return Stan(config, C, rngs=nnx.Rngs(params=seed, dropout=seed + 1))


def make_case(kind: str, seed: int = 0):
  """(inputs, labels, where, when): random inputs and signed random maps with some ties."""
  rng = np.random.default_rng(seed)
  inputs = {"segment_mask": jnp.asarray(MASK)}
  if kind == "features":
    inputs["visual_features"] = jnp.asarray(rng.normal(size=(B, T) + GRID + (DIM_V,)), jnp.float32)
    inputs["audio_features"] = jnp.asarray(rng.normal(size=(B, T, DIM_A)), jnp.float32)
  else:
    inputs["frames"] = jnp.asarray(rng.integers(0, 256, (B, T, 2, FRAME, FRAME, 3), np.uint8))
    inputs["log_mel"] = jnp.asarray(rng.normal(size=(B, T, 96, 64)), jnp.float32)
  where = rng.normal(size=(B, T) + GRID).astype(np.float32)
  where[1, 0] = 0.5  # a frame of ties
  where[1, 1, 0, :] = where[1, 1, 1, 0]  # some ties
  when = rng.normal(size=(B, T)).astype(np.float32)
  when[1, 2] = when[1, 0]
  return inputs, jnp.asarray(rng.integers(0, C, B)), jnp.asarray(where), jnp.asarray(when)


FEATURE_TESTS = {
    "spatial_negative": dict(test="spatial", order="negative", visual_value=0.5),
    "temporal_audio_positive": dict(test="temporal", order="positive", modality="audio"),
    "temporal_visual_negative": dict(test="temporal", order="negative", modality="visual"),
    "temporal_both_positive": dict(
        test="temporal", order="positive", modality="both", audio_value=-1.0
    ),
}
PIXEL_TESTS = {
    "spatial_positive": dict(test="spatial", order="positive", mode="pixel"),
    "temporal_both_negative": dict(
        test="temporal", order="negative", modality="both", mode="pixel"
    ),
}


def test_num_removed_rounds_half_up():
  cases = [
      (0.0, 49, 0),
      (0.1, 9, 1),
      (0.5, 9, 5),
      (0.3, 5, 2),
      (0.7, 10, 7),
      (0.9, 49, 44),
      (0.1, 5, 1),
      (0.2, 3, 1),
  ]
  for fraction, count, expected in cases:
    assert perturbation.num_removed(fraction, count) == expected, (fraction, count)
  fractions = jnp.asarray([c[0] for c in cases], jnp.float32)
  counts = jnp.asarray([c[1] for c in cases])
  np.testing.assert_array_equal(perturbation.num_removed(fractions, counts), [c[2] for c in cases])


def test_removal_ranks_break_ties_by_index():
  relevance = jnp.asarray([3.0, 1.0, 3.0, 2.0])
  everything = jnp.ones(4, bool)
  # Most relevant first: 0, 2 (tie, index order), 3, 1.
  np.testing.assert_array_equal(
      perturbation.removal_ranks(relevance, everything, "positive"), [0, 3, 1, 2]
  )
  # Least relevant first: 1, 3, 0, 2.
  np.testing.assert_array_equal(
      perturbation.removal_ranks(relevance, everything, "negative"), [2, 0, 3, 1]
  )
  # An invalid (padded) element ranks last in both orders.
  valid = jnp.asarray([True, True, False, True])
  np.testing.assert_array_equal(
      perturbation.removal_ranks(relevance, valid, "positive"), [0, 2, 3, 1]
  )
  np.testing.assert_array_equal(
      perturbation.removal_ranks(relevance, valid, "negative"), [2, 0, 3, 1]
  )


def test_cell_block_mask():
  cells = np.array([[False, True], [True, False]])
  pixels = np.asarray(perturbation.cell_block_mask(jnp.asarray(cells), 5, 4))
  rows, cols = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1])  # r*2//5, c*2//4
  np.testing.assert_array_equal(pixels, cells[rows][:, cols])


def test_auc_and_summary():
  fractions = np.asarray(perturbation.FRACTIONS)
  assert perturbation.trapezoid_auc(np.ones(10)) == pytest.approx(90.0)
  assert perturbation.trapezoid_auc(1 - fractions) == pytest.approx(100 * (0.9 - 0.9**2 / 2))
  correct = np.stack([[True, True], [True, False]] + [[False, False]] * 8)
  summary = perturbation.summarise(correct, np.full((10, 2), 0.25))
  assert summary["accuracy"][:3] == [1.0, 0.5, 0.0]
  assert summary["auc"] == pytest.approx(100 * 0.1 * ((1 + 0.5) / 2 + 0.5 / 2))
  assert summary["probability_auc"] == pytest.approx(0.25 * 90)


def _jitted_and_reference(kind: str, tests: dict):
  model = make_model(kind)
  inputs, labels, where, when = make_case(kind)
  first = dict(next(iter(tests.values())), fractions=(0.0,))
  predicted = perturbation.perturbation_reference(model, inputs, labels, where, when, **first)[
      "predicted"
  ]
  labels = jnp.asarray([predicted[0], (predicted[1] + 1) % C])  # video 0 right, video 1 wrong

  @nnx.jit
  def all_curves(model, inputs, labels, where, when):
    return {
        name: perturbation.perturbation_curves(model, inputs, labels, where, when, **options)
        for name, options in tests.items()
    }

  jitted = all_curves(model, inputs, labels, where, when)
  reference = {
      name: perturbation.perturbation_reference(model, inputs, labels, where, when, **options)
      for name, options in tests.items()
  }
  return jitted, reference


@pytest.mark.parametrize("kind, tests", [("features", FEATURE_TESTS), ("backbones", PIXEL_TESTS)])
def test_jitted_curves_equal_the_reference_loop(kind, tests):
  jitted, reference = _jitted_and_reference(kind, tests)
  for name in tests:
    curves, expected = jax.tree.map(np.asarray, jitted[name]), reference[name]
    assert curves["correct"].shape == curves["probability"].shape == (10, B)
    np.testing.assert_array_equal(curves["correct"], expected["correct"], err_msg=name)
    np.testing.assert_allclose(
        curves["probability"], expected["probability"], atol=1e-5, err_msg=name
    )
    # Fraction 0 is the clean input: video 0 right, video 1 wrong (labels chosen so).
    np.testing.assert_array_equal(curves["correct"][0], [True, False])
    # The removals are real: the predicted class's probability moves.
    assert np.abs(curves["probability"] - curves["probability"][:1]).max() > 1e-3, name
