"""Orbax checkpoints of the training state and the grain iterator, kept as "last N plus best".

Layout: `<workdir>/checkpoints/<step>/{state, data_iter}`. `state` is the NNX state of
(model, optimizer) as a pure dict of arrays (PRNG keys stored as their raw key data); `data_iter`
is grain's per-process iterator state. Saves are asynchronous; `best` is by validation accuracy.
"""

from __future__ import annotations

import logging

from etils import epath
from flax import nnx
import grain
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp


def make_manager(
    workdir: epath.PathLike, *, keep_last: int, best_metric: str = "val/accuracy"
) -> ocp.CheckpointManager:
  """A manager that keeps the `keep_last` newest checkpoints plus the best by `best_metric`.

  Checkpoints saved between evaluations carry no metrics: LatestN keeps them while they are
  recent, and they can never be chosen as best.
  """
  policies = ocp.checkpoint_managers
  options = ocp.CheckpointManagerOptions(
      best_fn=lambda metrics: metrics[best_metric],
      best_mode="max",
      preservation_policy=policies.AnyPreservationPolicy(
          [
              policies.LatestN(n=keep_last),
              policies.BestN(
                  get_metric_fn=lambda metrics: metrics[best_metric],
                  reverse=False,
                  n=1,
                  keep_checkpoints_without_metrics=False,
              ),
          ]
      ),
      enable_async_checkpointing=True,
      create=True,
  )
  return ocp.CheckpointManager(
      _absolute(epath.Path(workdir)) / "checkpoints",
      options=options,
      item_handlers={
          "state": ocp.StandardCheckpointHandler(),
          "data_iter": grain.checkpoint.CheckpointHandler(),
      },
  )


def _absolute(path: epath.Path) -> epath.Path:
  """Orbax restores only from absolute paths: a local `--workdir=runs/x` is made absolute,
  a URL such as gs://bucket/x is kept as it is."""
  return path if "://" in str(path) else path.absolute()


def _is_key(leaf) -> bool:
  return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_savable(state: nnx.State) -> dict:
  """NNX state → pure dict of plain arrays (typed PRNG keys become their uint32 key data)."""
  return jax.tree.map(
      lambda x: jax.random.key_data(x) if _is_key(x) else x, nnx.to_pure_dict(state)
  )


def _from_savable(restored: dict, like: nnx.State) -> nnx.State:
  """Inverse of `_to_savable`, shaped and typed like the live state `like`."""
  like_pure = nnx.to_pure_dict(like)
  pure = jax.tree.map(
      lambda saved, live: jax.random.wrap_key_data(saved, impl=jax.random.key_impl(live))
      if _is_key(live)
      else saved,
      restored,
      like_pure,
  )
  state = jax.tree.map(lambda x: x, like)  # a copy we can fill in
  nnx.replace_by_pure_dict(state, pure)
  return state


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: nnx.State,
    data_iterator,
    metrics: dict | None = None,
    *,
    force: bool = False,
) -> bool:
  """Starts an asynchronous save of `state` and the iterator position at `step`."""
  return manager.save(
      step,
      args=ocp.args.Composite(
          state=ocp.args.StandardSave(_to_savable(state)),
          data_iter=grain.checkpoint.CheckpointSave(data_iterator),
      ),
      metrics=metrics,
      force=force,
  )


def restore(
    manager: ocp.CheckpointManager, step: int, state_like: nnx.State, data_iterator=None
) -> nnx.State:
  """Restores the state saved at `step` with the shardings of `state_like`.

  The iterator, when given, is moved in place to the saved position.
  """
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), _to_savable(state_like)
  )
  items = {"state": ocp.args.StandardRestore(target)}
  if data_iterator is not None:
    items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return _from_savable(restored["state"], state_like)


class NoUsableCheckpointError(RuntimeError):
  """Checkpoints exist in the workdir but none of them can be restored."""


def _shape_mismatch(manager: ocp.CheckpointManager, step: int, state_like: nnx.State):
  """A description of the first array whose saved shape differs from the live one, or None.

  Raises if the checkpoint's metadata cannot be read (a damaged checkpoint).
  """

  def shapes(tree) -> dict[str, tuple]:
    # Saved keys are strings, live ones may be ints: compare "0/audio_backbone/..." names.
    return {
        "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }

  saved_shapes = shapes(manager.item_metadata(step)["state"])
  live_shapes = shapes(_to_savable(state_like))
  if saved_shapes.keys() != live_shapes.keys():
    differ = sorted(saved_shapes.keys() ^ live_shapes.keys())
    return f"the saved and the configured model have different parameters ({differ[0]}, ...)"
  for name, shape in live_shapes.items():
    if saved_shapes[name] != shape:
      return f"{name} has shape {saved_shapes[name]} in the checkpoint but {shape} in the model"
  return None


def restore_newest_usable(
    manager: ocp.CheckpointManager, state_like: nnx.State, data_iterator
) -> tuple[int | None, nnx.State]:
  """Restores the newest checkpoint that reads back; returns (step or None, state).

  A checkpoint that fails to restore (truncated or damaged files) is reported, renamed to
  `<step>.unreadable` (kept for inspection, invisible to the manager) and the previous one is
  tried. A checkpoint of another model (shapes differ from the configured one: a config change,
  not damage) and a workdir where every checkpoint fails stop the run with a clear error:
  starting over silently would lose the work.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  failures = []
  for step in steps:
    try:
      mismatch = _shape_mismatch(manager, step, state_like)
      if mismatch is not None:  # A config change, not damage: older checkpoints match no better.
        raise NoUsableCheckpointError(
            f"the checkpoint at step {step} in {manager.directory} does not fit the configured "
            f"model: {mismatch}. Use a new --workdir for a different model."
        )
      state = restore(manager, step, state_like, data_iterator)
    except NoUsableCheckpointError:
      raise
    except Exception as error:  # pylint: disable=broad-except  # orbax/tensorstore/json errors
      reason = " ".join(str(error).split())[:300]
      failures.append(f"step {step}: {type(error).__name__}: {reason}")
      logging.warning(
          "Checkpoint at step %d cannot be restored (%s: %s); trying the previous one.",
          step,
          type(error).__name__,
          reason,
      )
      continue
    set_aside(manager, steps[: len(failures)], suffix="unreadable")
    return step, state
  if failures and len(failures) == len(steps):
    raise NoUsableCheckpointError(
        f"none of the {len(steps)} checkpoints in {manager.directory} can be restored "
        f"(newest: {failures[0]})."
    )
  return None, state_like


def restore_best(manager: ocp.CheckpointManager, state_like: nnx.State) -> tuple[int, nnx.State]:
  """(step, state) of the best checkpoint by the validation metric (the newest if none has
  metrics), for evaluation. A workdir without checkpoints, or whose checkpoint is of another
  model, raises NoUsableCheckpointError with a message saying so."""
  step = manager.best_step()
  if step is None:
    step = manager.latest_step()
  if step is None:
    raise NoUsableCheckpointError(
        f"{manager.directory} holds no checkpoint; train first with --mode=train"
    )
  mismatch = _shape_mismatch(manager, step, state_like)
  if mismatch is not None:
    raise NoUsableCheckpointError(
        f"the checkpoint at step {step} in {manager.directory} does not fit the configured "
        f"model: {mismatch}"
    )
  return step, restore(manager, step, state_like)


def set_aside(manager: ocp.CheckpointManager, steps: list[int], *, suffix: str):
  """Renames checkpoint directories to `<step>.<suffix>` (process 0), kept but invisible to the
  manager; all processes sync, then the manager re-reads its directory."""
  if not steps:
    return
  if jax.process_index() == 0:
    for step in steps:
      path = epath.Path(manager.directory) / str(step)
      target = path.parent / f"{step}.{suffix}"
      path.rename(target)
      logging.warning("Moved checkpoint %d to %s", step, target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"stt_checkpoint_set_aside_{suffix}")
  manager.reload()
