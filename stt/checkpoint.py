"""Orbax checkpoints of the training state and the grain iterator, kept as "last N plus best".

Layout: `<workdir>/checkpoints/<step>/{state, data_iter}`. `state` is the NNX state of
(model, optimizer) as a pure dict of arrays (PRNG keys stored as their raw key data); `data_iter`
is grain's per-process iterator state. Saves are asynchronous; `best` is by validation accuracy.
"""

from __future__ import annotations

import pathlib

import grain
import jax
import orbax.checkpoint as ocp
from flax import nnx

BEST_METRIC = "val/accuracy"


def make_manager(workdir: pathlib.Path, *, keep_last: int) -> ocp.CheckpointManager:
  """A manager that keeps the `keep_last` newest checkpoints plus the best by val accuracy.

  Checkpoints saved between evaluations carry no metrics: LatestN keeps them while they are
  recent, and they can never be chosen as best.
  """
  policies = ocp.checkpoint_managers
  options = ocp.CheckpointManagerOptions(
      best_fn=lambda metrics: metrics[BEST_METRIC],
      best_mode="max",
      preservation_policy=policies.AnyPreservationPolicy([
          policies.LatestN(n=keep_last),
          policies.BestN(get_metric_fn=lambda metrics: metrics[BEST_METRIC], reverse=False, n=1,
                         keep_checkpoints_without_metrics=False),
      ]),
      enable_async_checkpointing=True,
      create=True,
  )
  return ocp.CheckpointManager(
      pathlib.Path(workdir).absolute() / "checkpoints", options=options,
      item_names=("state", "data_iter"))


def _is_key(leaf) -> bool:
  return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_savable(state: nnx.State) -> dict:
  """NNX state → pure dict of plain arrays (typed PRNG keys become their uint32 key data)."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x,
                      nnx.to_pure_dict(state))


def _from_savable(restored: dict, like: nnx.State) -> nnx.State:
  """Inverse of `_to_savable`, shaped and typed like the live state `like`."""
  like_pure = nnx.to_pure_dict(like)
  pure = jax.tree.map(
      lambda saved, live: jax.random.wrap_key_data(saved, impl=jax.random.key_impl(live))
      if _is_key(live) else saved, restored, like_pure)
  state = jax.tree.map(lambda x: x, like)  # a copy we can fill in
  nnx.replace_by_pure_dict(state, pure)
  return state


def save(manager: ocp.CheckpointManager, step: int, state: nnx.State, data_iterator,
         metrics: dict | None = None, *, force: bool = False) -> bool:
  """Starts an asynchronous save of `state` and the iterator position at `step`."""
  return manager.save(
      step,
      args=ocp.args.Composite(
          state=ocp.args.StandardSave(_to_savable(state)),
          data_iter=grain.checkpoint.CheckpointSave(data_iterator)),
      metrics=metrics, force=force)


def restore(manager: ocp.CheckpointManager, step: int, state_like: nnx.State,
            data_iterator=None) -> nnx.State:
  """Restores the state saved at `step` with the shardings of `state_like`.

  The iterator, when given, is moved in place to the saved position.
  """
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      _to_savable(state_like))
  items = {"state": ocp.args.StandardRestore(target)}
  if data_iterator is not None:
    items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return _from_savable(restored["state"], state_like)
