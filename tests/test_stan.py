"""Tests of the STAN model (stt/models): shapes, attention normalisation, padding,
ablation switches, determinism, gradients through a jitted functional step, bf16, and
the full-size backbones."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.common import default_model_config
from stt.models import backbones
from stt.models import encoders
from stt.models import stan
from stt.models.stan import Stan

B, T, C = 2, 4, 5
FRAME = 32  # resnet_tiny: 32x32 frame -> 4x4 map
GRID = (4, 4)
FEATURE_DIM_V, FEATURE_DIM_A = 8, 16
# Video 0 has its last segment padded; video 1 is fully valid.
MASK = np.array([[True, True, True, False], [True, True, True, True]])


def make_config(kind: str = "backbones", **overrides):
  config = default_model_config()
  if kind == "backbones":
    config.visual_backbone, config.audio_backbone = "resnet_tiny", "vggish_tiny"
  else:
    config.visual_backbone, config.audio_backbone = "features", "features"
    config.visual_feature_dim, config.audio_feature_dim = FEATURE_DIM_V, FEATURE_DIM_A
  config.grid_size = GRID
  config.width, config.num_heads, config.num_layers, config.mlp_ratio = 32, 4, 2, 2
  config.num_segments = T
  config.update(overrides)
  return config


def make_inputs(kind: str = "backbones", seed: int = 0):
  rng = np.random.default_rng(seed)
  inputs = {"segment_mask": jnp.asarray(MASK)}
  if kind == "backbones":
    inputs["frames"] = jnp.asarray(rng.integers(0, 256, (B, T, 2, FRAME, FRAME, 3), np.uint8))
    inputs["log_mel"] = jnp.asarray(rng.normal(size=(B, T, 96, 64)).astype(np.float32))
  else:
    inputs["visual_features"] = jnp.asarray(
        rng.normal(size=(B, T) + GRID + (FEATURE_DIM_V,)).astype(np.float32)
    )
    inputs["audio_features"] = jnp.asarray(
        rng.normal(size=(B, T, FEATURE_DIM_A)).astype(np.float32)
    )
  return inputs


def make_model(kind: str = "backbones", seed: int = 0, **overrides):
  return Stan(make_config(kind, **overrides), C, rngs=nnx.Rngs(params=seed, dropout=seed + 1))


@nnx.jit
def forward(model, inputs):
  """Eval-mode forward; jitted because op-by-op CPU dispatch compiles every op."""
  return model(inputs)


@pytest.mark.parametrize("kind", ["backbones", "features"])
@pytest.mark.parametrize("segment_head", [False, True])
def test_output_shapes(kind, segment_head):
  model = make_model(kind, segment_head=segment_head)
  out = forward(model, make_inputs(kind))
  heads, layers, n = 4, 2, GRID[0] * GRID[1]
  assert out["logits"].shape == (B, C) and out["logits"].dtype == jnp.float32
  if segment_head:
    assert out["segment_logits"].shape == (B, T, C + 1)
  else:
    assert out["segment_logits"] is None
  ex = out["explanations"]
  assert ex["where"].shape == (B, T) + GRID
  assert ex["when_audio"].shape == ex["when_visual"].shape == (B, T)
  assert ex["spatial_attention"].shape == (B, T, heads, n)
  assert ex["temporal_attention"].shape == (layers, B, heads, 2 * T, 2 * T)
  for value in jax.tree.leaves(out):
    assert np.all(np.isfinite(value))


def test_encode_head_split_matches_call():
  model = make_model()
  inputs = make_inputs()

  @nnx.jit
  def encode_then_head(model, inputs):
    visual_map, audio_vec = model.encode(inputs)
    return visual_map, audio_vec, model.head(visual_map, audio_vec, inputs["segment_mask"])

  visual_map, audio_vec, split = encode_then_head(model, inputs)
  assert visual_map.shape == (B, T) + GRID + (32,) and audio_vec.shape == (B, T, 64)
  np.testing.assert_allclose(split["logits"], forward(model, inputs)["logits"], atol=1e-5)


@pytest.mark.parametrize("spatial_query", ["audio", "learned"])
def test_attention_normalisation(spatial_query):
  out = forward(make_model("features", spatial_query=spatial_query), make_inputs("features"))
  ex = out["explanations"]
  np.testing.assert_allclose(ex["spatial_attention"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(ex["where"].sum((-2, -1)), 1.0, atol=1e-5)
  np.testing.assert_allclose(ex["when_audio"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(ex["when_visual"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(ex["when"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(ex["temporal_attention"].sum(-1), 1.0, atol=1e-5)
  assert np.all(ex["spatial_attention"] >= 0) and np.all(ex["when_audio"] >= 0)


@pytest.mark.parametrize(
    "kind, pool_values", [("backbones", "local"), ("features", "local"), ("features", "contextual")]
)
def test_padded_segments_are_ignored(kind, pool_values):
  model = make_model(kind, pool_values=pool_values)
  inputs = make_inputs(kind)
  out = forward(model, inputs)
  ex = out["explanations"]
  assert np.all(ex["when_audio"][0, 3] == 0.0) and np.all(ex["when_visual"][0, 3] == 0.0)
  assert np.all(ex["when"][0, 3] == 0.0)
  assert np.all(ex["when_audio"][1] > 0)
  # Padded audio token (index 3) and visual token (index T + 3) are never attended to.
  attention = ex["temporal_attention"]
  assert np.all(attention[:, 0, :, :, 3] == 0.0) and np.all(attention[:, 0, :, :, T + 3] == 0.0)
  assert np.all(attention[:, 1] > 0)

  # Changing the inputs of the padded segment leaves the logits bit-identical.
  changed = dict(inputs)
  for key in ("frames", "log_mel", "visual_features", "audio_features"):
    if key in changed:
      noise = np.array(changed[key])
      noise[0, 3] = (255 - noise[0, 3]) if noise.dtype == np.uint8 else noise[0, 3] * -3.0 + 1.0
      changed[key] = jnp.asarray(noise)
  np.testing.assert_array_equal(forward(model, changed)["logits"], out["logits"])
  # ...whereas changing a valid segment does change them (the test is not vacuous).
  key = "frames" if kind == "backbones" else "visual_features"
  valid_changed = dict(inputs)
  valid_changed[key] = inputs[key].at[0, 1].set(inputs[key][0, 2])
  assert not np.allclose(forward(model, valid_changed)["logits"][0], out["logits"][0])


def test_ablation_switches_give_uniform_weights():
  model = make_model("features", spatial_query="none", temporal_pool="mean")
  ex = forward(model, make_inputs("features"))["explanations"]
  n = GRID[0] * GRID[1]
  np.testing.assert_allclose(ex["spatial_attention"], 1.0 / n, rtol=1e-6)
  np.testing.assert_allclose(ex["where"], 1.0 / n, rtol=1e-6)
  expected = MASK / MASK.sum(1, keepdims=True)
  np.testing.assert_allclose(ex["when_audio"], expected, rtol=1e-6)
  np.testing.assert_allclose(ex["when_visual"], expected, rtol=1e-6)
  np.testing.assert_allclose(ex["when"], expected, rtol=1e-6)


def test_joint_when_is_the_renormalised_product():
  beta_audio = jnp.array([[0.5, 0.3, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25]])
  beta_visual = jnp.array([[0.1, 0.1, 0.8, 0.0], [0.7, 0.1, 0.1, 0.1]])
  when = stan.joint_when(beta_audio, beta_visual)
  np.testing.assert_allclose(when[0], [0.05 / 0.24, 0.03 / 0.24, 0.16 / 0.24, 0.0], rtol=1e-6)
  np.testing.assert_allclose(when[1], beta_visual[1], rtol=1e-6)  # uniform audio: visual decides


def test_determinism_from_seed():
  inputs = make_inputs()
  params = [nnx.state(make_model(seed=s), nnx.Param) for s in (0, 0, 1)]
  leaves = [jax.tree.leaves(p) for p in params]
  for a, b in zip(leaves[0], leaves[1]):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(leaves[0], leaves[2]))
  logits = [forward(make_model(seed=s), inputs)["logits"] for s in (0, 0, 1)]
  np.testing.assert_array_equal(logits[0], logits[1])
  assert not np.allclose(logits[0], logits[2])


def _loss(model, inputs, labels, train):
  out = model(inputs, train=train)
  loss = optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
  if out["segment_logits"] is not None:
    segment_labels = jnp.where(inputs["segment_mask"], labels[:, None], C)  # background = C
    loss += optax.softmax_cross_entropy_with_integer_labels(
        out["segment_logits"], segment_labels
    ).mean()
  return loss


@pytest.mark.parametrize(
    "kind,overrides",
    [
        ("backbones", {"segment_head": True}),
        ("features", {"spatial_query": "learned"}),
    ],
)
def test_jitted_functional_train_step(kind, overrides):
  model = make_model(kind, **overrides)
  inputs, labels = make_inputs(kind), jnp.array([1, 3])
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  @jax.jit
  def train_step(params, rest, inputs, labels):
    def loss_fn(params):
      # copy=True: `rest` belongs to the jit trace; the merged model is mutated (batch
      # stats, RNG counters) inside the grad trace, which needs fresh Variables.
      model = nnx.merge(graphdef, params, rest, copy=True)
      loss = _loss(model, inputs, labels, train=True)
      return loss, nnx.state(model, nnx.Not(nnx.Param))

    (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, grads, new_rest

  loss, grads, new_rest = train_step(params, rest, inputs, labels)
  assert np.isfinite(loss)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(grad)), path
    assert np.any(grad != 0), f"zero gradient for {jax.tree_util.keystr(path)}"

  # Batch statistics (when there is a BatchNorm) and dropout RNG counters advanced.
  def as_array(leaf):
    return jax.random.key_data(leaf) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf

  new_leaves = dict(jax.tree_util.tree_leaves_with_path(new_rest))
  changed = {
      jax.tree_util.keystr(path)
      for path, old in jax.tree_util.tree_leaves_with_path(rest)
      if not np.array_equal(as_array(old), as_array(new_leaves[path]))
  }
  assert any("count" in p for p in changed)
  if kind == "backbones":
    assert any("'mean'" in p or "'var'" in p for p in changed)

  # The updated state drives a different dropout mask on the next step.
  loss_2, _, _ = train_step(params, new_rest, inputs, labels)
  assert loss_2 != loss
  # Evaluation is deterministic.
  model = nnx.merge(graphdef, params, new_rest)
  np.testing.assert_array_equal(forward(model, inputs)["logits"], forward(model, inputs)["logits"])


def test_plain_split_merge_pattern_updates_state():
  """graphdef/state split, merge + call inside jax.jit, split again (the trainer's pattern)."""
  graphdef, state = nnx.split(make_model("features"))
  inputs = make_inputs("features")

  @jax.jit
  def call(state, inputs):
    model = nnx.merge(graphdef, state)
    logits = model(inputs, train=True)["logits"]
    return logits, nnx.split(model)[1]

  logits_1, state_1 = call(state, inputs)
  logits_again, _ = call(state, inputs)
  logits_2, _ = call(state_1, inputs)
  np.testing.assert_array_equal(logits_1, logits_again)  # same state -> same dropout mask
  assert not np.allclose(logits_1, logits_2)  # advanced RNG counters -> new mask


def test_bfloat16_compute():
  inputs = make_inputs()
  model_32 = make_model(dtype="float32")
  model_16 = make_model(dtype="bfloat16")
  for leaf in jax.tree.leaves(nnx.state(model_16, nnx.Param)):
    assert leaf.dtype == jnp.float32
  out_16, out_32 = forward(model_16, inputs), forward(model_32, inputs)
  assert out_16["logits"].dtype == jnp.float32
  assert out_16["explanations"]["where"].dtype == jnp.float32
  np.testing.assert_allclose(out_16["logits"], out_32["logits"], atol=0.1, rtol=0.1)
  np.testing.assert_allclose(
      out_16["explanations"]["when_audio"], out_32["explanations"]["when_audio"], atol=0.05
  )


def _num_params(module) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def test_resnet18_trunk():
  config = default_model_config()
  config.visual_backbone, config.audio_backbone = "resnet18", "features"
  config.grid_size = (7, 7)
  model = Stan(config, C, rngs=nnx.Rngs(0))
  frames = jnp.zeros((1, 1, 1, 224, 224, 3), jnp.uint8)
  encode = nnx.jit(lambda model, inputs: model.encode(inputs))
  visual_map, _ = encode(model, {"frames": frames, "audio_features": jnp.zeros((1, 1, 128))})
  assert visual_map.shape == (1, 1, 7, 7, 512)
  assert _num_params(model.visual_backbone) == 11_176_512  # torchvision resnet18 minus fc


def test_resnet50_parameter_count():
  abstract = nnx.eval_shape(lambda: backbones.resnet50(rngs=nnx.Rngs(0)))
  assert abstract.out_channels == 2048
  assert _num_params(abstract) == 23_508_032  # torchvision resnet50 minus fc


def test_vggish():
  config = default_model_config()
  config.visual_backbone, config.audio_backbone = "features", "vggish"
  config.visual_feature_dim, config.grid_size = 8, (8, 8)
  model = Stan(config, C, rngs=nnx.Rngs(0))
  encode = nnx.jit(lambda model, inputs: model.encode(inputs))
  _, audio_vec = encode(
      model, {"visual_features": jnp.zeros((1, 1, 8, 8, 8)), "log_mel": jnp.ones((1, 1, 96, 64))}
  )
  assert audio_vec.shape == (1, 1, 128)
  assert _num_params(model.audio_backbone) == 72_141_184  # VGGish


def _batch_stats(model) -> list:
  """Every BatchNorm running mean and var of the visual backbone, in a fixed order."""
  return [
      np.asarray(v[...])
      for _, v in sorted(
          nnx.to_flat_state(nnx.state(model.visual_backbone, nnx.BatchStat)), key=lambda kv: kv[0]
      )
  ]


@nnx.jit
def _train_forward(model, inputs):
  return model(inputs, train=True)["logits"]


def test_padded_segments_do_not_enter_batch_norm_statistics():
  """A train-mode forward updates the BatchNorm running statistics from the frames of valid
  segments only: garbage in the padded segment changes nothing, and the statistics equal
  those of the backbone run on the valid frames alone."""
  inputs = make_inputs()
  garbage = np.asarray(inputs["frames"]).copy()
  garbage[~MASK] = 255  # video 0's padded segment: white frames
  zeroed = garbage.copy()
  zeroed[~MASK] = 0
  stats = []
  for frames in (garbage, zeroed):
    model = make_model()
    _train_forward(model, {**inputs, "frames": jnp.asarray(frames)})
    stats.append(_batch_stats(model))
  valid_only = make_model()
  images = encoders.normalize_frames(jnp.asarray(garbage[MASK].reshape((-1, FRAME, FRAME, 3))))
  nnx.jit(lambda backbone, x: backbone(x, train=True))(valid_only.visual_backbone, images)
  assert len(stats[0]) >= 4
  for garbage_stat, zeroed_stat, valid_stat in zip(*stats, _batch_stats(valid_only)):
    np.testing.assert_allclose(garbage_stat, zeroed_stat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(garbage_stat, valid_stat, rtol=1e-5, atol=1e-6)
  # Without a segment mask every frame counts, so the garbage does change the statistics.
  model = make_model()
  _train_forward(
      model,
      {key: value for key, value in inputs.items() if key != "segment_mask"}
      | {"frames": jnp.asarray(garbage)},
  )
  assert any(not np.allclose(a, b, rtol=1e-3) for a, b in zip(_batch_stats(model), stats[0]))
