"""The shared forward pass of the models: backbones, per-token embedding, then the head.

    inputs --encode--> (visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca])
           --embed--> (cells [B,T,N,D], audio [B,T,D])
           --head_from_tokens--> ModelOutputs (stt/models/__init__.py)

Every model (STAN and the compared ones) subclasses `TwoStreamModel` and defines `encode`,
`embed` and `head_from_tokens`; the explainers and perturbation tests call the same three steps.
"""

from __future__ import annotations

from flax import nnx
import jax


class TwoStreamModel(nnx.Module):
  """`head` and `__call__` from the subclass's `encode`, `embed` and `head_from_tokens`."""

  # The streams the model reads (stt/models/__init__.py `sees_frames`); a single-modality model
  # says which.
  MODALITIES = ("audio", "visual")

  def head(
      self,
      visual_map: jax.Array,
      audio_vec: jax.Array,
      segment_mask: jax.Array | None = None,
      *,
      train: bool = False,
  ) -> dict:
    """Everything after the backbones: `embed`, then `head_from_tokens`."""
    cells, audio = self.embed(visual_map, audio_vec, train=train)
    return self.head_from_tokens(cells, audio, segment_mask, train=train)

  def __call__(self, inputs: dict, *, train: bool = False) -> dict:
    """inputs (stt/models/__init__.py) -> ModelOutputs."""
    visual_map, audio_vec = self.encode(inputs, train=train)
    return self.head(visual_map, audio_vec, inputs.get("segment_mask"), train=train)
