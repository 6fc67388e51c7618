"""Attention building blocks of STAN: spatial "where", temporal transformer, pooling "when".

Shape letters: B batch, T segments, N = h*w visual cells, D width, H heads, S sequence
length (2T in STAN's cross-modal transformer), L transformer layers.

All softmaxes are computed in float32; the attention weights returned as explanations
are float32. Activations use the module's compute `dtype`, parameters stay float32.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

SPATIAL_QUERIES = ("audio", "learned", "none")
SPATIAL_SCORINGS = ("dot", "additive")
TEMPORAL_POOLS = ("attention", "mean")

# Masked logits get this finite value (not -inf) so that gradients stay finite.
_MASKED_LOGIT = -1e30
_INIT = nnx.initializers.normal(stddev=0.02)


def masked_softmax(logits: jax.Array, mask: jax.Array | None, axis: int = -1) -> jax.Array:
  """float32 softmax over `axis`; entries where `mask` is False get exactly 0 weight.

  `mask` broadcasts against `logits`. A slice with no valid entry returns all zeros.
  """
  logits = logits.astype(jnp.float32)
  if mask is None:
    return jax.nn.softmax(logits, axis=axis)
  mask = jnp.broadcast_to(mask, logits.shape)
  probs = jax.nn.softmax(jnp.where(mask, logits, _MASKED_LOGIT), axis=axis)
  return jnp.where(mask, probs, 0.0)


def _linear(d_in: int, d_out: int, dtype, rngs: nnx.Rngs, use_bias: bool = True) -> nnx.Linear:
  return nnx.Linear(d_in, d_out, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


class AudioGuidedSpatialAttention(nnx.Module):
  """Per-segment multi-head attention of one query over the N visual cells ("where").

  spatial_query:
    'audio'   : the query is the segment's audio token (default).
    'learned' : a learned query vector shared by all segments.
    'none'    : no attention; uniform mean pool (alpha = 1/N).

  scoring (how head h scores cell n against the query q, both width D, heads of D/H dims):
    'dot'      : scaled dot product, (W_q q + b_q)_h . (W_k c_n)_h / sqrt(D/H) (default).
    'additive' : AVEL's additive tanh scoring per head (Tian et al. 2018; stt/models/avel.py),
                 w_h^T tanh((W_k c_n)_h + (W_q q + b_q)_h) with a learned w_h [D/H]. With one
                 head it is AVEL's alpha_t = softmax(w^T tanh(W_v v + W_a a)) exactly.
  """

  def __init__(
      self,
      width: int,
      num_heads: int,
      spatial_query: str = "audio",
      *,
      scoring: str = "dot",
      dtype=jnp.float32,
      rngs: nnx.Rngs,
  ):
    if spatial_query not in SPATIAL_QUERIES:
      raise ValueError(f"spatial_query must be one of {SPATIAL_QUERIES}, got {spatial_query!r}")
    if scoring not in SPATIAL_SCORINGS:
      raise ValueError(f"scoring must be one of {SPATIAL_SCORINGS}, got {scoring!r}")
    if width % num_heads:
      raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
    self.width, self.num_heads, self.head_dim = width, num_heads, width // num_heads
    self.spatial_query, self.scoring = spatial_query, scoring
    self.dtype = dtype
    if spatial_query != "none":
      self.query = _linear(width, width, dtype, rngs)
      # No key bias: it adds the same logit to every cell, so it would get no gradient.
      self.key = _linear(width, width, dtype, rngs, use_bias=False)
    if spatial_query == "learned":
      self.learned_query = nnx.Param(_INIT(rngs.params(), (width,), jnp.float32))
    self.value = _linear(width, width, dtype, rngs)
    self.out = _linear(width, width, dtype, rngs)
    if scoring == "additive" and spatial_query != "none":
      # w_h per head: [H, D/H], fan-in D/H (as AVEL's Linear(D, 1) score has fan-in D).
      init = nnx.initializers.lecun_normal(in_axis=-1, out_axis=-2)
      self.score = nnx.Param(init(rngs.params(), (num_heads, self.head_dim), jnp.float32))

  def __call__(self, audio_tokens: jax.Array, visual_cells: jax.Array):
    """audio_tokens [B,T,D], visual_cells [B,T,N,D] ->
    (attended [B,T,D], alpha [B,T,H,N] float32, summing to 1 over N).

    With one query per segment, neither the keys nor the values of the N cells are computed:
    q_h . (W_k c_n)_h = (W_k,h q_h) . c_n, and since alpha sums to 1 over n,
    sum_n alpha_hn (W_v c_n + b_v)_h = W_v,h (sum_n alpha_hn c_n) + b_v,h. The result equals
    the textbook form (tested) at a fraction of its cost: the two [B*T*N, D] x [D, D] matmuls
    and their head transposes were most of a training step's time (benchmarks/RESULTS.md).
    Additive scoring needs every cell's W_k c_n (the tanh is not linear), so it computes them.
    """
    b, t, n, d = visual_cells.shape
    heads, dh = self.num_heads, self.head_dim
    cells = visual_cells.astype(self.dtype)
    if self.spatial_query == "none":
      alpha = jnp.full((b, t, heads, n), 1.0 / n, jnp.float32)
    else:
      if self.spatial_query == "audio":
        query_in = audio_tokens
      else:
        query_in = jnp.broadcast_to(self.learned_query[...].astype(self.dtype), (b, t, self.width))
      q = self.query(query_in).reshape(b, t, heads, dh)
      key_kernel = self.key.kernel[...].astype(self.dtype).reshape(d, heads, dh)
      if self.scoring == "additive":
        keys = jnp.einsum("btnd,dhe->btnhe", cells, key_kernel)  # [B,T,N,H,D/H]
        hidden = jnp.tanh(keys + q[:, :, None])
        logits = jnp.einsum("btnhe,he->bthn", hidden, self.score[...].astype(self.dtype))
      else:
        folded_query = jnp.einsum("bthe,dhe->bthd", q, key_kernel)  # [B,T,H,D]
        logits = jnp.einsum("bthd,btnd->bthn", folded_query, cells) / jnp.sqrt(dh).astype(q.dtype)
      alpha = masked_softmax(logits, None, axis=-1)
    pooled_cells = jnp.einsum("bthn,btnd->bthd", alpha.astype(self.dtype), cells)  # [B,T,H,D]
    value_kernel = self.value.kernel[...].astype(self.dtype).reshape(d, heads, dh)
    attended = jnp.einsum("bthd,dhe->bthe", pooled_cells, value_kernel)
    attended = attended + self.value.bias[...].astype(self.dtype).reshape(heads, dh)
    return self.out(attended.reshape(b, t, self.width)), alpha


class MultiHeadSelfAttention(nnx.Module):
  """Multi-head self-attention that also returns its attention probabilities."""

  def __init__(
      self, width: int, num_heads: int, dropout: float, *, dtype=jnp.float32, rngs: nnx.Rngs
  ):
    if width % num_heads:
      raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
    self.width, self.num_heads, self.head_dim = width, num_heads, width // num_heads
    self.query = _linear(width, width, dtype, rngs)
    self.key = _linear(width, width, dtype, rngs, use_bias=False)  # see spatial attention
    self.value = _linear(width, width, dtype, rngs)
    self.out = _linear(width, width, dtype, rngs)
    self.attention_dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array, *, train: bool):
    """x [B,S,D], mask [B,S] bool (keys) or [B,S,S] bool (query, key) ->
    (y [B,S,D], probs [B,H,S,S] float32).

    probs[b, h, i, j] is the weight query i puts on key j; it is exactly 0 where mask[b, j]
    (or mask[b, i, j]) is False. Dropout acts on the weights used, not on the returned probs.
    """
    b, s, _ = x.shape
    heads, dh = self.num_heads, self.head_dim
    q = self.query(x).reshape(b, s, heads, dh)
    k = self.key(x).reshape(b, s, heads, dh)
    v = self.value(x).reshape(b, s, heads, dh)
    logits = jnp.einsum("bihd,bjhd->bhij", q, k) / jnp.sqrt(dh).astype(q.dtype)
    mask = mask[:, None, None, :] if mask.ndim == 2 else mask[:, None, :, :]
    probs = masked_softmax(logits, mask, axis=-1)
    weights = self.attention_dropout(probs, deterministic=not train)
    y = jnp.einsum("bhij,bjhd->bihd", weights.astype(v.dtype), v)
    return self.out(y.reshape(b, s, self.width)), probs


class TransformerBlock(nnx.Module):
  """Pre-LN block: x + Drop(MHSA(LN(x))), then x + Drop(MLP(LN(x)))."""

  def __init__(
      self,
      width: int,
      num_heads: int,
      mlp_ratio: int,
      dropout: float,
      *,
      dtype=jnp.float32,
      rngs: nnx.Rngs,
  ):
    norm = lambda: nnx.LayerNorm(width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    self.attention_norm = norm()
    self.attention = MultiHeadSelfAttention(width, num_heads, dropout, dtype=dtype, rngs=rngs)
    self.mlp_norm = norm()
    self.mlp_in = _linear(width, width * mlp_ratio, dtype, rngs)
    self.mlp_out = _linear(width * mlp_ratio, width, dtype, rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array, *, train: bool):
    """x [B,S,D], mask [B,S] or [B,S,S] (MultiHeadSelfAttention) -> (x [B,S,D], probs [B,H,S,S])."""
    y, probs = self.attention(self.attention_norm(x), mask, train=train)
    x = x + self.dropout(y, deterministic=not train)
    y = self.mlp_out(self.dropout(nnx.gelu(self.mlp_in(self.mlp_norm(x))), deterministic=not train))
    x = x + self.dropout(y, deterministic=not train)
    return x, probs


class CrossModalTransformer(nnx.Module):
  """L pre-LN transformer blocks, final LayerNorm: STAN's over the 2T tokens [a_1..a_T,
  v_1..v_T]; joint_transformer's, one per modality stream (its `fuse` runs their blocks)."""

  def __init__(
      self,
      width: int,
      num_heads: int,
      num_layers: int,
      mlp_ratio: int,
      dropout: float,
      *,
      dtype=jnp.float32,
      rngs: nnx.Rngs,
  ):
    self.blocks = nnx.List(
        [
            TransformerBlock(width, num_heads, mlp_ratio, dropout, dtype=dtype, rngs=rngs)
            for _ in range(num_layers)
        ]
    )
    self.final_norm = nnx.LayerNorm(width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, tokens: jax.Array, mask: jax.Array, *, train: bool):
    """tokens [B,S,D], mask [B,S] or [B,S,S] bool (MultiHeadSelfAttention) ->
    (hidden [B,S,D], probs [L,B,H,S,S] float32)."""
    all_probs = []
    for block in self.blocks:
      tokens, probs = block(tokens, mask, train=train)
      all_probs.append(probs)
    return self.final_norm(tokens), jnp.stack(all_probs)


class TemporalAttentionPool(nnx.Module):
  """Pools segments into one vector ("when").

  'attention': beta_t = softmax_t over valid segments of w^T tanh(U h_t); z = sum_t beta_t h_t.
  'mean'     : beta uniform over valid segments.
  Padded segments get exactly zero beta.
  """

  def __init__(
      self, width: int, temporal_pool: str = "attention", *, dtype=jnp.float32, rngs: nnx.Rngs
  ):
    if temporal_pool not in TEMPORAL_POOLS:
      raise ValueError(f"temporal_pool must be one of {TEMPORAL_POOLS}, got {temporal_pool!r}")
    self.temporal_pool = temporal_pool
    if temporal_pool == "attention":
      self.hidden = _linear(width, width, dtype, rngs)
      # No bias on the score: a constant shift of all scores gets no gradient.
      self.score = _linear(width, 1, dtype, rngs, use_bias=False)

  def __call__(self, h: jax.Array, segment_mask: jax.Array, values: jax.Array | None = None):
    """h [B,T,D] (scored), segment_mask [B,T] bool, values [B,T,D'] (pooled; default h).

    Returns (z [B,D'], beta [B,T] float32).
    """
    values = h if values is None else values
    if self.temporal_pool == "attention":
      scores = self.score(jnp.tanh(self.hidden(h)))[..., 0]
    else:
      scores = jnp.zeros(h.shape[:2], jnp.float32)
    beta = masked_softmax(scores, segment_mask, axis=-1)
    z = jnp.einsum("bt,btd->bd", beta.astype(values.dtype), values)
    return z, beta
