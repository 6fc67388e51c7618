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
`head_from_tokens`) and `grid_size`. What a model has beyond that interface, it says on its
class, and the explainers ask the model (stt/explain/explainers.py `Explainer.needs`), never its
name: `EXPLANATIONS` (its own maps), `MODALITIES` (the streams it reads), for attention
rollout `RolloutModel`'s two methods, and optionally `EXPLANATION_BLOCKS` ({explanation key:
the `PARAMETER_BLOCKS` block that makes it}; the sanity checks mark what is 1 by construction).
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

from stt.models import avel
from stt.models import encoders
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
  MODALITIES: tuple[str, ...]  # the streams it reads: ('audio', 'visual') or one of them
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


class RolloutModel(AudioVisualModel, Protocol):
  """A model whose explanations attention rollout can read (stt/explain/explainers.py
  `rollout`): it says which attention, read out how, and how token relevance becomes maps."""

  def rollout_readout(self, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """`explanations` of its outputs -> (attention [L,B,heads,S,S] of each layer, query i ->
    key j; readout q [B,S], the weights with which the model reads its output tokens)."""

  def rollout_maps(self, relevance: jax.Array, explanations: dict) -> tuple[jax.Array, jax.Array]:
    """Relevance r [B,S] of the input tokens -> unnormalised (where [B,T,h,w], when [B,T])."""


def model_class(model_config) -> type[AudioVisualModel]:
  """The class `model_config.name` names; a ValueError names the known ones."""
  if model_config.name not in MODELS:
    raise ValueError(f"unknown model.name {model_config.name!r}; known: {sorted(MODELS)}")
  return MODELS[model_config.name]


def sees_frames(model: AudioVisualModel | type[AudioVisualModel]) -> bool:
  """Whether `model` (an instance or its class) reads the visual stream: without it, every
  spatial score is not applicable."""
  return "visual" in model.MODALITIES


def explanations_of(model_config) -> tuple[str, ...]:
  """The intrinsic explanations (keys of `explanations`) of the model `model_config` names."""
  return model_class(model_config).EXPLANATIONS


def create_model(model_config, num_classes: int, *, rngs) -> AudioVisualModel:
  """The model `model_config.name` names; a ValueError names the known ones."""
  model = model_class(model_config)(model_config, num_classes, rngs=rngs)
  encoders.set_frame_features(
      model, model_config.get("frame_features", "mean"), model_config.get("frame_groups", 1)
  )
  return model
