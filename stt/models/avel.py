"""AVEL: the AVE paper's own model (Tian et al., "Audio-Visual Event Localization in
Unconstrained Videos", ECCV 2018), as a compared model.

Shape letters as in stan.py: B videos, T segments, h x w = N cells, D width, C classes.

    visual_map [B,T,h,w,Cv] --Linear per cell--> cells [B,T,N,D]
    audio_vec [B,T,Ca]      --Linear-----------> audio [B,T,D]
    audio-guided additive attention per segment ("where", the model's intrinsic explanation):
        alpha_t = softmax_i(w^T tanh(W_v v_ti + W_a a_t)),   v_t = sum_i alpha_ti v_ti
    a bidirectional LSTM per modality over the valid segments -> h^a, h^v [B,T,D]
    fusion [h^a_t; h^v_t] [B,T,2D]
    video logits: MLP(mean over valid segments of the fusion) [B,C]
    segment logits (segment_head): Linear(fusion) [B,T,C+1]

The original fuses with a dual multimodal residual network and scores segments only; the video
head (a temporal mean) makes it a recognition model like the others. AVEL has a "where" but no
"when" of its own: `explanations` holds `where` [B,T,h,w] and `spatial_attention` [B,T,1,N].
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from stt.models import encoders
from stt.models import layers
from stt.models import two_stream


class Avel(two_stream.TwoStreamModel):
  """See the module docstring; follows the model interface of stt/models/__init__.py."""

  EXPLANATIONS = ("where", "spatial_attention")
  tokens_are_cells = True  # each visual token of `embed` is one cell's (perturbation swaps them)
  PARAMETER_BLOCKS = (  # output to input, for the sanity checks (stt/explain/sanity.py)
      (
          "classifier",
          ("classifier_hidden", "classifier_out", "segment_classifier", "temporal_mean"),
      ),
      ("lstm", ("audio_lstm", "visual_lstm")),
      ("spatial_attention", ("attention_visual", "attention_audio", "attention_score")),
      ("embedding", ("visual_projection", "audio_projection")),
      ("backbones", ("visual_backbone", "audio_backbone")),
  )
  # The block that makes each of its own explanations (stt/explain/sanity.py).
  EXPLANATION_BLOCKS = {"where": "spatial_attention", "spatial_attention": "spatial_attention"}

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int, *, rngs: nnx.Rngs):
    self.num_classes = num_classes
    self.dtype = jnp.dtype(config.dtype)
    self.grid_size = encoders.grid_size_of(config)
    dtype, width = self.dtype, config.width
    if width % 2:
      raise ValueError(f"avel needs an even model.width (two LSTM directions), got {width}")
    linear = lambda d_in, d_out, dt=dtype, bias=True: nnx.Linear(
        d_in, d_out, use_bias=bias, dtype=dt, param_dtype=jnp.float32, rngs=rngs
    )
    self.visual_backbone, visual_dim = encoders.make_visual_backbone(
        config.visual_backbone, config.visual_feature_dim, dtype=dtype, rngs=rngs
    )
    self.audio_backbone, audio_dim = encoders.make_audio_backbone(
        config.audio_backbone, config.audio_feature_dim, dtype=dtype, rngs=rngs
    )
    self.visual_projection = linear(visual_dim, width)
    self.audio_projection = linear(audio_dim, width)
    self.attention_visual = linear(width, width)
    self.attention_audio = linear(width, width, bias=False)
    self.attention_score = linear(width, 1, bias=False)

    lstm_cell = lambda: nnx.OptimizedLSTMCell(
        width, width // 2, dtype=dtype, param_dtype=jnp.float32, rngs=rngs
    )
    self.audio_lstm = nnx.List([lstm_cell(), lstm_cell()])  # [forward, backward]
    self.visual_lstm = nnx.List([lstm_cell(), lstm_cell()])
    self.temporal_mean = layers.TemporalAttentionPool(2 * width, "mean", dtype=dtype, rngs=rngs)
    self.classifier_hidden = linear(2 * width, width)
    self.classifier_dropout = nnx.Dropout(config.dropout, rngs=rngs)
    self.classifier_out = linear(width, num_classes, jnp.float32)
    self.segment_classifier = (
        linear(2 * width, num_classes + 1, jnp.float32) if config.segment_head else None
    )

  def encode(self, inputs: dict, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Backbones (encoders.encode): (visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca])."""
    return encoders.encode(
        self.visual_backbone, self.audio_backbone, inputs, dtype=self.dtype, train=train
    )

  def embed(self, visual_map: jax.Array, audio_vec: jax.Array, *, train: bool = False):
    """Per token: (cells [B,T,N,D], audio [B,T,D])."""
    del train
    b, t = visual_map.shape[:2]
    flat = visual_map.reshape(b, t, -1, visual_map.shape[-1]).astype(self.dtype)
    return self.visual_projection(flat), self.audio_projection(audio_vec.astype(self.dtype))

  def head_from_tokens(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> dict:
    """cells [B,T,N,D], audio [B,T,D] -> the model interface's outputs."""
    b, t = audio.shape[:2]
    h, w = self.grid_size
    segment_mask = jnp.ones((b, t), bool) if segment_mask is None else segment_mask.astype(bool)
    scores = self.attention_score(
        jnp.tanh(self.attention_visual(cells) + self.attention_audio(audio)[:, :, None, :])
    )[..., 0]
    alpha = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)  # [B,T,N]
    visual = jnp.einsum("btn,btnd->btd", alpha.astype(cells.dtype), cells)
    hidden_audio = bidirectional_lstm(self.audio_lstm, audio, segment_mask)
    hidden_visual = bidirectional_lstm(self.visual_lstm, visual, segment_mask)
    fused = jnp.concatenate([hidden_audio, hidden_visual], axis=-1)  # [B,T,2D]
    fused = jnp.where(segment_mask[:, :, None], fused, 0.0)
    pooled, _ = self.temporal_mean(fused, segment_mask)
    x = self.classifier_dropout(nnx.gelu(self.classifier_hidden(pooled)), deterministic=not train)
    segment_logits = None
    if self.segment_classifier is not None:
      segment_logits = self.segment_classifier(fused.astype(jnp.float32))
    alpha = jnp.where(segment_mask[:, :, None], alpha, 0.0)
    return {
        "logits": self.classifier_out(x.astype(jnp.float32)),
        "segment_logits": segment_logits,
        "explanations": {
            "where": alpha.reshape(b, t, h, w),
            "spatial_attention": alpha[:, :, None, :],
        },
    }


def bidirectional_lstm(cells, x: jax.Array, segment_mask: jax.Array) -> jax.Array:
  """A bidirectional LSTM over the valid segments: x [B,T,D] -> [B,T,D] (two halves of D/2).

  Padded segments leave the state unchanged and output 0, so each direction sees exactly the
  valid segments. A plain loop over the T (~10) segments: no nnx.scan, so the model also runs
  inside the explainers' jax.grad and vmap traces.
  """
  forward, backward = cells
  b, t = x.shape[:2]
  zeros = jnp.zeros((b, forward.hidden_features), x.dtype)

  def run(cell, order):
    carry, outputs = (zeros, zeros), [None] * t
    for step in order:
      new_carry, y = cell(carry, x[:, step])
      valid = segment_mask[:, step, None]
      carry = tuple(jnp.where(valid, new, old) for new, old in zip(new_carry, carry))
      outputs[step] = jnp.where(valid, y, 0.0)
    return jnp.stack(outputs, axis=1)

  return jnp.concatenate([run(forward, range(t)), run(backward, reversed(range(t)))], axis=-1)
