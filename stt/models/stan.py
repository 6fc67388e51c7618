"""STAN: space-time attention network for explainable audio-visual event recognition.

Shape letters: B videos, T segments, F frames per segment, H x W frame size, h x w = N
visual grid cells, Cv / Ca backbone channels, D width, C classes, L transformer layers.

    frames [B,T,F,H,W,3] uint8 --visual backbone, mean over F--> visual_map [B,T,h,w,Cv]
    log_mel [B,T,96,64]        --audio backbone-------------> audio_vec [B,T,Ca]
    project to D, add spatial / temporal / modality embeddings, LayerNorm
    "where": audio-guided spatial attention per segment      -> v_hat [B,T,D], alpha
    cross-modal transformer over [a_1..a_T, v_hat_1..v_hat_T] -> h^a, h^v [B,T,D]
    "when": attention pooling over valid segments per modality, scored from h^m_t, pooling
            the segment's own tokens a_t / v_hat_t (pool_values='local')  -> z^a, z^v [B,D], beta
            explanation "when" = beta^a * beta^v renormalised
    MLP([z^a; z^v]) -> logits [B,C];  optional Linear([h^a_t; h^v_t]) -> [B,T,C+1]

Ablation switches of the "where" (issue 29; defaults are the model above, docs/design.md §2):
model.spatial_scoring ('dot' | 'additive': AVEL's tanh scoring per head), model.spatial_heads
(the spatial attention's heads at the same width; 0: model.num_heads),
model.spatial_position_embedding (False: no cell position embedding, so alpha can only
follow the cells' content), model.spatial_aux_weight (> 0: AVEL's direct path from the loss
to alpha, a linear classifier on the segments' mean of v_hat_t whose cross-entropy is added to
the loss with this weight; its logits are the output 'auxiliary_logits' [B,C]).

`Stan` is a `two_stream.TwoStreamModel`: its `head` and `__call__` are the shared ones, which
split the forward pass at the backbone outputs (`encode`) and the per-token embedding (`embed`)
so that explainers (Grad-CAM, occlusion) and the perturbation tests can act on the visual
feature map. `head_from_tokens` is the spatial attention, then `head_from_attended`.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from stt.models import encoders
from stt.models import two_stream
from stt.models.layers import AudioGuidedSpatialAttention
from stt.models.layers import CrossModalTransformer
from stt.models.layers import TemporalAttentionPool

POOL_VALUES = ("local", "contextual")
_EMBED_INIT = nnx.initializers.normal(stddev=0.02)


def joint_when(beta_audio: jax.Array, beta_visual: jax.Array) -> jax.Array:
  """The model's single "when" [B,T]: beta^a * beta^v renormalised over segments.

  High where both modalities attend, which is what an audio-visual event is. Padded
  segments have zero beta in both, so they stay at zero.
  """
  joint = beta_audio * beta_visual
  return joint / jnp.maximum(joint.sum(axis=-1, keepdims=True), jnp.finfo(joint.dtype).tiny)


class Stan(two_stream.TwoStreamModel):
  """Space-time attention network; see the module docstring for the data flow."""

  EXPLANATIONS = (
      "where",
      "when",
      "when_audio",
      "when_visual",
      "spatial_attention",
      "temporal_attention",
  )
  tokens_are_cells = True  # each visual token of `embed` is one cell's (perturbation swaps them)
  # Parameter blocks from the output down to the inputs (attribute names), what the sanity
  # checks (stt/explain/sanity.py) randomise in cascade.
  PARAMETER_BLOCKS = (
      (
          "classifier",
          ("classifier_hidden", "classifier_out", "segment_classifier", "auxiliary_classifier"),
      ),
      ("temporal_pool", ("audio_pool", "visual_pool")),
      ("transformer", ("transformer",)),
      ("spatial_attention", ("spatial_attention",)),
      (
          "embedding",
          (
              "visual_projection",
              "audio_projection",
              "visual_norm",
              "audio_norm",
              "spatial_position",
              "temporal_position",
              "modality_embedding",
          ),
      ),
      ("backbones", ("visual_backbone", "audio_backbone")),
  )
  # The block that makes each of its own explanations (the topmost block its computation
  # reads): the sanity checks mark randomising only the blocks above as 1 by construction.
  EXPLANATION_BLOCKS = {
      "where": "spatial_attention",
      "spatial_attention": "spatial_attention",
      "temporal_attention": "transformer",
      "when": "temporal_pool",
      "when_audio": "temporal_pool",
      "when_visual": "temporal_pool",
  }

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int, *, rngs: nnx.Rngs):
    self.num_classes = num_classes
    if config.pool_values not in POOL_VALUES:
      raise ValueError(f"pool_values must be one of {POOL_VALUES}, got {config.pool_values!r}")
    self.pool_values = config.pool_values
    self.dtype = jnp.dtype(config.dtype)
    dtype, width = self.dtype, config.width
    self.grid_size = encoders.grid_size_of(config)
    num_cells = self.grid_size[0] * self.grid_size[1]

    self.visual_backbone, visual_dim = encoders.make_visual_backbone(
        config.visual_backbone, config.visual_feature_dim, dtype=dtype, rngs=rngs
    )
    self.audio_backbone, audio_dim = encoders.make_audio_backbone(
        config.audio_backbone, config.audio_feature_dim, dtype=dtype, rngs=rngs
    )

    linear = lambda d_in, d_out, dt=dtype: nnx.Linear(
        d_in, d_out, dtype=dt, param_dtype=jnp.float32, rngs=rngs
    )
    layer_norm = lambda: nnx.LayerNorm(width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    self.visual_projection = linear(visual_dim, width)
    self.audio_projection = linear(audio_dim, width)
    # The cells' position embedding, added before the spatial attention (its only reader: the
    # cells enter nothing else, and v_hat_t carries position only through it).
    self.spatial_position = (
        nnx.Param(_EMBED_INIT(rngs.params(), (num_cells, width)))
        if config.get("spatial_position_embedding", True)
        else None
    )
    self.temporal_position = nnx.Param(_EMBED_INIT(rngs.params(), (config.num_segments, width)))
    self.modality_embedding = nnx.Param(_EMBED_INIT(rngs.params(), (2, width)))  # audio, visual
    self.visual_norm = layer_norm()
    self.audio_norm = layer_norm()
    self.token_dropout = nnx.Dropout(config.dropout, rngs=rngs)

    self.spatial_attention = AudioGuidedSpatialAttention(
        width,
        config.get("spatial_heads", 0) or config.num_heads,
        config.spatial_query,
        scoring=config.get("spatial_scoring", "dot"),
        dtype=dtype,
        rngs=rngs,
    )
    self.transformer = CrossModalTransformer(
        width,
        config.num_heads,
        config.num_layers,
        config.mlp_ratio,
        config.dropout,
        dtype=dtype,
        rngs=rngs,
    )
    self.audio_pool = TemporalAttentionPool(width, config.temporal_pool, dtype=dtype, rngs=rngs)
    self.visual_pool = TemporalAttentionPool(width, config.temporal_pool, dtype=dtype, rngs=rngs)

    self.classifier_hidden = linear(2 * width, width)
    self.classifier_dropout = nnx.Dropout(config.dropout, rngs=rngs)
    self.classifier_out = linear(width, num_classes, jnp.float32)
    self.segment_classifier = (
        linear(2 * width, num_classes + 1, jnp.float32) if config.segment_head else None
    )
    self.auxiliary_weight = float(config.get("spatial_aux_weight", 0.0))
    if self.auxiliary_weight < 0:
      raise ValueError(f"spatial_aux_weight must be >= 0, got {self.auxiliary_weight}")
    self.auxiliary_classifier = (
        linear(width, num_classes, jnp.float32) if self.auxiliary_weight > 0 else None
    )

  def encode(self, inputs: dict, *, train: bool = False):
    """Backbones (encoders.encode): (visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca]). In training,
    the frames of padded segments (inputs['segment_mask'] False) do not enter the backbone's
    BatchNorm statistics."""
    return encoders.encode(
        self.visual_backbone, self.audio_backbone, inputs, dtype=self.dtype, train=train
    )

  def embed(self, visual_map: jax.Array, audio_vec: jax.Array, *, train: bool = False):
    """Per-token embedding: visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca] ->
    (cells [B,T,N,D], audio [B,T,D]).

    Each token depends only on its own input vector and position, so replacing one cell's
    features replaces only that cell's token (the perturbation tests rely on it).
    """
    b, t, h, w, _ = visual_map.shape
    if (h, w) != self.grid_size:
      raise ValueError(f"visual map grid {(h, w)} != config.grid_size {self.grid_size}")
    if t > self.temporal_position.shape[0]:
      raise ValueError(f"{t} segments > config.num_segments {self.temporal_position.shape[0]}")
    deterministic = not train
    temporal = self.temporal_position[...][:t]  # [T,D]
    modality = self.modality_embedding[...]
    cells = self.visual_projection(visual_map.reshape(b, t, h * w, -1).astype(self.dtype))
    if self.spatial_position is not None:
      cells = cells + self.spatial_position[...] + temporal[:, None, :] + modality[1]
    else:  # spatial_position_embedding=False: permuting the cells permutes alpha
      cells = cells + temporal[:, None, :] + modality[1]
    cells = self.token_dropout(self.visual_norm(cells), deterministic=deterministic)
    audio = self.audio_projection(audio_vec.astype(self.dtype)) + temporal + modality[0]
    audio = self.token_dropout(self.audio_norm(audio), deterministic=deterministic)
    return cells, audio

  def head_from_tokens(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> dict:
    """cells [B,T,N,D], audio [B,T,D] (from `embed`) -> `head_from_attended`'s dict."""
    attended, alpha = self.spatial_attention(audio, cells)  # [B,T,D], [B,T,heads,N]
    return self.head_from_attended(audio, attended, alpha, segment_mask, train=train)

  def head_from_attended(
      self,
      audio: jax.Array,
      attended: jax.Array,
      alpha: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> dict:
    """audio [B,T,D], the spatial attention's (attended [B,T,D], alpha [B,T,heads,N]) ->
    {'logits': [B,C] f32, 'segment_logits': [B,T,C+1] f32 or None,
     'auxiliary_logits' (only with spatial_aux_weight > 0): [B,C] f32,
     'explanations': {'where': [B,T,h,w], 'when': [B,T], 'when_audio': [B,T],
                      'when_visual': [B,T], 'spatial_attention': [B,T,heads,N],
                      'temporal_attention': [L,B,heads,2T,2T]}}  (all f32).

    A segment's (attended, alpha) depends on that segment's tokens only, so the temporal
    perturbation test computes it once for the clean and once for the removed segments and
    swaps per fraction."""
    b, t = audio.shape[:2]
    h, w = self.grid_size
    if segment_mask is None:
      segment_mask = jnp.ones((b, t), bool)
    segment_mask = segment_mask.astype(bool)
    deterministic = not train

    tokens = jnp.concatenate([audio, attended.astype(audio.dtype)], axis=1)  # [B,2T,D]
    key_mask = jnp.concatenate([segment_mask, segment_mask], axis=1)  # [B,2T]
    hidden, temporal_attention = self.transformer(tokens, key_mask, train=train)
    hidden_audio, hidden_visual = hidden[:, :t], hidden[:, t:]

    if self.pool_values == "local":  # beta from context, evidence from the segment itself
      audio_values, visual_values = audio, attended.astype(audio.dtype)
    else:
      audio_values, visual_values = hidden_audio, hidden_visual
    pooled_audio, beta_audio = self.audio_pool(hidden_audio, segment_mask, audio_values)
    pooled_visual, beta_visual = self.visual_pool(hidden_visual, segment_mask, visual_values)
    pooled = jnp.concatenate([pooled_audio, pooled_visual], axis=-1)
    x = self.classifier_dropout(
        nnx.gelu(self.classifier_hidden(pooled)), deterministic=deterministic
    )
    logits = self.classifier_out(x.astype(jnp.float32))

    segment_logits = None
    if self.segment_classifier is not None:
      per_segment = jnp.concatenate([hidden_audio, hidden_visual], axis=-1)
      segment_logits = self.segment_classifier(per_segment.astype(jnp.float32))

    outputs = {
        "logits": logits,
        "segment_logits": segment_logits,
        "explanations": {
            "where": alpha.mean(axis=2).reshape(b, t, h, w),
            "when": joint_when(beta_audio, beta_visual),
            "when_audio": beta_audio,
            "when_visual": beta_visual,
            "spatial_attention": alpha,
            "temporal_attention": temporal_attention,
        },
    }
    if self.auxiliary_classifier is not None:  # AVEL's direct path: mean_t v_hat_t -> classes
      valid = segment_mask.astype(jnp.float32)[..., None]
      mean_attended = (attended.astype(jnp.float32) * valid).sum(axis=1) / jnp.maximum(
          valid.sum(axis=1), 1.0
      )
      outputs["auxiliary_logits"] = self.auxiliary_classifier(mean_attended)
    return outputs

  def rollout_readout(self, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """What attention rollout reads (stt/explain/explainers.py `rollout`): the transformer's
    attention [L,B,heads,2T,2T] over [a_1..a_T, v_hat_1..v_hat_T] and the readout q [B,2T] with
    which the pooled outputs read its output tokens: ½ [beta^a ; beta^v], each modality's
    pooling weights, the two modalities weighted equally."""
    readout = 0.5 * jnp.concatenate(
        [explanations["when_audio"], explanations["when_visual"]], axis=-1
    )
    return explanations["temporal_attention"], readout

  def rollout_maps(self, relevance: jax.Array, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """Rollout's relevance r [B,2T] of the tokens -> (where [B,T,h,w], when [B,T]), unnormalised:
        when[t]      = r[t] + r[T+t]          (both tokens of segment t)
        where[t,i,j] = alpha[t,i,j] * r[T+t]  (v_hat_t's relevance split over its cells by the
                                               head-averaged spatial attention that formed it)
    The "where" is alpha scaled per frame: its spatial scores are attention's by construction
    (the explainer's `spatial_is_attention_on` names `temporal_attention`)."""
    t = relevance.shape[1] // 2
    when = relevance[:, :t] + relevance[:, t:]
    where = explanations["where"] * relevance[:, t:, None, None]
    return where, when
