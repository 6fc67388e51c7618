r"""Joint transformer: an MBT-style compared model (Nagrani et al., "Attention Bottlenecks for
Multimodal Fusion", NeurIPS 2021), whose explanation is attention rollout.

Shape letters as in stan.py: B videos, T segments, h x w cells of the visual map, D width,
C classes, L transformer layers; p = `model.token_pool`, N = (h/p)(w/p) visual tokens per
segment; K = `model.num_bottlenecks` fusion-bottleneck tokens and S = 1 + K + T + T*N tokens.

    visual_map [B,T,h,w,Cv] --mean over p x p cells (p = 1: none)--> [B,T,h/p,w/p,Cv]
                            --Linear, LayerNorm per token, + spatial + temporal position-->
                                                                       cells [B,T,N,D]
    audio_vec [B,T,Ca]      --Linear, LayerNorm, + temporal position--> audio [B,T,D]
    tokens [B,S,D], in this order (`split_tokens`):
        [CLS, b_1..b_K, a_1..a_T, v_{1,1}..v_{1,N}, v_{2,1}, ..., v_{T,N}]   (cells row-major)
    L pre-LN transformer blocks (layers.CrossModalTransformer), each ONE self-attention over
    all S tokens under the fusion mask below                   -> hidden [B,S,D]
    logits = Linear(hidden CLS) [B,C]
    segment logits (segment_head): Linear([hidden a_t ; mean over n of hidden v_{t,n}]) [B,T,C+1]

The fusion mask (`FUSION_MASK`; row: the query's group, column: the key groups it may read):

    query \ key   CLS  bottleneck  audio  visual
    CLS            x       x         x      x
    bottleneck             x         x      x
    audio                  x         x
    visual                 x                x

and the keys of padded segments (segment_mask False: the segment's audio token and its N
cells) are masked for every query. No token but CLS reads CLS, so CLS is a read-out: audio and
visual tokens exchange information only through the K bottlenecks, MBT's information flow.
Cross-modal information reaches a modality token after two layers (modality -> bottleneck ->
other modality), so the bottlenecks carry something only when model.num_layers >= 2; CLS reads
both modalities from the first layer on.

How it differs from MBT. MBT runs a transformer per modality (in its fusion layers, each over its
own tokens and the bottlenecks, with its own weights) and sets the bottlenecks to the average of
the two modalities' updates; its first layers are unimodal, and it averages the logits of a CLS
token per modality. Here one set of weights runs one attention per layer over all tokens, the
mask giving the same routing: a bottleneck's update is one softmax over the bottleneck, audio and
visual keys (the modalities' shares learned, not fixed at one half), every layer fuses, and a
single CLS reads all tokens. One attention matrix per layer makes rollout the standard
computation (Abnar & Zuidema 2020, stt/explain/explainers.py `rollout`); MBT's tokens are ViT
patches, here they are the backbones' grid cells and per-segment audio vectors, as for the other
models. `explanations` holds only `token_attention` [L,B,heads,S,S] (the per-layer attention
weights, in the token order above): the model has no "where" or "when" of its own, so the
`attention` explainer does not apply to it.

Token pooling. Attention over all S tokens costs O(S^2): at the synthetic size (8 x 8 cells,
T = 10, S = 655) a training step is ~7x the FLOPs and ~10x the time of STAN's on a CPU, more
than the rest of the `synthetic` suite together. `model.token_pool = p` makes each visual token
the mean of a p x p block of cells (as MBT's tokens are patches), S = 175 at p = 2. Rollout's
"where" is then per token, spread evenly over the token's p x p cells (`token_grid` vs
`grid_size`); the gradient explainers still see every cell of the visual map.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stt.models import encoders
from stt.models import layers
from stt.models import two_stream

DEFAULT_NUM_BOTTLENECKS = 4  # when the model config has no num_bottlenecks (older runs)
CLS, BOTTLENECK, AUDIO, VISUAL = range(4)  # token groups, in token order
# FUSION_MASK[query group, key group]: whether a token of the first group attends to the second.
FUSION_MASK = np.array(
    [
        [True, True, True, True],  # CLS: everything
        [False, True, True, True],  # bottleneck: bottlenecks, audio and visual
        [False, True, True, False],  # audio: bottlenecks and audio
        [False, True, False, True],  # visual: bottlenecks and visual
    ]
)
_EMBED_INIT = nnx.initializers.normal(stddev=0.02)


def token_groups(num_bottlenecks: int, num_segments: int, num_cells: int) -> np.ndarray:
  """[S] int: the group (CLS, BOTTLENECK, AUDIO, VISUAL) of each token, in token order."""
  counts = [1, num_bottlenecks, num_segments, num_segments * num_cells]
  return np.repeat(np.arange(4), counts)


def fusion_mask(segment_mask: jax.Array, num_bottlenecks: int, num_cells: int) -> jax.Array:
  """segment_mask [B,T] bool -> attention mask [B,S,S] bool (query, key): FUSION_MASK between
  the tokens' groups, and False for the keys of padded segments."""
  b, t = segment_mask.shape
  groups = token_groups(num_bottlenecks, t, num_cells)
  allowed = FUSION_MASK[groups[:, None], groups[None, :]]  # [S,S], static
  valid_keys = jnp.concatenate(
      [
          jnp.ones((b, 1 + num_bottlenecks), bool),
          segment_mask,
          jnp.repeat(segment_mask, num_cells, axis=1),  # cell (t, n) is token t*N + n
      ],
      axis=1,
  )  # [B,S]
  return jnp.asarray(allowed)[None] & valid_keys[:, None, :]


def split_tokens(x: jax.Array, num_segments: int, num_cells: int):
  """x [B,S,...] in token order -> (CLS [B,...], bottlenecks [B,K,...], audio [B,T,...],
  cells [B,T,N,...])."""
  t, n = num_segments, num_cells
  cells = x[:, x.shape[1] - t * n :]
  audio = x[:, x.shape[1] - t * n - t : x.shape[1] - t * n]
  return x[:, 0], x[:, 1 : x.shape[1] - t * n - t], audio, cells.reshape((-1, t, n) + x.shape[2:])


class JointTransformer(two_stream.TwoStreamModel):
  """See the module docstring; follows the model interface of stt/models/__init__.py."""

  EXPLANATIONS = ("token_attention",)
  PARAMETER_BLOCKS = (  # output to input, for the sanity checks (stt/explain/sanity.py)
      ("classifier", ("classifier", "segment_classifier")),
      ("transformer", ("transformer", "cls_token", "bottleneck_tokens")),
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
    if config.num_layers < 1:
      raise ValueError(f"joint_transformer needs num_layers >= 1, got {config.num_layers}")
    dtype, width = self.dtype, config.width
    num_cells = self.token_grid[0] * self.token_grid[1]
    linear = lambda d_in, d_out, dt=dtype: nnx.Linear(
        d_in, d_out, dtype=dt, param_dtype=jnp.float32, rngs=rngs
    )
    layer_norm = lambda: nnx.LayerNorm(width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    embedding = lambda *shape: nnx.Param(_EMBED_INIT(rngs.params(), shape))

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
    self.cls_token = embedding(1, width)
    self.bottleneck_tokens = embedding(self.num_bottlenecks, width)
    self.token_dropout = nnx.Dropout(config.dropout, rngs=rngs)
    self.transformer = layers.CrossModalTransformer(
        width,
        config.num_heads,
        config.num_layers,
        config.mlp_ratio,
        config.dropout,
        dtype=dtype,
        rngs=rngs,
    )
    self.classifier = linear(width, num_classes, jnp.float32)
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
    explanations {'token_attention': [L,B,heads,S,S] float32}."""
    hidden, token_attention = self.fuse(cells, audio, segment_mask, train=train)
    cls, _, hidden_audio, hidden_cells = split_tokens(hidden, *cells.shape[1:3])
    segment_logits = None
    if self.segment_classifier is not None:
      per_segment = jnp.concatenate([hidden_audio, hidden_cells.mean(axis=2)], axis=-1)
      segment_logits = self.segment_classifier(per_segment.astype(jnp.float32))
    return {
        "logits": self.classifier(cls.astype(jnp.float32)),
        "segment_logits": segment_logits,
        "explanations": {"token_attention": token_attention},
    }

  def rollout_readout(self, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """What attention rollout reads (stt/explain/explainers.py `rollout`): the per-layer
    attention [L,B,heads,S,S] in token order and the readout q [B,S], CLS's one-hot (the logits
    read the CLS token only)."""
    attention = explanations["token_attention"]
    readout = jnp.zeros((attention.shape[1], attention.shape[-1]), jnp.float32).at[:, 0].set(1.0)
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
    t = (num_tokens - 1 - self.num_bottlenecks) // (1 + h * w)
    _, _, audio, cells = split_tokens(relevance, t, h * w)
    where = jnp.repeat(jnp.repeat(cells.reshape(b, t, h, w), p, axis=2), p, axis=3) / p**2
    return where, audio + cells.sum(axis=-1)

  def fuse(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> tuple[jax.Array, jax.Array]:
    """The transformer under the fusion mask: cells [B,T,N,D], audio [B,T,D] ->
    (hidden [B,S,D] in token order, attention [L,B,heads,S,S] float32)."""
    b, t, n, d = cells.shape
    if segment_mask is None:
      segment_mask = jnp.ones((b, t), bool)
    learned = jnp.concatenate([self.cls_token[...], self.bottleneck_tokens[...]])  # [1+K,D]
    tokens = jnp.concatenate(
        [
            jnp.broadcast_to(learned.astype(audio.dtype), (b,) + learned.shape),
            audio,
            cells.reshape(b, t * n, d).astype(audio.dtype),
        ],
        axis=1,
    )  # [B,S,D]
    mask = fusion_mask(segment_mask.astype(bool), self.num_bottlenecks, n)
    return self.transformer(tokens, mask, train=train)
