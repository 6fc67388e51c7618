"""ROAD's noisy linear imputation (stt/explain/road_imputation.py) and the perturbation tests'
'road' baseline (issue 29 §7)."""

import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stt import reproduce_tables
from stt.explain import perturbation
from stt.explain import road_imputation
from stt.explain import suite
from stt.explain import suite_scores
from stt.models import stan
from tests.test_explainers import make_inputs
from tests.test_explainers import make_model

# ROAD's code (NoisyLinearImputer): the 8 neighbours, direct 1/6, diagonal 1/12.
PAPER_NEIGHBOURS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)


def paper_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
  """ROAD's own formulation, noise 0: image [H,W,C], removed [H,W] -> [H,W,C]. Unknowns are the
  removed pixels only; row i: -(sum of in-image weights) x_i + sum_{removed j} w x_j =
  -sum_{kept j} w v_j, solved with numpy.linalg.solve."""
  height, width, channels = image.shape
  unknown = np.argwhere(removed.reshape(-1)).reshape(-1)
  index_of = {int(cell): i for i, cell in enumerate(unknown)}
  system = np.zeros((len(unknown), len(unknown)))
  right = np.zeros((len(unknown), channels))
  flat = image.reshape(-1, channels).astype(np.float64)
  for i, cell in enumerate(unknown):
    row, col = divmod(int(cell), width)
    total = 0.0
    for (d_row, d_col), weight in PAPER_NEIGHBOURS:
      r, c = row + d_row, col + d_col
      if not (0 <= r < height and 0 <= c < width):
        continue
      total += weight
      other = r * width + c
      if removed[r, c]:
        system[i, index_of[other]] = weight
      else:
        right[i] -= weight * flat[other]
    system[i, i] = -total
  out = flat.copy()
  out[unknown] = np.linalg.solve(system, right)
  return out.reshape(image.shape)


def test_grid_weights_are_the_papers():
  weights = road_imputation.grid_weights(3, 3)
  np.testing.assert_allclose(weights.sum(axis=1)[4], 1.0)  # the centre has all 8 neighbours
  np.testing.assert_allclose(weights[4, [1, 3, 5, 7]], 1 / 6)
  np.testing.assert_allclose(weights[4, [0, 2, 6, 8]], 1 / 12)
  np.testing.assert_allclose(weights.sum(axis=1)[0], 1 / 6 + 1 / 6 + 1 / 12)  # a corner
  np.testing.assert_array_equal(weights, weights.T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_imputation_solves_the_papers_linear_system(seed):
  rng = np.random.default_rng(seed)
  image = rng.normal(size=(5, 6, 3)).astype(np.float32)
  removed = rng.random((5, 6)) < 0.6  # chains of removed cells
  removed[0, 0] = False
  expected = paper_imputation(image, removed)
  got = road_imputation.linear_impute(
      jnp.asarray(image.reshape(1, 30, 3)),
      jnp.asarray(removed.reshape(1, 30)),
      road_imputation.grid_weights(5, 6),
  )
  np.testing.assert_allclose(np.asarray(got).reshape(image.shape), expected, atol=2e-4)
  # Kept cells are untouched, bit for bit.
  np.testing.assert_array_equal(np.asarray(got).reshape(image.shape)[~removed], image[~removed])


def test_removed_cells_are_weighted_means_within_the_neighbours_range():
  rng = np.random.default_rng(3)
  image = rng.uniform(-2, 5, size=(1, 2, 8, 8, 4)).astype(np.float32)
  removed = rng.random((1, 2, 8, 8)) < 0.7
  out = np.asarray(
      road_imputation.impute_cells(
          jnp.asarray(image), jnp.asarray(removed), jnp.zeros(1), jax.random.key(0)
      )
  )
  for frame in range(2):
    kept = image[0, frame][~removed[0, frame]]  # [K,C]
    filled = out[0, frame][removed[0, frame]]
    assert (filled >= kept.min(axis=0) - 1e-4).all() and (filled <= kept.max(axis=0) + 1e-4).all()
    # The harmonic property: every removed cell is the weighted mean of its neighbours.
    weights = road_imputation.grid_weights(8, 8)
    flat = out[0, frame].reshape(64, 4)
    means = weights @ flat / weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        flat[removed[0, frame].reshape(-1)], means[removed[0, frame].reshape(-1)], atol=1e-4
    )


def test_a_frame_removed_whole_falls_back_to_zero_and_noise_only_on_removed_cells():
  values = jnp.ones((1, 1, 2, 2, 3))
  out = road_imputation.impute_cells(
      values, jnp.ones((1, 1, 2, 2), bool), jnp.zeros(1), jax.random.key(0)
  )
  np.testing.assert_allclose(np.asarray(out), 0.0, atol=1e-5)
  removed = jnp.asarray([[[[True, False], [False, False]]]])
  noisy = road_imputation.impute_cells(values, removed, jnp.asarray([0.5]), jax.random.key(1))
  noisy = np.asarray(noisy)
  assert np.abs(noisy[0, 0, 0, 0] - 1.0).max() > 1e-3  # noise added where imputed
  np.testing.assert_array_equal(noisy[0, 0].reshape(4, 3)[1:], 1.0)  # kept cells unchanged


def test_segments_are_imputed_from_valid_neighbours_only():
  audio = jnp.asarray([[[1.0], [5.0], [3.0], [100.0]]])  # segment 3 is padding
  mask = jnp.asarray([[True, True, True, False]])
  removed = jnp.asarray([[False, False, True, False]])
  out = road_imputation.impute_segments(audio, removed, mask, jnp.zeros(1), jax.random.key(0))
  np.testing.assert_allclose(np.asarray(out)[0, :, 0], [1.0, 5.0, 5.0, 100.0], atol=1e-4)
  removed = jnp.asarray([[False, True, True, False]])  # a chain: 1 = (1 + x2) / 2, x2 = x1
  out = road_imputation.impute_segments(audio, removed, mask, jnp.zeros(1), jax.random.key(0))
  np.testing.assert_allclose(np.asarray(out)[0, :3, 0], [1.0, 1.0, 1.0], atol=1e-4)


def paper_line_imputation(values: np.ndarray, removed: np.ndarray, valid: np.ndarray):
  """values [T,K], removed [T], valid [T] -> [T,K]: removed segments the mean of their valid
  neighbours t-1, t+1, jointly (numpy.linalg.solve over the removed segments); 0 when every
  valid segment is removed."""
  unknown = np.flatnonzero(removed)
  if not (valid & ~removed).any():  # nothing to impute from: the zero baseline (documented)
    out = values.astype(np.float64).copy()
    out[unknown] = 0.0
    return out
  index_of = {int(t): i for i, t in enumerate(unknown)}
  system = np.zeros((len(unknown), len(unknown)))
  right = np.zeros((len(unknown), values.shape[1]))
  for i, segment in enumerate(unknown):
    for other in (segment - 1, segment + 1):
      if 0 <= other < len(valid) and valid[other]:
        system[i, i] -= 1
        if removed[other]:
          system[i, index_of[int(other)]] = 1
        else:
          right[i] -= values[other]
  out = values.astype(np.float64).copy()
  out[unknown] = np.linalg.solve(system, right)
  return out


def road_reference(model, inputs, labels, where, when, *, test, order, modality="both"):
  """ROAD curves (noise 0) as a plain loop over videos and fractions: the removed cells picked by a
  numpy stable argsort (MoRF 'positive': most relevant first), imputed by the references above."""
  segment_mask = np.asarray(inputs["segment_mask"])
  num_videos, _, h, w = where.shape
  correct = np.zeros((len(perturbation.FRACTIONS), num_videos), bool)
  for video in range(num_videos):
    sample = {key: value[video : video + 1] for key, value in inputs.items()}
    visual_map, audio_vec = (np.asarray(x) for x in perturbation._reference_encode(model, sample))  # pylint: disable=protected-access
    for index, fraction in enumerate(perturbation.FRACTIONS):
      visual, audio = visual_map.copy(), audio_vec.copy()
      if test == "spatial":
        for segment in range(where.shape[1]):
          relevance = np.asarray(where[video, segment]).reshape(-1)
          ranked = np.argsort(-relevance if order == "positive" else relevance, kind="stable")
          removed = np.zeros(h * w, bool)
          removed[ranked[: perturbation.num_removed(fraction, h * w)]] = True
          visual[0, segment] = paper_imputation(visual[0, segment], removed.reshape(h, w))
      else:
        valid = np.flatnonzero(segment_mask[video])
        relevance = np.asarray(when[video, valid])
        ranked = valid[np.argsort(-relevance if order == "positive" else relevance, kind="stable")]
        removed = np.zeros(len(segment_mask[video]), bool)
        removed[ranked[: perturbation.num_removed(fraction, len(valid))]] = True
        if modality in ("visual", "both"):
          flat = visual[0].reshape(len(removed), -1)
          visual[0] = paper_line_imputation(flat, removed, segment_mask[video]).reshape(
              visual[0].shape
          )
        if modality in ("audio", "both"):
          audio[0] = paper_line_imputation(audio[0], removed, segment_mask[video])
      logits = perturbation._reference_logits(model, visual, audio, segment_mask[video : video + 1])  # pylint: disable=protected-access
      correct[index, video] = np.argmax(logits[0]) == labels[video]
  return correct


@pytest.mark.parametrize(
    "options",
    [
        dict(test="spatial", order="positive"),
        dict(test="spatial", order="negative"),
        dict(test="temporal", order="positive", modality="both"),
        dict(test="temporal", order="negative", modality="audio"),
    ],
    ids=lambda o: "_".join(o.values()),
)
def test_road_curves_equal_the_reference_loop(options):
  model, inputs = make_model(), make_inputs()
  rng = np.random.default_rng(4)
  where = jnp.asarray(rng.normal(size=(2, 4, 3, 3)), jnp.float32)
  when = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  logits = np.asarray(model(inputs)["logits"])
  labels = np.argmax(logits, axis=-1)  # the clean input is right
  got = perturbation.perturbation_curves(
      model, inputs, jnp.asarray(labels), where, when, baseline="road", road_noise=0.0, **options
  )
  expected = road_reference(model, inputs, labels, where, when, **options)
  np.testing.assert_array_equal(np.asarray(got["correct"]), expected)
  assert np.asarray(got["correct"])[0].all()  # p = 0 is the clean input


def test_road_needs_feature_mode():
  model, inputs = make_model(), make_inputs()
  with pytest.raises(ValueError, match="road"):
    perturbation.curves(
        model,
        inputs,
        jnp.zeros(2, int),
        jnp.zeros((2, 4, 3, 3)),
        jnp.zeros((2, 4)),
        mode="pixel",
        baseline="road",
    )


def _explain_step(baselines):
  return nnx.jit(
      functools.partial(
          suite._explain_batch,  # pylint: disable=protected-access
          name="attention",
          mode="feature",
          temporal_modality="both",
          baselines=baselines,
      )
  )


def test_the_explain_step_adds_road_keys_and_leaves_the_zero_baseline_bit_identical(monkeypatch):
  monkeypatch.setattr(suite_scores, "TESTS", (("spatial", "positive"), ("temporal", "negative")))
  model, inputs = make_model(), make_inputs()
  batch = {**inputs, "label": jnp.asarray([1, 3])}
  zero = jax.tree.map(np.asarray, _explain_step(("zero",))(model, batch))
  both = jax.tree.map(np.asarray, _explain_step(("zero", "road"))(model, batch))
  assert set(both) - set(zero) == {
      f"road/{test}/{order}/{record}"
      for test, order in suite_scores.TESTS
      for record in ("correct", "probability")
  }
  for key, value in zero.items():
    np.testing.assert_array_equal(both[key], value, err_msg=key)
  assert both["road/spatial/positive/probability"].shape == (2, len(perturbation.FRACTIONS))
  # p = 0 is the clean input in both baselines; beyond it ROAD's curves are its own.
  np.testing.assert_allclose(
      both["road/spatial/positive/probability"][:, 0],
      zero["spatial/positive/probability"][:, 0],
      rtol=1e-5,
  )
  assert not np.allclose(
      both["road/spatial/positive/probability"], zero["spatial/positive/probability"]
  )


def test_road_aucs_are_scored_named_and_tabulated():
  rng = np.random.default_rng(0)
  v, p = 3, len(perturbation.FRACTIONS)
  out = {
      "where": rng.random((v, 4, 3, 3)),
      "when": rng.random((v, 4)),
      "boxes": np.tile(np.asarray([0, 0, 10, 10], np.float32), (v, 4, 1, 1)),
      "box_mask": np.ones((v, 4, 1), bool),
      "frame_size": np.full((v, 2), 30),
      "label": np.array([0, 1, 1]),
      "segment_mask": np.ones((v, 4), bool),
      "event_start": np.array([0, 1, 2]),
      "event_end": np.array([2, 3, 4]),
  }
  for prefix in ("", "road/"):
    for test, order in suite_scores.TESTS:
      out[f"{prefix}{test}/{order}/correct"] = rng.random((v, p)) < 0.5
      out[f"{prefix}{test}/{order}/probability"] = rng.random((v, p))
  metrics, curves = suite_scores.explainer_scores("gradient", out, 15.0, model=stan.Stan)
  summary = perturbation.summarise(
      out["road/temporal/negative/correct"].T, out["road/temporal/negative/probability"].T
  )
  assert metrics["road/temporal/negative_auc"] == summary["auc"]
  assert metrics["road/temporal/negative_probability_auc"] == summary["probability_auc"]
  assert set(curves) == {f"{test}/{order}" for test, order in suite_scores.TESTS}
  # Rollout's spatial scores are attention's on STAN: ROAD's spatial AUCs are blanked too.
  on_rollout, _ = suite_scores.explainer_scores("rollout", out, 15.0, model=stan.Stan)
  assert np.isnan(on_rollout["road/spatial/positive_auc"])
  assert np.isfinite(on_rollout["road/temporal/positive_auc"])
  # Table 2 shows both baselines, with the probability-drop AUCs.
  for metric in (
      "spatial/positive_probability_auc",
      "road/spatial/positive_auc",
      "road/temporal/negative_probability_auc",
  ):
    assert metric in reproduce_tables.PERTURBATION_METRICS
  results = {"stan": [{f"explain/gradient/{k}": v for k, v in metrics.items()}]}
  rows = reproduce_tables.summary_rows(results)
  road = [r for r in rows if r["metric"] == "road/temporal/negative_auc"]
  assert len(road) == 1 and road[0]["mean"] == pytest.approx(summary["auc"])
