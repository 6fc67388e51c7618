"""The training tasks: what a model is trained and scored on, and how a checkpoint is chosen.

- `recognition`: the video's event class; checkpoints selected on `val/accuracy`.
- `localization`: per-segment labels (C events + background C), trained with the segment head
  (AVE's supervised event localization).
- `weak`: per-segment labels, trained on video labels only: a segment is the predicted video
  class where the model's "when" is at least `localization.event_threshold` x uniform
  (1 / valid segments), else background (AVE's weakly-supervised localization).
The segment tasks are scored as `{split}/segment_accuracy` over valid segments and select
checkpoints on `val/segment_accuracy`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

TASKS = ("recognition", "localization", "weak")
SEGMENT_TASKS = ("localization", "weak")


def selection_metric(config: ml_collections.ConfigDict) -> str:
  """The val metric that picks the best checkpoint."""
  return "val/segment_accuracy" if config.task in SEGMENT_TASKS else "val/accuracy"


def segment_predictions(
    outputs: dict, segment_mask: jax.Array, task: str, event_threshold: float
) -> jax.Array:
  """[B,T] int32 per-segment labels in 0..C (C = background); see the module docstring.

  outputs: the model's outputs (stt.models.ModelOutputs); segment_mask [B,T].
  """
  if task == "localization":
    return outputs["segment_logits"].argmax(-1).astype(jnp.int32)
  logits = outputs["logits"]
  background = logits.shape[-1]
  valid = segment_mask.astype(jnp.float32)
  uniform = 1.0 / jnp.maximum(valid.sum(-1, keepdims=True), 1.0)
  is_event = (outputs["explanations"]["when"] >= event_threshold * uniform) & (valid > 0)
  return jnp.where(is_event, logits.argmax(-1)[:, None], background).astype(jnp.int32)
