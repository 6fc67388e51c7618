r"""Joint transformer: MBT, the compared model of Nagrani et al., "Attention Bottlenecks for
Multimodal Fusion" (NeurIPS 2021), whose explanation is attention rollout.

Shape letters as in stan.py: B videos, T segments, h x w cells of the visual map, D width,
C classes, L transformer layers, H heads; p = `model.token_pool`, N = (h/p)(w/p) visual tokens
per segment; K = `model.num_bottlenecks` bottleneck tokens, L_f = `model.fusion_layer`.

    visual_map [B,T,h,w,Cv] --mean over p x p cells (p = 1: none)--> [B,T,h/p,w/p,Cv]
                            --Linear, LayerNorm per token, + spatial + temporal position-->
                                                                       cells [B,T,N,D]
    audio_vec [B,T,Ca]      --Linear, LayerNorm, + temporal position--> audio [B,T,D]
    audio stream  [CLS_a, a_1..a_T]                (1 + T tokens)
    visual stream [CLS_v, v_{1,1}..v_{T,N}]        (1 + T*N tokens, cells row-major)
    bottlenecks   [b_1..b_K]                       (learned, used from layer L_f on)

Each modality has its own CLS token and its own L pre-LN transformer blocks (two
layers.CrossModalTransformer, `audio_transformer` and `visual_transformer`). Layer l (0-based):

    l <  L_f: each stream's block attends within its own tokens only;
    l >= L_f: each stream's block attends over [its tokens, bottlenecks], giving
              the stream's tokens and its copy of the updated bottlenecks; the bottlenecks
              become the mean of the two copies (MBT's bottleneck fusion).

The keys of padded segments (segment_mask False: the segment's audio token and its N cells) are
masked for every query. The modalities exchange information only through the bottlenecks, and
it takes two fusion layers (modality -> bottleneck -> other modality): with
L - L_f < 2 (or K = 0) the two streams are independent up to the logits. Then

    logits = (Linear(final CLS_a) + Linear(final CLS_v)) / 2       [B,C]

one linear head shared by both CLS tokens and the pre-softmax logits averaged, as in MBT's
classification (the final CLS token of each modality through the same linear classifier);
`stream_logits` gives the two. segment logits (segment_head, not in MBT): Linear([hidden a_t ;
mean over n of hidden v_{t,n}]) [B,T,C+1].

Attention for rollout. `explanations` holds `token_attention` [L,B,H,S,S] over all
S = 2 + T + T*N + K tokens in the order `[CLS_a, a_1..a_T, CLS_v, cells, b_1..b_K]`
(`split_tokens`): layer l's weights with which each token's update reads every token,

    audio rows:      the audio block's attention over its keys (audio stream [, bottlenecks]);
    visual rows:     the visual block's, likewise; 0 on the other modality's tokens;
    bottleneck rows: l >= L_f: half the audio block's bottleneck rows + half the visual
                     block's (the bottleneck update is the mean of the two); l < L_f: the
                     identity (a bottleneck is not yet used: it stays itself).

Every row sums to 1 (head h of both streams in slot h). Rollout (Abnar & Zuidema 2020,
stt/explain/explainers.py `rollout`) multiplies these (A + I)/2 layer by layer and reads out
q = 1/2 on CLS_a and 1/2 on CLS_v (the logits' mean): it is rollout per stream with the
bottleneck tokens shared, so a cell's relevance reaches the prediction through CLS_v directly
and through the bottlenecks into the audio stream's CLS_a (and the other way round).
The model has no "where" or "when" of its own, so the `attention` explainer does not apply.

How it departs from MBT. MBT's tokens are ViT patches and spectrogram patches, initialised from
ImageNet-21K ViT-Base (12 layers, L_f = 8 in its best setting); here they are the backbones' grid
cells and per-segment audio vectors, as for the other models, the transformer is trained from
scratch, and the suites use 2 layers with L_f = 0 (`fusion_layer`; fusion from the first layer,
MBT's "early" bottleneck fusion) so that the two fusion layers cross-modal exchange needs fit.

Token pooling. Self-attention costs O(tokens^2) per stream: at the synthetic size (8 x 8 cells,
T = 10) the visual stream holds 1 + 640 + K tokens. `model.token_pool = p` makes each visual
token the mean of a p x p block of cells (as MBT's tokens are patches), 1 + 160 + K at p = 2.
Rollout's "where" is then per token, spread evenly over the token's p x p cells (`token_grid` vs
`grid_size`); the gradient explainers still see every cell of the visual map.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from stt.models import encoders
from stt.models import layers
from stt.models import two_stream

DEFAULT_NUM_BOTTLENECKS = 4  # when the model config has no num_bottlenecks (older runs)
DEFAULT_FUSION_LAYER = 0  # when the model config has no fusion_layer
_EMBED_INIT = nnx.initializers.normal(stddev=0.02)


def split_tokens(x: jax.Array, num_segments: int, num_cells: int, num_bottlenecks: int):
  """x [B,S,...] in token order [CLS_a, a_1..a_T, CLS_v, cells, b_1..b_K] -> (CLS_a [B,...],
  audio [B,T,...], CLS_v [B,...], cells [B,T,N,...], bottlenecks [B,K,...])."""
  t, n, k = num_segments, num_cells, num_bottlenecks
  cells = x[:, t + 2 : t + 2 + t * n]
  return (
      x[:, 0],
      x[:, 1 : t + 1],
      x[:, t + 1],
      cells.reshape((-1, t, n) + x.shape[2:]),
      x[:, x.shape[1] - k :],
  )


def _attention_rows(probs: jax.Array, stream_size: int, others: int, first: bool):
  """One stream's attention probs [B,H,s+k,s+k] (stream tokens, then k bottlenecks) -> (its
  rows over all S keys [B,H,s,S], its bottleneck rows over all S keys [B,H,k,S]); `others`
  tokens of the other stream sit after (first) or before (not first) this stream's."""
  s = stream_size
  pad = lambda x: [x, jnp.zeros(x.shape[:-1] + (others,), x.dtype)]
  place = lambda x: jnp.concatenate(
      (pad(x[..., :s]) if first else pad(x[..., :s])[::-1]) + [x[..., s:]], axis=-1
  )
  return place(probs[:, :, :s]), place(probs[:, :, s:])


def assemble_attention(
    audio_probs: jax.Array, visual_probs: jax.Array, num_bottlenecks: int, fused: bool
) -> jax.Array:
  """One layer's per-stream attention -> [B,H,S,S] over [CLS_a, audio, CLS_v, cells,
  bottlenecks] (the module docstring's rule).

  audio_probs [B,H,Sa',Sa'], visual_probs [B,H,Sv',Sv']: each stream's block, over its own
  tokens and, if `fused`, then the K bottlenecks (Sa' = Sa + K), else over its own tokens only.
  """
  k = num_bottlenecks
  k_used = k if fused else 0
  sa, sv = audio_probs.shape[-1] - k_used, visual_probs.shape[-1] - k_used
  if not fused:  # the blocks did not read the bottlenecks: give them K zero columns
    zeros = lambda p: jnp.zeros(p.shape[:-1] + (k,), p.dtype)
    audio_probs = jnp.concatenate([audio_probs, zeros(audio_probs)], axis=-1)
    visual_probs = jnp.concatenate([visual_probs, zeros(visual_probs)], axis=-1)
  audio_rows, audio_bottleneck = _attention_rows(audio_probs, sa, sv, first=True)
  visual_rows, visual_bottleneck = _attention_rows(visual_probs, sv, sa, first=False)
  b, h = audio_probs.shape[:2]
  if fused:
    bottleneck_rows = 0.5 * (audio_bottleneck + visual_bottleneck)
  else:  # not used yet: each stays itself
    eye = jnp.eye(k, sa + sv + k, sa + sv, dtype=audio_probs.dtype)
    bottleneck_rows = jnp.broadcast_to(eye, (b, h, k, sa + sv + k))
  return jnp.concatenate([audio_rows, visual_rows, bottleneck_rows], axis=2)


class JointTransformer(two_stream.TwoStreamModel):
  """MBT; see the module docstring. Follows the model interface of stt/models/__init__.py."""

  EXPLANATIONS = ("token_attention",)
  PARAMETER_BLOCKS = (  # output to input, for the sanity checks (stt/explain/sanity.py)
      ("classifier", ("classifier", "segment_classifier")),
      (
          "transformer",
          (
              "audio_transformer",
              "visual_transformer",
              "audio_cls_token",
              "visual_cls_token",
              "bottleneck_tokens",
          ),
      ),
      (
          "embedding",
          (
              "visual_projection",
              "audio_projection",
              "visual_norm",
              "audio_norm",
              "spatial_position",
              "temporal_position",
          ),
      ),
      ("backbones", ("visual_backbone", "audio_backbone")),
  )

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int, *, rngs: nnx.Rngs):
    self.num_classes = num_classes
    self.dtype = jnp.dtype(config.dtype)
    self.grid_size = encoders.grid_size_of(config)
    self.num_bottlenecks = int(config.get("num_bottlenecks", DEFAULT_NUM_BOTTLENECKS))
    self.fusion_layer = int(config.get("fusion_layer", DEFAULT_FUSION_LAYER))
    self.num_layers = int(config.num_layers)
    self.token_pool = int(config.get("token_pool", 1))
    if self.token_pool < 1 or any(size % self.token_pool for size in self.grid_size):
      raise ValueError(
          f"model.token_pool must be >= 1 and divide the grid {self.grid_size}, "
          f"got {self.token_pool}"
      )
    self.token_grid = tuple(size // self.token_pool for size in self.grid_size)  # (h/p, w/p)
    # A pooled token mixes p x p cells: the perturbation tests then embed perturbed features.
    self.tokens_are_cells = self.token_pool == 1
    if self.num_bottlenecks < 0:
      raise ValueError(f"num_bottlenecks must be >= 0, got {self.num_bottlenecks}")
    if self.num_layers < 1:
      raise ValueError(f"joint_transformer needs num_layers >= 1, got {self.num_layers}")
    if not 0 <= self.fusion_layer <= self.num_layers:
      raise ValueError(
          f"model.fusion_layer must be in [0, num_layers={self.num_layers}], "
          f"got {self.fusion_layer}"
      )
    dtype, width = self.dtype, config.width
    num_cells = self.token_grid[0] * self.token_grid[1]
    linear = lambda d_in, d_out, dt=dtype: nnx.Linear(
        d_in, d_out, dtype=dt, param_dtype=jnp.float32, rngs=rngs
    )
    layer_norm = lambda: nnx.LayerNorm(width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    embedding = lambda *shape: nnx.Param(_EMBED_INIT(rngs.params(), shape))
    transformer = lambda: layers.CrossModalTransformer(
        width,
        config.num_heads,
        self.num_layers,
        config.mlp_ratio,
        config.dropout,
        dtype=dtype,
        rngs=rngs,
    )

    self.visual_backbone, visual_dim = encoders.make_visual_backbone(
        config.visual_backbone, config.visual_feature_dim, dtype=dtype, rngs=rngs
    )
    self.audio_backbone, audio_dim = encoders.make_audio_backbone(
        config.audio_backbone, config.audio_feature_dim, dtype=dtype, rngs=rngs
    )
    self.visual_projection = linear(visual_dim, width)
    self.visual_norm = layer_norm()
    self.audio_projection = linear(audio_dim, width)
    self.audio_norm = layer_norm()
    self.spatial_position = embedding(num_cells, width)
    self.temporal_position = embedding(config.num_segments, width)
    self.audio_cls_token = embedding(1, width)
    self.visual_cls_token = embedding(1, width)
    self.bottleneck_tokens = embedding(self.num_bottlenecks, width)
    self.token_dropout = nnx.Dropout(config.dropout, rngs=rngs)
    self.audio_transformer = transformer()
    self.visual_transformer = transformer()
    self.classifier = linear(width, num_classes, jnp.float32)  # shared by both CLS tokens
    self.segment_classifier = (
        linear(2 * width, num_classes + 1, jnp.float32) if config.segment_head else None
    )

  def encode(self, inputs: dict, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Backbones (encoders.encode): (visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca])."""
    return encoders.encode(
        self.visual_backbone, self.audio_backbone, inputs, dtype=self.dtype, train=train
    )

  def embed(self, visual_map: jax.Array, audio_vec: jax.Array, *, train: bool = False):
    """Per token: visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca] -> (cells [B,T,N,D],
    audio [B,T,D]); a token depends only on its own p x p cells (or audio vector) and its
    position."""
    b, t, h, w, _ = visual_map.shape
    if (h, w) != self.grid_size:
      raise ValueError(f"visual map grid {(h, w)} != config.grid_size {self.grid_size}")
    p = self.token_pool
    if p > 1:
      visual_map = visual_map.reshape(b, t, h // p, p, w // p, p, -1).mean(axis=(3, 5))
      h, w = self.token_grid
    if t > self.temporal_position.shape[0]:
      raise ValueError(f"{t} segments > config.num_segments {self.temporal_position.shape[0]}")
    deterministic = not train
    temporal = self.temporal_position[...][:t].astype(self.dtype)  # [T,D]
    spatial = self.spatial_position[...].astype(self.dtype)  # [N,D]
    cells = self.visual_norm(
        self.visual_projection(visual_map.reshape(b, t, h * w, -1).astype(self.dtype))
    )
    cells = self.token_dropout(cells + spatial + temporal[:, None, :], deterministic=deterministic)
    audio = self.audio_norm(self.audio_projection(audio_vec.astype(self.dtype)))
    audio = self.token_dropout(audio + temporal, deterministic=deterministic)
    return cells, audio

  def head_from_tokens(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> dict:
    """cells [B,T,N,D], audio [B,T,D] (from `embed`) -> the model interface's outputs, with
    explanations {'token_attention': [L,B,H,S,S] float32}."""
    hidden, token_attention = self.fuse(cells, audio, segment_mask, train=train)
    audio_logits, visual_logits = self.stream_logits(hidden)
    segment_logits = None
    if self.segment_classifier is not None:
      _, hidden_audio, _, hidden_cells, _ = split_tokens(
          hidden, *cells.shape[1:3], self.num_bottlenecks
      )
      per_segment = jnp.concatenate([hidden_audio, hidden_cells.mean(axis=2)], axis=-1)
      segment_logits = self.segment_classifier(per_segment.astype(jnp.float32))
    return {
        "logits": 0.5 * (audio_logits + visual_logits),
        "segment_logits": segment_logits,
        "explanations": {"token_attention": token_attention},
    }

  def num_segments_of(self, num_tokens: int) -> int:
    """T from the token count S = 2 + T (1 + N) + K."""
    num_cells = self.token_grid[0] * self.token_grid[1]
    return (num_tokens - 2 - self.num_bottlenecks) // (1 + num_cells)

  def stream_logits(self, hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
    """hidden [B,S,D] (from `fuse`) -> (audio logits, visual logits) [B,C] float32: the shared
    classifier on each stream's final CLS token; the model's logits are their mean."""
    t = self.num_segments_of(hidden.shape[1])
    audio_cls, visual_cls = hidden[:, 0], hidden[:, t + 1]
    return (
        self.classifier(audio_cls.astype(jnp.float32)),
        self.classifier(visual_cls.astype(jnp.float32)),
    )

  def rollout_readout(self, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """What attention rollout reads (stt/explain/explainers.py `rollout`): the per-layer
    attention [L,B,H,S,S] in token order (module docstring) and the readout q [B,S], 1/2 on
    CLS_a and 1/2 on CLS_v (the logits are the mean of the two CLS tokens' logits)."""
    attention = explanations["token_attention"]
    b, s = attention.shape[1], attention.shape[-1]
    t = self.num_segments_of(s)
    readout = jnp.zeros((b, s), jnp.float32).at[:, 0].set(0.5).at[:, t + 1].set(0.5)
    return attention, readout

  def rollout_maps(self, relevance: jax.Array, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """Rollout's relevance r [B,S] of the tokens -> (where [B,T,h,w], when [B,T]), unnormalised:
        when[t]      = r(a_t) + sum_{i,j} r(cell t,i,j)
        where[t,i,j] = r(cell t,i,j)   (every cell is a token; with token_pool = p, r of the
                                        token holding the cell, / p^2)
    The "where" is rollout's own, not attention's."""
    del explanations  # r holds all: the token layout gives T
    (h, w), p = self.token_grid, self.token_pool
    b, num_tokens = relevance.shape
    t = self.num_segments_of(num_tokens)
    _, audio, _, cells, _ = split_tokens(relevance, t, h * w, self.num_bottlenecks)
    where = jnp.repeat(jnp.repeat(cells.reshape(b, t, h, w), p, axis=2), p, axis=3) / p**2
    return where, audio + cells.sum(axis=-1)

  def fuse(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
      num_layers: int | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """The two streams and their bottlenecks: cells [B,T,N,D], audio [B,T,D] ->
    (hidden [B,S,D] after each stream's final LayerNorm, in the token order
    [CLS_a, a_1..a_T, CLS_v, cells, b_1..b_K], attention [L,B,H,S,S] float32).

    `num_layers` (default all) runs only the first layers, for tests and analysis; the
    bottlenecks of `hidden` are the last ones used (the learned tokens if none was)."""
    b, t, n, d = cells.shape
    dtype = audio.dtype
    if segment_mask is None:
      segment_mask = jnp.ones((b, t), bool)
    segment_mask = segment_mask.astype(bool)
    k = self.num_bottlenecks
    cls = lambda token: jnp.broadcast_to(token[...].astype(dtype), (b, 1, d))
    audio_x = jnp.concatenate([cls(self.audio_cls_token), audio], axis=1)  # [B,1+T,D]
    visual_x = jnp.concatenate(
        [cls(self.visual_cls_token), cells.reshape(b, t * n, d).astype(dtype)], axis=1
    )  # [B,1+T*N,D]
    bottlenecks = jnp.broadcast_to(self.bottleneck_tokens[...].astype(dtype), (b, k, d))
    always = jnp.ones((b, 1), bool)
    audio_keys = jnp.concatenate([always, segment_mask], axis=1)  # [B,1+T]
    visual_keys = jnp.concatenate([always, jnp.repeat(segment_mask, n, axis=1)], axis=1)
    bottleneck_keys = jnp.ones((b, k), bool)
    blocks = zip(self.audio_transformer.blocks, self.visual_transformer.blocks)
    attention = []
    for layer, (audio_block, visual_block) in enumerate(blocks):
      if num_layers is not None and layer >= num_layers:
        break
      fused = layer >= self.fusion_layer and k > 0
      if fused:  # MBT: each stream over [its tokens, bottlenecks], then the bottlenecks' mean
        audio_out, audio_probs = audio_block(
            jnp.concatenate([audio_x, bottlenecks], axis=1),
            jnp.concatenate([audio_keys, bottleneck_keys], axis=1),
            train=train,
        )
        visual_out, visual_probs = visual_block(
            jnp.concatenate([visual_x, bottlenecks], axis=1),
            jnp.concatenate([visual_keys, bottleneck_keys], axis=1),
            train=train,
        )
        audio_x, visual_x = audio_out[:, : 1 + t], visual_out[:, : 1 + t * n]
        bottlenecks = 0.5 * (audio_out[:, 1 + t :] + visual_out[:, 1 + t * n :])
      else:  # within each modality only
        audio_x, audio_probs = audio_block(audio_x, audio_keys, train=train)
        visual_x, visual_probs = visual_block(visual_x, visual_keys, train=train)
      attention.append(assemble_attention(audio_probs, visual_probs, k, fused))
    hidden = jnp.concatenate(
        [
            self.audio_transformer.final_norm(audio_x),
            self.visual_transformer.final_norm(visual_x),
            bottlenecks,
        ],
        axis=1,
    )
    return hidden, jnp.stack(attention)
