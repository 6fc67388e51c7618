"""The trainer's split evaluator: accuracy, loss and (optionally) the pointing games of a state
on a split (val during training, test at the end). Not to be confused with
`python -m stt.explain.score_maps`, which scores a maps file.

The forward pass is one jitted function over global batches; the per-example outputs are
gathered to every host by `input_pipeline.gather_split` (padding rows dropped, split order) and
metrics are computed on the host. Segment tasks (stt/tasks.py) also predict a label per segment
and report `{split}/segment_accuracy` over valid segments.
"""

from __future__ import annotations

import functools

from flax import nnx
import jax
import ml_collections
import numpy as np
import optax

from stt import input_pipeline
from stt import sharding
from stt import tasks
from stt.explain import pointing
from stt.explain import score_maps
from stt.explain import suite_scores


def eval_step(
    graphdef, state, batch, *, task: str = "recognition", event_threshold: float = 1.0
) -> dict:
  """Per-example outputs of the model in inference mode; shapes [B,...]."""
  model, _ = nnx.merge(graphdef, state)
  outputs = model(input_pipeline.model_inputs(batch), train=False)
  logits = outputs["logits"].astype(np.float32)
  explanations = outputs["explanations"]
  extra = {}
  if task in tasks.SEGMENT_TASKS:
    extra["segment_prediction"] = tasks.segment_predictions(
        outputs, batch["segment_mask"], task, event_threshold
    )
    extra["segment_labels"] = batch["segment_labels"]
  return {
      **extra,
      "prediction": logits.argmax(-1),
      "loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
      # The model's own maps, where it has them (stt/models/__init__.py), and its spatial
      # attention per head [B,T,heads,N] (the per-head pointing of `head_pointing`).
      **{
          key: explanations[key]
          for key in score_maps.MAP_KEYS + ("spatial_attention",)
          if key in explanations
      },
  }


class Evaluator:
  """Evaluates NNX states of (model, optimizer) built from `graphdef` on split sources."""

  def __init__(self, graphdef, mesh, config: ml_collections.ConfigDict):
    self._mesh = mesh
    self._config = config
    self._step = jax.jit(
        functools.partial(
            eval_step,
            graphdef,
            task=config.task,
            event_threshold=config.localization.event_threshold,
        ),
        out_shardings=sharding.replicated(mesh),
    )

  def predict(self, state, source) -> dict:
    """Outputs (and annotations) of every example of `source`, in split order: {key: [N,...]}."""
    return input_pipeline.gather_split(
        functools.partial(self._step, state),
        source,
        global_batch_size=self._config.eval_batch_size,
        batch_sharding=sharding.batch_sharding(self._mesh),
    )

  def evaluate(self, state, source, split: str, *, explain: bool = False) -> dict:
    """Flat metrics `{split}/accuracy`, `{split}/loss`, `{split}/num_examples`, and with
    `explain` the pointing games of the model's own maps: `explain/attention/...` for test,
    `{split}/explain/attention/...` for another split (val: what design choices are made on),
    and on val the spatial pointing of each head's map (`head_pointing`)."""
    out = self.predict(state, source)
    metrics = split_metrics(out, split)
    if explain and "where" in out:
      tolerance_px = self._config.explain.pointing_tolerance_px
      games = suite_scores.namespaced(
          {
              **pointing.pointing_metrics(out, tolerance_px),
              **(head_pointing(out, tolerance_px) if split != "test" else {}),
          },
          explainer="attention",
      )
      metrics.update({key if split == "test" else f"{split}/{key}": v for key, v in games.items()})
    return metrics


def split_metrics(out: dict, split: str) -> dict:
  """`{split}/accuracy`, `{split}/loss`, `{split}/num_examples` (+ `{split}/segment_accuracy`
  for segment tasks) from Evaluator.predict's outputs."""
  metrics = {
      f"{split}/accuracy": float(np.mean(out["prediction"] == out["label"])),
      f"{split}/loss": float(np.mean(out["loss"])),
      f"{split}/num_examples": int(out["label"].shape[0]),
  }
  if "segment_prediction" in out:
    valid = out["segment_mask"].astype(bool)
    correct = out["segment_prediction"] == out["segment_labels"]
    metrics[f"{split}/segment_accuracy"] = float(correct[valid].mean()) if valid.any() else 0.0
  return metrics


def head_pointing(out: dict, tolerance_px: float) -> dict:
  """`pointing_spatial_head<k>` (k = 0..heads-1): TorchRay's spatial pointing of each head's
  attention map alone, spatial_attention[:, :, k] [V,T,N] as [V,T,h,w] ("where" is their mean);
  {} for a model with one head or none (AVEL). out: `Evaluator.predict`'s outputs."""
  attention = out.get("spatial_attention")
  if attention is None or attention.shape[2] < 2:
    return {}
  grid = out["where"].shape[-2:]
  return {
      f"pointing_spatial_head{head}": pointing.spatial_pointing(
          np.asarray(attention[:, :, head]).reshape(attention.shape[:2] + grid),
          out["boxes"],
          out["box_mask"],
          out["frame_size"],
          out["label"],
          tolerance_px,
          segment_mask=out["segment_mask"],
      ).overall
      for head in range(attention.shape[2])
  }
