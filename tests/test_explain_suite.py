"""The explanation suite (stt/explain/suite.py, suite_scores.py, suite_reports.py): pointing and
localisation score maps of the ground-truth class, perturbation maps of the predicted class
(issue 11 §4a); scores come bare and `namespaced` alone names them (issue 25 §3)."""

import functools

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from stt.explain import explainers
from stt.explain import perturbation
from stt.explain import pointing
from stt.explain import suite
from stt.explain import suite_reports
from stt.explain import suite_scores
from stt.models import joint_transformer
from stt.models import stan
from tests.test_explainers import GRID
from tests.test_explainers import MASK
from tests.test_explainers import B
from tests.test_explainers import C
from tests.test_explainers import T
from tests.test_explainers import make_inputs
from tests.test_explainers import make_model

CELL_PX = 10  # 3x3 grid on 30x30 frames


def _boxes_at_argmax_cells(where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """One box per valid segment: the 10x10 px block of the argmax cell of where [B,T,3,3]."""
  boxes = np.zeros((B, T, 1, 4), np.float32)
  for video in range(B):
    for segment in range(T):
      row, col = np.unravel_index(np.argmax(where[video, segment]), GRID)
      boxes[video, segment, 0] = (
          col * CELL_PX,
          row * CELL_PX,
          (col + 1) * CELL_PX,
          (row + 1) * CELL_PX,
      )
  return boxes, MASK[:, :, None].copy()


@nnx.jit
def _references(model, inputs, label):
  """(predicted class [B], gradient maps for `label`, for the prediction, and the spatial
  positive perturbation curves of the prediction's maps), in one jitted program."""
  for_label = explainers.gradient(model, inputs, label)
  for_prediction = explainers.gradient(model, inputs, None)
  curves = perturbation.curves(
      model,
      inputs,
      label,
      for_prediction["where"],
      for_prediction["when"],
      test="spatial",
      order="positive",
  )
  return jnp.argmax(model(inputs)["logits"], -1), for_label, for_prediction, curves


def test_pointing_explains_the_label_and_perturbation_the_prediction(monkeypatch):
  monkeypatch.setattr(
      suite_scores, "TESTS", (("spatial", "positive"),)
  )  # one test: one compilation
  model, inputs = make_model(), make_inputs()
  predicted = np.asarray(_references(model, inputs, jnp.zeros(B, jnp.int32))[0])
  label = (predicted + 1) % C  # both videos misclassified
  batch = {**inputs, "label": jnp.asarray(label)}
  step = nnx.jit(
      functools.partial(
          suite._explain_batch,
          name="gradient",
          mode="feature",  # pylint: disable=protected-access
          temporal_modality="both",
      )
  )
  out = jax.tree.map(np.asarray, step(model, batch))
  _, for_label, for_prediction, curves = jax.tree.map(
      np.asarray, _references(model, inputs, jnp.asarray(label))
  )
  np.testing.assert_allclose(out["where"], for_label["where"], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["when"], for_label["when"], rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(out["explained_class"], label)
  # Boxes where the label's maps point: the label's maps hit every trial, the prediction's
  # maps (what was scored before) miss some.
  boxes, box_mask = _boxes_at_argmax_cells(for_label["where"])
  frame_size = np.full((B, 2), 3 * CELL_PX)
  score = lambda where: pointing.spatial_pointing(
      where, boxes, box_mask, frame_size, label, tolerance_px=1, segment_mask=MASK
  ).overall
  assert score(out["where"]) == 1.0
  assert score(for_prediction["where"]) < 0.9
  # Perturbation removes what the predicted class's maps rank first.
  np.testing.assert_allclose(
      out["spatial/positive/probability"], curves["probability"].T, rtol=1e-4, atol=1e-6
  )


def test_class_agnostic_explainers_ignore_the_target_and_are_recorded_as_such(monkeypatch):
  monkeypatch.setattr(suite_scores, "TESTS", (("spatial", "positive"),))
  model, inputs = make_model(), make_inputs()
  target = jnp.asarray([1, 3])
  both = nnx.jit(
      lambda m, x, y: {
          name: (
              explainers.EXPLAINERS[name](m, x),
              explainers.EXPLAINERS[name](m, x, target_class=y),
          )
          for name, explainer in explainers.EXPLAINERS.items()
          if explainer.class_agnostic
      }
  )
  for name, (default, targeted) in both(model, inputs, target).items():
    np.testing.assert_array_equal(
        np.asarray(default["where"]), np.asarray(targeted["where"]), err_msg=name
    )
  sensitive = {name for name, e in explainers.EXPLAINERS.items() if not e.class_agnostic}
  assert sensitive == {"gradient", "grad_x_input", "gradcam", "integrated_gradients", "occlusion"}
  step = nnx.jit(
      functools.partial(
          suite._explain_batch,
          name="attention",
          mode="feature",  # pylint: disable=protected-access
          temporal_modality="both",
      )
  )
  out = step(model, {**inputs, "label": target})
  np.testing.assert_array_equal(np.asarray(out["explained_class"]), [-1, -1])


def _fake_out(rng) -> dict:
  """Gathered per-example outputs of one explainer on V=3 videos, T=4 segments, 3x3 grid."""
  v, p = 3, len(perturbation.FRACTIONS)
  boxes = np.zeros((v, T, 1, 4), np.float32)
  boxes[..., :] = (0, 0, 10, 10)
  out = {
      "where": rng.random((v, T) + GRID),
      "when": rng.random((v, T)),
      "boxes": boxes,
      "box_mask": np.ones((v, T, 1), bool),
      "frame_size": np.full((v, 2), 30),
      "label": np.array([0, 1, 1]),
      "segment_mask": np.ones((v, T), bool),
      "event_start": np.array([0, 1, 2]),
      "event_end": np.array([2, 3, 4]),
  }
  for test, order in suite_scores.TESTS:
    out[f"{test}/{order}/correct"] = rng.random((v, p)) < 0.5
    out[f"{test}/{order}/probability"] = rng.random((v, p))
  return out


def test_rollout_spatial_scores_are_attentions_and_not_reported(tmp_path):
  # By construction: rollout's where is attention's alpha times a per-frame constant.
  model, inputs = make_model(), make_inputs()
  maps = jax.tree.map(
      np.asarray,
      nnx.jit(lambda m, x: (explainers.attention(m, x), explainers.rollout(m, x)))(model, inputs),
  )
  ratio = maps[1]["where"][MASK] / maps[0]["where"][MASK]  # [valid segments, h, w]
  np.testing.assert_allclose(ratio, ratio[:, :1, :1] * np.ones_like(ratio), rtol=1e-4)
  assert explainers.EXPLAINERS["rollout"].spatial_is_attention(model)
  # So the suite reports them as not applicable; the temporal scores are rollout's own.
  out = _fake_out(np.random.default_rng(0))
  metrics, curves = suite_scores.explainer_scores("rollout", out, 15.0, model=stan.Stan)
  reference, _ = suite_scores.explainer_scores("attention", out, 15.0, model=stan.Stan)
  for key in suite_scores.SPATIAL_METRICS:
    assert np.isnan(metrics[key]), key
    assert np.isfinite(reference[key]), key
  for key in ("pointing_temporal", "temporal/positive_auc", "temporal/negative_auc"):
    assert metrics[key] == reference[key], key
  assert np.isnan(curves["spatial/positive"]).all()
  suite_reports.write_reports(
      epath.Path(tmp_path), {"rollout": metrics}, {"rollout": curves}, ["rollout"]
  )
  row = (tmp_path / "tables.md").read_text().splitlines()[2].split(" | ")
  # pointing_spatial, relevance_mass, ciou, ciou_mean, the field's cIoU and AUC and the spatial
  # AUCs; not the temporal.
  assert row[0] == "| rollout" and [row[i] for i in (1, 3, 4, 5, 6, 7, 8, 9)] == ["—"] * 8
  assert "—" not in (row[2], row[10], row[11])


def test_rollout_spatial_scores_are_reported_for_the_joint_transformer():
  # Its cells are transformer tokens: rollout's "where" is its own, not attention's.
  joint = joint_transformer.JointTransformer
  assert not explainers.EXPLAINERS["rollout"].spatial_is_attention(joint)
  assert not explainers.EXPLAINERS["gradient"].spatial_is_attention(stan.Stan)
  out = _fake_out(np.random.default_rng(0))
  metrics, curves = suite_scores.explainer_scores("rollout", out, 15.0, model=joint)
  on_stan, _ = suite_scores.explainer_scores("rollout", out, 15.0, model=stan.Stan)
  for key in suite_scores.SPATIAL_METRICS:
    assert np.isfinite(metrics[key]), key
    assert np.isnan(on_stan[key]), key
  assert np.isfinite(curves["spatial/positive"]).all()


def test_scores_are_bare_and_namespaced_in_one_place():
  out = _fake_out(np.random.default_rng(1))
  metrics, _ = suite_scores.explainer_scores("gradient", out, 15.0, model=stan.Stan)
  assert not [key for key in metrics if key.startswith("explain")]
  # The pointing game's own function gives the same numbers under the same bare names.
  games = pointing.pointing_metrics(out, 15.0)
  assert all(metrics[key] == games[key] for key in ("pointing_spatial", "pointing_temporal"))
  assert suite_scores.namespaced(
      {"ciou": 0.25, "spatial/positive_auc": 40.0}, explainer="gradient"
  ) == {
      "explain/gradient/ciou": 0.25,
      "explain/gradient/spatial/positive_auc": 40.0,
  }
  # An annotation set gets its own root, so several sets can sit side by side in one results.
  on_sets = {
      dataset: suite_scores.namespaced(metrics, explainer="gradient", annotation_set=dataset)
      for dataset in ("vggss", "flickr_soundnet")
  }
  assert set(on_sets["vggss"]).isdisjoint(on_sets["flickr_soundnet"])
  assert on_sets["vggss"]["explain_vggss/gradient/pointing_spatial"] == metrics["pointing_spatial"]
  for bad in ("", "a/b"):
    with np.testing.assert_raises_regex(ValueError, "explainer must be"):
      suite_scores.namespaced(metrics, explainer=bad)


def test_rollouts_spatial_perturbation_curves_are_attentions_point_for_point():
  # Issue 29 §5: the suite blanks rollout's spatial scores on STAN as attention's. Its "where"
  # is alpha times a positive per-frame constant and the spatial tests rank cells within each
  # frame, so the curves are equal, also with a near one-hot (saturated) alpha.
  model, inputs = make_model(), make_inputs()
  labels = jnp.zeros(B, jnp.int32)

  @nnx.jit
  def spatial_curves(m, x):
    out = {}
    for name in ("attention", "rollout"):
      maps = explainers.EXPLAINERS[name](m, x)
      for order in ("positive", "negative"):
        out[(name, order)] = perturbation.curves(
            m, x, labels, maps["where"], maps["when"], test="spatial", order=order
        )
    return out

  for scale in (1.0, 30.0):
    kernel = model.spatial_attention.key.kernel
    kernel[...] = kernel[...] * scale
    out = jax.tree.map(np.asarray, spatial_curves(model, inputs))
    for order in ("positive", "negative"):
      for key in ("correct", "probability"):
        np.testing.assert_array_equal(out[("rollout", order)][key], out[("attention", order)][key])
