"""The switches of STAN's "where" that issue 29's ablations move towards AVEL's (stt/models):
additive scoring, no cell position embedding, the spatial attention's own head count, and the
direct (auxiliary) loss path to alpha; the defaults leave the model bit-identical."""

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import synthetic
from stt import config_validation
from stt import train_step
from stt.explain import sanity
from stt.models import layers
from stt.models.stan import Stan
from tests.test_stan import GRID
from tests.test_stan import MASK
from tests.test_stan import B
from tests.test_stan import C
from tests.test_stan import T
from tests.test_stan import forward
from tests.test_stan import make_config
from tests.test_stan import make_inputs
from tests.test_stan import make_model

# make_model("features") / make_inputs("features") on the code before the switches existed
# (commit 24efec2), under the tests' XLA flags: logits [B,C], spatial_attention[1, 2, 3] [N],
# when[0] [T]. The new code gave the same bits there; the tolerance only absorbs XLA:CPU builds
# and instruction sets (other XLA flags move the last ~2 bits of float32).
OLD_LOGITS = [
    -0.1102476716041565,
    0.286013662815094,
    0.008506521582603455,
    0.18200348317623138,
    -0.3942386209964752,
    0.240530863404274,
    0.17694127559661865,
    0.3353724479675293,
    -0.17861180007457733,
    0.04041905701160431,
]
OLD_ALPHA = [
    0.08143628388643265,
    0.1075974851846695,
    0.018798667937517166,
    0.05380711331963539,
    0.05594559758901596,
    0.032536525279283524,
    0.04130752012133598,
    0.023873725906014442,
    0.12096495926380157,
    0.046195559203624725,
    0.0583648756146431,
    0.059396471828222275,
    0.06109718605875969,
    0.023264020681381226,
    0.06884797662496567,
    0.14656612277030945,
]
OLD_WHEN = [0.6569451689720154, 0.05670270696282387, 0.28635215759277344, 0.0]
NEW_KEYS = ("spatial_scoring", "spatial_heads", "spatial_position_embedding", "spatial_aux_weight")


def test_default_forward_is_what_it_was_before_the_switches():
  inputs = make_inputs("features")
  out = forward(make_model("features"), inputs)
  np.testing.assert_allclose(out["logits"].ravel(), OLD_LOGITS, rtol=1e-5, atol=1e-7)
  alpha = out["explanations"]["spatial_attention"][1, 2, 3]
  np.testing.assert_allclose(alpha, OLD_ALPHA, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["explanations"]["when"][0], OLD_WHEN, rtol=1e-5, atol=1e-7)
  assert "auxiliary_logits" not in out
  # Bit for bit: a config without the new keys (a run's config.json from before) builds the
  # same model as the defaults.
  config = make_config("features")
  old_config = ml_collections.ConfigDict({k: v for k, v in config.items() if k not in NEW_KEYS})
  old = forward(Stan(old_config, C, rngs=nnx.Rngs(params=0, dropout=1)), inputs)
  assert np.array_equal(old["logits"], out["logits"])
  assert np.array_equal(old["explanations"]["where"], out["explanations"]["where"])


def _permuted_alpha_error(**overrides) -> float:
  """max |alpha(permuted cells) - permuted alpha(cells)| over a fixed permutation of cells."""
  model = make_model("features", **overrides)
  inputs = make_inputs("features")
  n = GRID[0] * GRID[1]
  perm = np.random.default_rng(3).permutation(n)
  features = inputs["visual_features"]
  flat = features.reshape(B, T, n, -1)[:, :, perm]
  permuted = dict(inputs, visual_features=flat.reshape(features.shape))
  alpha = forward(model, inputs)["explanations"]["spatial_attention"]
  alpha_permuted = forward(model, permuted)["explanations"]["spatial_attention"]
  return float(jnp.abs(alpha_permuted - alpha[..., perm]).max())


def test_without_the_cell_position_embedding_alpha_follows_content_only():
  # Equivariance: permuting the cells permutes alpha. With the embedding (default) a cell's
  # score depends on where it is, so it does not.
  assert _permuted_alpha_error(spatial_position_embedding=False) < 1e-6
  assert _permuted_alpha_error() > 1e-3
  model = make_model("features", spatial_position_embedding=False)
  assert model.spatial_position is None
  sanity.parameter_blocks(model)  # the blocks still cover every parameter


def test_additive_scoring_is_avels_formula_per_head():
  width, heads, n = 8, 2, 5
  module = layers.AudioGuidedSpatialAttention(width, heads, scoring="additive", rngs=nnx.Rngs(0))
  module.query.bias[...] = jax.random.normal(jax.random.key(1), (width,))
  rng = np.random.default_rng(0)
  audio = rng.standard_normal((1, 2, width)).astype(np.float32)
  cells = rng.standard_normal((1, 2, n, width)).astype(np.float32)
  attended, alpha = module(jnp.asarray(audio), jnp.asarray(cells))

  w_a, b_a = np.asarray(module.query.kernel[...]), np.asarray(module.query.bias[...])
  w_v, score = np.asarray(module.key.kernel[...]), np.asarray(module.score[...])  # score [H,dh]
  dh = width // heads
  expected = np.zeros((1, 2, heads, n))
  for t in range(2):
    for h in range(heads):
      part = slice(h * dh, (h + 1) * dh)
      hidden = np.tanh(cells[0, t] @ w_v[:, part] + (audio[0, t] @ w_a + b_a)[part])  # [N,dh]
      logits = hidden @ score[h]
      expected[0, t, h] = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
  np.testing.assert_allclose(alpha, expected, rtol=1e-5, atol=1e-6)
  # The values are pooled as in the dot-product form.
  values = module.value(jnp.asarray(cells)).reshape(1, 2, n, heads, dh)
  pooled = jnp.einsum("bthn,btnhd->bthd", alpha, values).reshape(1, 2, width)
  np.testing.assert_allclose(attended, module.out(pooled), rtol=1e-5, atol=1e-5)

  model = make_model("features", spatial_scoring="additive")
  out = forward(model, make_inputs("features"))["explanations"]["spatial_attention"]
  np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="scoring"):
    layers.AudioGuidedSpatialAttention(width, heads, scoring="cosine", rngs=nnx.Rngs(0))


def test_spatial_heads_sets_only_the_spatial_attentions_heads():
  out = forward(make_model("features", spatial_heads=1), make_inputs("features"))
  n = GRID[0] * GRID[1]
  assert out["explanations"]["spatial_attention"].shape == (B, T, 1, n)
  assert out["explanations"]["temporal_attention"].shape[2] == 4  # the transformer's num_heads


def _loss_config(weight: float) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.loss = ml_collections.ConfigDict(dict(label_smoothing=0.0, segment_weight=0.0))
  config.model = ml_collections.ConfigDict(dict(spatial_aux_weight=weight))
  return config


def test_direct_alpha_loss_adds_a_classifier_of_the_attended_feature_to_the_loss():
  model = make_model("features", spatial_aux_weight=0.5)
  inputs = make_inputs("features")
  out = forward(model, inputs)
  # auxiliary_logits = Linear(mean over valid segments of v_hat_t).
  cells, audio = model.embed(*model.encode(inputs))
  attended, _ = model.spatial_attention(audio, cells)
  valid = MASK[..., None].astype(np.float32)
  mean = (np.asarray(attended) * valid).sum(1) / valid.sum(1)
  np.testing.assert_allclose(
      out["auxiliary_logits"], model.auxiliary_classifier(jnp.asarray(mean)), rtol=1e-5, atol=1e-6
  )
  assert out["auxiliary_logits"].shape == (B, C)
  sanity.parameter_blocks(model)  # the classifier block holds it

  batch = {"label": jnp.array([1, 3]), "valid": jnp.array([True, True])}
  with_aux, _ = train_step.loss_and_metrics(out, batch, _loss_config(0.5))
  without = {k: v for k, v in out.items() if k != "auxiliary_logits"}
  plain, _ = train_step.loss_and_metrics(without, batch, _loss_config(0.5))
  labels = jax.nn.one_hot(batch["label"], C)
  auxiliary = optax.softmax_cross_entropy(out["auxiliary_logits"], labels).mean()
  assert float(with_aux - plain) == pytest.approx(0.5 * float(auxiliary), rel=1e-5)
  assert float(auxiliary) > 0.1
  with pytest.raises(ValueError, match="spatial_aux_weight"):
    make_model("features", spatial_aux_weight=-1.0)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("spatial_scoring", "cosine", "model.spatial_scoring='cosine' is not one of"),
        ("spatial_heads", 3, "model.spatial_heads=3 must be 0"),
    ],
)
def test_bad_switch_values_are_named_before_anything_runs(key, value, message):
  config = synthetic.get_config("smoke")
  config_validation.validate(config, device_count=1)
  config.model[key] = value
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate(config, device_count=1)
