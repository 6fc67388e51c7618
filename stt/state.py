"""The training state: the model and its optimizer, created in their shardings, and restored.

One place builds (model, optimizer) for the trainer, the explain runs, `stt.explain.video`
and the benchmarks: `create_state` from a config, `restore_best` from a workdir's checkpoints.
The state is the NNX state split from (model, optimizer); `nnx.merge(graphdef, state)` gives
them back.
"""

from __future__ import annotations

import logging

from etils import epath
from flax import nnx
import jax
import ml_collections
import optax

from stt import checkpoint
from stt import models
from stt import sharding
from stt import tasks
from stt.models import pretrained


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with linear warmup + cosine decay, global-norm clipping; no decay on biases/norms."""
  opt = config.optimizer
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=opt.learning_rate,
      warmup_steps=opt.warmup_steps,
      decay_steps=max(config.num_train_steps, opt.warmup_steps + 1),
      end_value=opt.learning_rate * opt.end_learning_rate_factor,
  )
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  return optax.chain(
      optax.clip_by_global_norm(opt.grad_clip_norm),
      optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay, mask=decay_mask),
  )


def create_state(config: ml_collections.ConfigDict, num_classes: int, mesh):
  """(graphdef, state, shardings) of (model, optimizer), created in place on the mesh.

  The shardings come from the abstract state (eval_shape), so no array is materialised before
  it is placed; every process creates the same state from `config.seed`.
  """

  def create():
    model = models.create_model(config.model, num_classes, rngs=nnx.Rngs(config.seed))
    return nnx.split((model, nnx.Optimizer(model, make_optimizer(config), wrt=nnx.Param)))

  graphdef, abstract_state = jax.eval_shape(create)
  shardings = sharding.state_shardings(abstract_state, mesh, config)
  state = jax.jit(lambda: create()[1], out_shardings=shardings)()
  return graphdef, state, shardings


def load_pretrained_weights(graphdef, state, config: ml_collections.ConfigDict):
  """The state with `config.model.visual_weights` / `audio_weights` loaded into the backbones.

  Called on a fresh start only: a resumed run restores its own (fine-tuned) weights.
  """
  model, optimizer = nnx.merge(graphdef, state)
  for report in pretrained.load_backbone_weights(model, config.model):
    logging.info("pretrained weights: %s", report)
  return nnx.state((model, optimizer))


def checkpoint_manager(workdir: epath.PathLike, config: ml_collections.ConfigDict):
  """The workdir's checkpoint manager: the last `keep_checkpoints`, plus the best on val."""
  return checkpoint.make_manager(
      workdir, keep_last=config.keep_checkpoints, best_metric=tasks.selection_metric(config)
  )


def restore_best(
    workdir: epath.PathLike, config: ml_collections.ConfigDict, num_classes: int, mesh
) -> tuple[int, object, object]:
  """(step, graphdef, state) of the best checkpoint in `workdir` (checkpoint.restore_best)."""
  graphdef, state, _ = create_state(config, num_classes, mesh)
  manager = checkpoint_manager(workdir, config)
  try:
    step, state = checkpoint.restore_best(manager, state)
  finally:
    manager.close()
  return step, graphdef, state
