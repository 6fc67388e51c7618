"""The training step: loss, metrics and one optimizer update, as a pure function of NNX state.

`train_step(graphdef, state, batch, config=...)` is what the trainer (stt/train.py) jits over a
data mesh with the state donated; benchmarks/train_throughput.py times the same function.
It lives apart from the trainer so that it imports only the model side (no writers, datasets
or explainers).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import optax

from stt import input_pipeline


def loss_and_metrics(outputs: dict, batch: dict, config) -> tuple[jax.Array, dict]:
  """Cross-entropy on the video label (+ weighted per-segment loss, + weighted cross-entropy of
  outputs['auxiliary_logits'] where the model has them), averaged over valid rows."""
  logits = outputs["logits"].astype(jnp.float32)
  num_classes = logits.shape[-1]
  labels = optax.smooth_labels(
      jax.nn.one_hot(batch["label"], num_classes), config.loss.label_smoothing
  )
  weights = batch["valid"].astype(jnp.float32)
  per_example = optax.softmax_cross_entropy(logits, labels)
  loss = jnp.sum(per_example * weights) / jnp.maximum(weights.sum(), 1.0)
  if config.loss.segment_weight > 0:
    segment_logits = outputs["segment_logits"].astype(jnp.float32)
    segment_weights = weights[:, None] * batch["segment_mask"]
    per_segment = optax.softmax_cross_entropy_with_integer_labels(
        segment_logits, batch["segment_labels"]
    )
    loss += config.loss.segment_weight * (
        jnp.sum(per_segment * segment_weights) / jnp.maximum(segment_weights.sum(), 1.0)
    )
  if outputs.get("auxiliary_logits") is not None:  # STAN's model.spatial_aux_weight > 0
    per_example = optax.softmax_cross_entropy(outputs["auxiliary_logits"], labels)
    loss += config.model.spatial_aux_weight * (
        jnp.sum(per_example * weights) / jnp.maximum(weights.sum(), 1.0)
    )
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  accuracy = jnp.sum(correct * weights) / jnp.maximum(weights.sum(), 1.0)
  return loss, {"loss": loss, "accuracy": accuracy}


def train_step(graphdef, state, batch, *, config):
  """One optimizer step. state: NNX state of (model, optimizer) → (new state, metrics)."""
  model, optimizer = nnx.merge(graphdef, state)

  def loss_fn(model):
    outputs = model(input_pipeline.model_inputs(batch), train=True)
    return loss_and_metrics(outputs, batch, config)

  (_, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  metrics["grad_norm"] = optax.global_norm(grads)
  optimizer.update(model, grads)
  return nnx.state((model, optimizer)), metrics
