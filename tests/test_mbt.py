"""The joint transformer is MBT (Nagrani et al. 2021): a stream per modality, fusion only
through the bottleneck tokens from layer L_f on, the mean of the per-modality logits, and a
rollout that follows the bottleneck path (stt/models/joint_transformer.py)."""

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.common import default_model_config
from stt import models
from stt import reproduce_runs
from stt import reproduce_suites
from stt.explain import explainers
from stt.explain import sanity
from stt.explain import suite
from stt.models import joint_transformer

B, T, C, GRID, CV, CA, K = 3, 4, 3, (2, 2), 5, 4, 2
N = GRID[0] * GRID[1]
S = 2 + T + T * N + K  # [CLS_a, a_1..a_T, CLS_v, cells, b_1..b_K]
CLS_A, CLS_V = 0, T + 1
AUDIO = np.r_[CLS_A : T + 1]  # the audio stream's tokens, CLS_a included
VISUAL = np.r_[CLS_V : CLS_V + 1 + T * N]
BOTTLENECK = np.r_[S - K : S]


def _model(num_layers=2, fusion_layer=0, num_bottlenecks=K, **extra):
  config = default_model_config()
  config.update(
      name="joint_transformer",
      visual_backbone="features",
      audio_backbone="features",
      visual_feature_dim=CV,
      audio_feature_dim=CA,
      grid_size=GRID,
      width=8,
      num_heads=2,
      num_segments=T,
      dropout=0.0,
      num_layers=num_layers,
      fusion_layer=fusion_layer,
      num_bottlenecks=num_bottlenecks,
  )
  config.update(**extra)
  return models.create_model(config, C, rngs=nnx.Rngs(0))


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  return {
      "visual_features": jnp.asarray(rng.normal(size=(B, T) + GRID + (CV,)), jnp.float32),
      "audio_features": jnp.asarray(rng.normal(size=(B, T, CA)), jnp.float32),
      "segment_mask": jnp.asarray(np.arange(T)[None] < np.array([[4], [3], [2]])),
  }


def _fuse(model, inputs, swap=None, num_layers=None):
  """hidden [B,S,D] of `inputs`, with the 'audio' or 'visual' input taken from seed 1."""
  other = _inputs(1)
  visual = other["visual_features"] if swap == "visual" else inputs["visual_features"]
  audio = other["audio_features"] if swap == "audio" else inputs["audio_features"]
  cells, audio_tokens = model.embed(visual, audio)
  return model.fuse(cells, audio_tokens, inputs["segment_mask"], num_layers=num_layers)[0]


def _largest_change(a, b, tokens):
  return float(jnp.abs(a[:, tokens] - b[:, tokens]).max())


def test_without_fusion_layers_the_visual_stream_ignores_the_audio():
  """L_f = L: two unimodal transformers, fused only by averaging their logits."""
  model, inputs = _model(num_layers=2, fusion_layer=2), _inputs()
  clean, audio_changed = _fuse(model, inputs), _fuse(model, inputs, swap="audio")
  assert _largest_change(clean, audio_changed, VISUAL) == 0.0
  assert _largest_change(clean, audio_changed, AUDIO) > 1e-2
  clean_logits = model.stream_logits(clean)
  changed_logits = model.stream_logits(audio_changed)
  np.testing.assert_array_equal(changed_logits[1], clean_logits[0 + 1])  # visual logits
  assert float(jnp.abs(changed_logits[0] - clean_logits[0]).max()) > 1e-3


def test_below_the_fusion_layer_each_stream_sees_only_its_modality():
  model, inputs = _model(num_layers=3, fusion_layer=1), _inputs()
  for swap, kept in (("visual", AUDIO), ("audio", VISUAL)):
    before = _largest_change(
        _fuse(model, inputs, num_layers=1), _fuse(model, inputs, swap, num_layers=1), kept
    )
    after = _largest_change(_fuse(model, inputs), _fuse(model, inputs, swap), kept)
    assert before == 0.0 and after > 1e-3, (swap, before, after)


@pytest.mark.parametrize(
    "num_layers, fusion_layer, num_bottlenecks, crosses",
    [(2, 0, K, True), (2, 0, 0, False), (2, 1, K, False), (3, 1, K, True)],
)
def test_the_modalities_meet_only_through_two_fusion_layers_of_bottlenecks(
    num_layers, fusion_layer, num_bottlenecks, crosses
):
  """No bottleneck tokens: no cross-talk at all. One fusion layer: the bottlenecks read both
  modalities, but no token reads the updated bottlenecks; it takes two."""
  model, inputs = _model(num_layers, fusion_layer, num_bottlenecks), _inputs()
  clean = _fuse(model, inputs)
  for swap, kept_cls in (("audio", CLS_V), ("visual", CLS_A)):
    changed = _largest_change(clean, _fuse(model, inputs, swap), [kept_cls])
    assert changed > 1e-4 if crosses else changed == 0.0, (swap, changed)


def test_logits_are_the_mean_of_the_per_modality_logits_of_one_shared_head():
  model, inputs = _model(), _inputs()
  out = model(inputs)
  cells, audio = model.embed(inputs["visual_features"], inputs["audio_features"])
  hidden = model.fuse(cells, audio, inputs["segment_mask"])[0]
  audio_logits, visual_logits = model.stream_logits(hidden)
  np.testing.assert_allclose(out["logits"], (audio_logits + visual_logits) / 2, atol=1e-6)
  np.testing.assert_allclose(visual_logits, model.classifier(hidden[:, CLS_V]), atol=1e-6)
  np.testing.assert_allclose(audio_logits, model.classifier(hidden[:, CLS_A]), atol=1e-6)
  assert float(jnp.abs(audio_logits - visual_logits).max()) > 1e-3


def test_token_attention_follows_the_streams_and_the_bottlenecks():
  model, inputs = _model(num_layers=3, fusion_layer=1), _inputs()
  attention = np.asarray(model(inputs)["explanations"]["token_attention"])  # [L,B,H,S,S]
  assert attention.shape == (3, B, 2, S, S)
  np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
  group = np.zeros(S, int)
  group[VISUAL], group[BOTTLENECK] = 1, 2  # 0: audio stream
  segment = np.full(S, -1)
  segment[1 : T + 1], segment[CLS_V + 1 : CLS_V + 1 + T * N] = np.arange(T), np.repeat(
      np.arange(T), N
  )
  mask = np.asarray(inputs["segment_mask"])
  for layer in range(3):
    fused = layer >= 1
    query, key = group[:, None], group[None, :]
    allowed = (query == key) | (fused & ((query == 2) | (key == 2)))
    if not fused:  # a bottleneck not yet used stays itself
      allowed[BOTTLENECK] = False
      allowed[np.ix_(BOTTLENECK, BOTTLENECK)] = np.eye(K, dtype=bool)
    for video in range(B):
      padded_key = (segment >= 0) & ~mask[video][np.maximum(segment, 0)]
      blocked = ~allowed | padded_key[None, :]
      layer_attention = attention[layer, video]
      assert (layer_attention[..., blocked] == 0).all(), (layer, video)
      assert (layer_attention[..., ~blocked] > 0).all(), (layer, video)


def test_rollout_follows_the_bottleneck_path():
  """Rollout = q (A_L+I)/2 ... (A_1+I)/2 with q = 1/2 on each CLS; a cell's relevance reaches
  CLS_a only through the bottlenecks (none without fusion)."""
  model, inputs = _model(num_layers=2, fusion_layer=0), _inputs()
  attention = np.asarray(model(inputs)["explanations"]["token_attention"])
  maps = jax.tree.map(np.asarray, nnx.jit(explainers.rollout)(model, inputs))
  mask = np.asarray(inputs["segment_mask"])
  cells = np.r_[CLS_V + 1 : CLS_V + 1 + T * N]
  for video in range(B):
    rollout = np.eye(S)
    for layer in attention[:, video].mean(axis=1):  # first layer to last
      rollout = (layer + np.eye(S)) / 2 @ rollout
    relevance = (rollout[CLS_A] + rollout[CLS_V]) / 2
    where = relevance[cells].reshape((T,) + GRID)
    when = relevance[1 : T + 1] + where.sum(axis=(1, 2))
    assert (when[~mask[video]] == 0).all()
    np.testing.assert_allclose(maps["where"][video], where / where.sum(), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(maps["when"][video], when / when.sum(), rtol=1e-4, atol=1e-8)
    assert rollout[CLS_A][cells].sum() > 1e-3  # visual relevance through the bottlenecks
  unfused = _model(num_layers=2, fusion_layer=2)
  attention = np.asarray(unfused(inputs)["explanations"]["token_attention"])[:, 0].mean(axis=1)
  rollout = np.eye(S)
  for layer in attention:
    rollout = (layer + np.eye(S)) / 2 @ rollout
  assert (rollout[CLS_A][cells] == 0).all() and (rollout[CLS_V][1 : T + 1] == 0).all()


@pytest.mark.parametrize("token_pool", [1, 2])
def test_the_suites_explainers_and_sanity_blocks_run_on_it(token_pool):
  grid = (4, 4) if token_pool == 2 else GRID
  model = _model(grid_size=grid, token_pool=token_pool)
  rng = np.random.default_rng(0)
  batch = {
      **_inputs(),
      "visual_features": jnp.asarray(rng.normal(size=(B, T) + grid + (CV,)), jnp.float32),
      "label": jnp.asarray([0, 1, 2]),
  }
  applicable = [
      name
      for name in ("attention", "rollout", "gradient", "gradcam", "grad_x_input", "random")
      if explainers.EXPLAINERS[name].applies_to(model)
  ]
  assert applicable == ["rollout", "gradient", "gradcam", "grad_x_input", "random"]
  for name in applicable:
    out = nnx.jit(
        lambda m, b, name=name: suite._explain_batch(
            m, b, name=name, mode="feature", temporal_modality="both"
        )
    )(model, batch)
    assert out["where"].shape == (B, T) + grid and out["when"].shape == (B, T), name
    for key, value in out.items():
      assert np.isfinite(np.asarray(value)).all(), (name, key)
  blocks = [name for name, _ in sanity.parameter_blocks(model)]
  assert blocks == ["classifier", "transformer", "embedding", "backbones"][: len(blocks)]


def test_fusion_layer_must_be_a_layer_boundary():
  with pytest.raises(ValueError, match=r"fusion_layer must be in \[0, num_layers=2\]"):
    _model(num_layers=2, fusion_layer=3)
  assert joint_transformer.DEFAULT_FUSION_LAYER == 0


def test_the_ablation_suite_measures_the_joint_transformer_at_one_token_per_cell(tmp_path):
  runs = reproduce_runs.plan(
      reproduce_suites.SUITES["joint_token_pool"], epath.Path(tmp_path), seeds=1
  )
  commands = {run.row.name: " ".join(run.command) for run in runs}
  command = commands["joint_transformer_token_pool_1"]
  for flag in ("model.name=joint_transformer", "model.num_layers=2", "model.token_pool=1"):
    assert f"--config.{flag}" in command, flag
  assert "configs/synthetic.py" in command
  row = next(run.row for run in runs if run.row.name == "joint_transformer_token_pool_1")
  assert "rollout" in reproduce_suites.explainers_for(row, reproduce_suites.EXPLAINERS)
