"""Evaluation of a training state on a split: accuracy, loss and (optionally) pointing games.

The forward pass is one jitted function over global batches; per-example outputs are gathered
to every host, padding rows (valid=False) are dropped, and metrics are computed on the host.

Localization tasks also predict a label per segment (C events + background C), scored as
`{split}/segment_accuracy` over valid segments (AVE's event-localization metric):
- `localization`: the argmax of the segment head's logits [B,T,C+1];
- `weak` (trained on video labels only): the predicted video class where the model's "when"
  is at least `localization.event_threshold` x uniform (1 / valid segments), else background.
Checkpoints are selected on `val/segment_accuracy` for these tasks, `val/accuracy` otherwise.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils

from stt import input_pipeline
from stt import sharding
from stt.explain import pointing

# Batch fields the metrics need, passed through the jitted step so one gather brings them along.
ANNOTATION_KEYS = ("valid", "index", "label", "segment_mask", "boxes", "box_mask", "frame_size",
                   "event_start", "event_end")


SEGMENT_TASKS = ("localization", "weak")


def selection_metric(config: ml_collections.ConfigDict) -> str:
  """The val metric that picks the best checkpoint."""
  return "val/segment_accuracy" if config.task in SEGMENT_TASKS else "val/accuracy"


def segment_predictions(outputs: dict, segment_mask: jax.Array, task: str,
                        event_threshold: float) -> jax.Array:
  """[B,T] int32 per-segment labels in 0..C (C = background); see the module docstring."""
  if task == "localization":
    return outputs["segment_logits"].argmax(-1).astype(jnp.int32)
  logits = outputs["logits"]
  background = logits.shape[-1]
  valid = segment_mask.astype(jnp.float32)
  uniform = 1.0 / jnp.maximum(valid.sum(-1, keepdims=True), 1.0)
  is_event = (outputs["explanations"]["when"] >= event_threshold * uniform) & (valid > 0)
  return jnp.where(is_event, logits.argmax(-1)[:, None], background).astype(jnp.int32)


def eval_step(graphdef, state, batch, *, task: str = "recognition",
              event_threshold: float = 1.0) -> dict:
  """Per-example outputs of the model in inference mode; shapes [B,...]."""
  model, _ = nnx.merge(graphdef, state)
  outputs = model(input_pipeline.model_inputs(batch), train=False)
  logits = outputs["logits"].astype(np.float32)
  explanations = outputs["explanations"]
  extra = {}
  if task in SEGMENT_TASKS:
    extra["segment_prediction"] = segment_predictions(outputs, batch["segment_mask"], task,
                                                      event_threshold)
    extra["segment_labels"] = batch["segment_labels"]
  return {
      **extra,
      "prediction": logits.argmax(-1),
      "loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
      "where": explanations["where"],
      "when": explanations["when"],
      "when_audio": explanations["when_audio"],
      "when_visual": explanations["when_visual"],
      **{key: batch[key] for key in ANNOTATION_KEYS},
  }


class Evaluator:
  """Evaluates NNX states of (model, optimizer) built from `graphdef` on split sources."""

  def __init__(self, graphdef, mesh: jax.sharding.Mesh, config: ml_collections.ConfigDict):
    self._mesh = mesh
    self._config = config
    self._step = jax.jit(
        functools.partial(eval_step, graphdef, task=config.task,
                          event_threshold=config.localization.event_threshold),
        out_shardings=sharding.replicated(mesh))

  def predict(self, state, source) -> dict:
    """Outputs for every example of `source`, in split order: {key: [N,...]}."""
    per_host = self._config.eval_batch_size // jax.process_count()
    chunks = []
    for local_batch in input_pipeline.eval_batches(source, per_host_batch_size=per_host):
      batch = input_pipeline.make_global_batch(local_batch, sharding.batch_sharding(self._mesh))
      chunks.append(jax.device_get(multihost_utils.process_allgather(self._step(state, batch),
                                                                     tiled=True)))
    outputs = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    keep = outputs["valid"]
    order = np.argsort(outputs["index"][keep], kind="stable")
    return {key: value[keep][order] for key, value in outputs.items()}

  def evaluate(self, state, source, split: str, *, explain: bool = False) -> dict:
    """Flat metrics `{split}/accuracy`, `{split}/loss`, `{split}/num_examples` (+ pointing)."""
    out = self.predict(state, source)
    metrics = split_metrics(out, split)
    if explain:
      metrics.update(pointing_metrics(out, self._config.explain.pointing_tolerance_px))
    return metrics


def split_metrics(out: dict, split: str) -> dict:
  """`{split}/accuracy`, `{split}/loss`, `{split}/num_examples` (+ `{split}/segment_accuracy`
  for localization tasks) from predict()'s outputs."""
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


def pointing_metrics(out: dict, tolerance_px: float, explainer: str = "attention") -> dict:
  """`explain/<explainer>/pointing_{spatial,spatial_class_mean,temporal}` from predict()."""
  spatial = pointing.spatial_pointing(out["where"], out["boxes"], out["box_mask"],
                                      out["frame_size"], out["label"], tolerance_px,
                                      segment_mask=out["segment_mask"])
  prefix = f"explain/{explainer}"
  metrics = {
      f"{prefix}/pointing_spatial": spatial.overall,
      f"{prefix}/pointing_spatial_class_mean": spatial.class_mean,
      f"{prefix}/pointing_spatial_trials": spatial.num_trials,
  }
  # "when" is the explainer's single temporal map; per-modality maps are reported beside it.
  for key, suffix in (("when", ""), ("when_audio", "_audio"), ("when_visual", "_visual")):
    if key not in out:
      continue
    temporal = pointing.temporal_pointing(out[key], out["segment_mask"], out["event_start"],
                                          out["event_end"], out["label"])
    metrics[f"{prefix}/pointing_temporal{suffix}"] = temporal.overall
    metrics[f"{prefix}/pointing_temporal{suffix}_class_mean"] = temporal.class_mean
  return metrics
