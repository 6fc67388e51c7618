"""The models the trainer can build, and the interface every one of them follows.

A model is an `nnx.Module` built as `MODELS[config.model.name](config.model, num_classes,
rngs=...)`; adding one is a new file in this package, its line in `MODELS` and the config value
`model.name`. Every model returns, from `model(inputs, train=...)`, the dict `ModelOutputs`:

    logits          [B,C] float32   video-level class scores
    segment_logits  [B,T,C+1] float32 or None   per-segment scores (C events + background)
    explanations    {name: array}   the model's own explanations, where it has them:
        where       [B,T,h,w]   spatial relevance of the grid cells per segment ("where")
        when        [B,T]       temporal relevance of the segments, 0 on padded ones ("when")
        when_audio, when_visual [B,T]   per-modality "when" (reported beside `when`)
        spatial_attention       [B,T,heads,N]   STAN's and AVEL's spatial attention
        temporal_attention      [L,B,heads,2T,2T]   STAN's transformer layers, what rollout reads
        token_attention         [L,B,heads,S,S]   joint_transformer's layers over its S tokens
                                (joint_transformer.py gives their order), what rollout reads

`inputs` holds `frames` [B,T,F,H,W,3] uint8 or `visual_features` [B,T,h,w,Cv], `log_mel`
[B,T,96,64] or `audio_features` [B,T,Ca], and `segment_mask` [B,T] bool
(stt.input_pipeline.MODEL_INPUT_KEYS). The post-hoc explainers and the perturbation tests also
use the split at the backbones that `AudioVisualModel` names (`encode`, `embed`,
`head_from_tokens`) and `grid_size`.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

from stt.models import avel
from stt.models import joint_transformer
from stt.models import late_fusion
from stt.models import stan

ModelOutputs = dict[str, Any]

# The one list of model names (config model.name): STAN and the models it is compared with.
MODELS = {
    "stan": stan.Stan,
    "late_fusion": late_fusion.LateFusion,
    "audio_only": late_fusion.AudioOnly,
    "visual_only": late_fusion.VisualOnly,
    "avel": avel.Avel,
    "joint_transformer": joint_transformer.JointTransformer,
}


class AudioVisualModel(Protocol):
  """What the trainer, evaluators, explainers and perturbation tests call on a model."""

  EXPLANATIONS: tuple[str, ...]  # the keys of `explanations` this model returns
  num_classes: int
  grid_size: tuple[int, int]  # (h, w) of the visual grid
  # Whether each visual token of `embed` is one grid cell's (from its own vector and position):
  # feature-mode perturbation then swaps tokens instead of embedding the perturbed features.
  tokens_are_cells: bool

  def __call__(self, inputs: dict, *, train: bool = False) -> ModelOutputs:
    """inputs (see the module docstring) -> ModelOutputs."""

  def encode(self, inputs: dict, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Backbones: inputs -> (visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca])."""

  def head(
      self,
      visual_map: jax.Array,
      audio_vec: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> ModelOutputs:
    """Everything after the backbones: `embed`, then `head_from_tokens`."""

  def embed(
      self, visual_map: jax.Array, audio_vec: jax.Array, *, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    """Per-token embedding -> (cells [B,T,N,D], audio [B,T,D]); a token depends only on its
    own input vector (a cell's, N = h*w, where `tokens_are_cells`; else a block of cells')."""

  def head_from_tokens(
      self,
      cells: jax.Array,
      audio: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> ModelOutputs:
    """cells [B,T,N,D], audio [B,T,D] -> ModelOutputs. (STAN also has `head_from_attended`,
    after its per-segment spatial attention; the temporal perturbation test uses it when a
    model has it, to swap segments instead of rerunning the attention.)"""


def sees_frames(model_config) -> bool:
  """Whether the model `model_config` names reads the visual stream (`MODALITIES`, both when a
  model does not say): without it, every spatial score is not applicable."""
  modalities = getattr(MODELS[model_config.get("name", "stan")], "MODALITIES", ("audio", "visual"))
  return "visual" in modalities


def explanations_of(model_config) -> tuple[str, ...]:
  """The intrinsic explanations (keys of `explanations`) of the model `model_config` names."""
  return MODELS[model_config.get("name", "stan")].EXPLANATIONS


def create_model(model_config, num_classes: int, *, rngs) -> AudioVisualModel:
  """The model `model_config.name` names; a ValueError names the known ones."""
  name = model_config.get("name", "stan")
  if name not in MODELS:
    raise ValueError(f"unknown model.name {name!r}; known: {sorted(MODELS)}")
  return MODELS[name](model_config, num_classes, rngs=rngs)
