"""Late fusion, and its single-modality versions: the simplest models STAN is compared with.

Shape letters as in stan.py: B videos, T segments, h x w = N cells, D width, C classes.

    visual_map [B,T,h,w,Cv] --Linear, LayerNorm per cell--> cells [B,T,N,D] --mean over N-->
    audio_vec [B,T,Ca]      --Linear, LayerNorm-----------> audio [B,T,D]
    mean over the valid segments, per modality              -> z^v, z^a [B,D]
    MLP([z^a; z^v]) -> logits [B,C];  optional Linear([a_t; v_t]) -> [B,T,C+1]

`modalities` is ('audio', 'visual') for `late_fusion`, ('audio',) for `audio_only` and
('visual',) for `visual_only`: a single-modality model builds neither the backbone nor the
layers of the other modality, and its `encode` returns zeros [B,T,1,1,1] / [B,T,1] in its place,
so nothing of that modality can reach the logits. These models have no intrinsic explanation
(`explanations` is empty); post-hoc explainers act on `encode`'s outputs as for STAN.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from stt.models import encoders
from stt.models import layers
from stt.models import two_stream

MODALITIES = ("audio", "visual")


class LateFusion(two_stream.TwoStreamModel):
  """See the module docstring; follows the model interface of stt/models/__init__.py."""

  EXPLANATIONS = ()  # no intrinsic explanation
  tokens_are_cells = True  # each visual token of `embed` is one cell's (perturbation swaps them)
  MODALITIES = MODALITIES  # the streams it reads (models.sees_frames)
  PARAMETER_BLOCKS = (  # output to input, for the sanity checks (stt/explain/sanity.py)
      (
          "classifier",
          ("classifier_hidden", "classifier_out", "segment_classifier", "temporal_mean"),
      ),
      ("embedding", ("visual_projection", "audio_projection", "visual_norm", "audio_norm")),
      ("backbones", ("visual_backbone", "audio_backbone")),
  )

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      num_classes: int,
      *,
      rngs: nnx.Rngs,
      modalities: tuple[str, ...] = MODALITIES,
  ):
    if not modalities or set(modalities) - set(MODALITIES):
      raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}")
    self.modalities = tuple(m for m in MODALITIES if m in modalities)
    self.num_classes = num_classes
    self.dtype = jnp.dtype(config.dtype)
    self.grid_size = encoders.grid_size_of(config)
    dtype, width = self.dtype, config.width
    linear = lambda d_in, d_out, dt=dtype: nnx.Linear(
        d_in, d_out, dtype=dt, param_dtype=jnp.float32, rngs=rngs
    )
    layer_norm = lambda: nnx.LayerNorm(width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    visual_backbone = audio_backbone = None  # each attribute is set once: module or None
    if "visual" in self.modalities:
      visual_backbone, visual_dim = encoders.make_visual_backbone(
          config.visual_backbone, config.visual_feature_dim, dtype=dtype, rngs=rngs
      )
      self.visual_projection = linear(visual_dim, width)
      self.visual_norm = layer_norm()
    if "audio" in self.modalities:
      audio_backbone, audio_dim = encoders.make_audio_backbone(
          config.audio_backbone, config.audio_feature_dim, dtype=dtype, rngs=rngs
      )
      self.audio_projection = linear(audio_dim, width)
      self.audio_norm = layer_norm()
    self.visual_backbone, self.audio_backbone = visual_backbone, audio_backbone
    self.temporal_mean = layers.TemporalAttentionPool(width, "mean", dtype=dtype, rngs=rngs)
    fused = width * len(self.modalities)
    self.classifier_hidden = linear(fused, width)
    self.classifier_dropout = nnx.Dropout(config.dropout, rngs=rngs)
    self.classifier_out = linear(width, num_classes, jnp.float32)
    self.segment_classifier = (
        linear(fused, num_classes + 1, jnp.float32) if config.segment_head else None
    )

  def encode(self, inputs: dict, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """(visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca]); zeros for a modality the model lacks."""
    b, t = _batch_shape(inputs)
    if "visual" in self.modalities:
      visual_map = encoders.encode_visual(
          self.visual_backbone, inputs, dtype=self.dtype, train=train
      )
    else:
      visual_map = jnp.zeros((b, t, 1, 1, 1), jnp.float32)
    if "audio" in self.modalities:
      audio_vec = encoders.encode_audio(self.audio_backbone, inputs, dtype=self.dtype, train=train)
    else:
      audio_vec = jnp.zeros((b, t, 1), jnp.float32)
    return visual_map, audio_vec

  def embed(self, visual_map: jax.Array, audio_vec: jax.Array, *, train: bool = False):
    """Per-token: visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca] -> (cells [B,T,N,D] or
    [B,T,1,1] zeros, audio [B,T,D] or [B,T,1] zeros)."""
    del train
    b, t = visual_map.shape[:2]
    cells = jnp.zeros((b, t, 1, 1), self.dtype)
    audio = jnp.zeros((b, t, 1), self.dtype)
    if "visual" in self.modalities:
      flat = visual_map.reshape(b, t, -1, visual_map.shape[-1]).astype(self.dtype)
      cells = self.visual_norm(self.visual_projection(flat))
    if "audio" in self.modalities:
      audio = self.audio_norm(self.audio_projection(audio_vec.astype(self.dtype)))
    return cells, audio

  def head_from_tokens(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> dict:
    """cells, audio (from `embed`) -> the model interface's outputs (no explanations)."""
    b, t = audio.shape[:2]
    segment_mask = jnp.ones((b, t), bool) if segment_mask is None else segment_mask.astype(bool)
    per_segment = []
    if "audio" in self.modalities:
      per_segment.append(audio)
    if "visual" in self.modalities:
      per_segment.append(cells.mean(axis=2))
    per_segment = jnp.concatenate(per_segment, axis=-1)  # [B,T,D * modalities]
    pooled, _ = self.temporal_mean(per_segment, segment_mask)
    x = self.classifier_dropout(nnx.gelu(self.classifier_hidden(pooled)), deterministic=not train)
    segment_logits = None
    if self.segment_classifier is not None:
      segment_logits = self.segment_classifier(per_segment.astype(jnp.float32))
    return {
        "logits": self.classifier_out(x.astype(jnp.float32)),
        "segment_logits": segment_logits,
        "explanations": {},
    }


def _batch_shape(inputs: dict) -> tuple[int, int]:
  for key in ("frames", "visual_features", "log_mel", "audio_features"):
    if key in inputs:
      return tuple(inputs[key].shape[:2])
  raise ValueError("inputs hold no frames, log-mel or features")


class AudioOnly(LateFusion):
  """`audio_only`: late fusion of the audio stream alone."""

  MODALITIES = ("audio",)

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int, *, rngs: nnx.Rngs):
    super().__init__(config, num_classes, rngs=rngs, modalities=self.MODALITIES)


class VisualOnly(LateFusion):
  """`visual_only`: late fusion of the visual stream alone."""

  MODALITIES = ("visual",)

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int, *, rngs: nnx.Rngs):
    super().__init__(config, num_classes, rngs=rngs, modalities=self.MODALITIES)
