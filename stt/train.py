"""Trains STAN, selects the best checkpoint on val, evaluates it on test, writes results.json.

Read top to bottom: setup → data → model and optimizer → resume → train loop (with periodic
validation and checkpoints) → final evaluation with the best checkpoint → results.json.
The train step is a functional `jax.jit` over the NNX state split from (model, optimizer),
sharded over a mesh of all devices, with the state buffers donated.
"""

from __future__ import annotations

import functools
import logging

from etils import epath
import jax
import ml_collections
import numpy as np

from stt import checkpoint
from stt import datasets
from stt import input_pipeline
from stt import preemption
from stt import resident_input
from stt import sharding
from stt import split_evaluator
from stt import state as state_lib
from stt import train_step as train_step_lib
from stt import trained_run
from stt.explain import panels
from stt.explain import viewer_build


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or Inf."""


def stop_on_divergence(manager, window: list, workdir) -> None:
  """Raises NonFiniteLossError after setting aside checkpoints that hold a diverged state.

  The loss of step s is computed with the state saved at step s-1, so when step s is the first
  non-finite one, the checkpoints from step s-1 on are renamed `<step>.diverged`.
  """
  first_bad = next(
      step for step, metrics in window if not np.isfinite(jax.device_get(metrics["loss"]))
  )
  loss = float(jax.device_get(dict(window)[first_bad]["loss"]))
  manager.wait_until_finished()
  checkpoint.set_aside(
      manager, [s for s in manager.all_steps() if s >= first_bad - 1], suffix="diverged"
  )
  kept = (
      f"the last good checkpoint (step {manager.latest_step()}) is kept in "
      f"{workdir / 'checkpoints'}"
      if manager.latest_step() is not None
      else "no good checkpoint had been written"
  )
  raise NonFiniteLossError(
      f"training loss is {loss} at step {first_bad}; stopping ({kept}). "
      "Lower optimizer.learning_rate or check the input data."
  )


def write_panels(writer, step: int, outputs: dict, dataset: datasets.Dataset, count: int):
  """Explanation panels of the first `count` val examples, as TensorBoard images."""
  positions = range(min(count, len(outputs["label"])))
  images = panels.panels_for_examples(
      outputs, dataset.sources["val"], positions, dataset.class_names
  )
  writer.write_images(
      step, {f"val_explanations/{video_id}": image[None] for video_id, image in images.items()}
  )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) training in `workdir`; returns and writes the final results."""
  workdir = epath.Path(workdir)  # a local path or gs://...
  if not str(workdir).startswith(("gs://", "s3://")):
    workdir = workdir.resolve()
  workdir.mkdir(parents=True, exist_ok=True)
  is_chief = jax.process_index() == 0
  # clu's metric writers import TensorFlow (about 5 s of the command's start): only a training
  # run loads them, so that config errors and --mode=explain answer without it.
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top

  writer = metric_writers.create_default_writer(
      str(workdir / "tensorboard"), just_logging=not is_chief
  )

  # --- Data ---
  dataset = datasets.load(config)
  if is_chief:  # So that tools (e.g. stt.explain.video) can use the model from the workdir alone.
    trained_run.save(workdir, config, dataset.class_names)
  mesh = sharding.make_mesh(config)
  per_host_batch = config.batch_size // jax.process_count()
  batch_sharding = sharding.batch_sharding(mesh)
  train_source = dataset.sources["train"]
  to_global_batch = functools.partial(input_pipeline.make_global_batch, sharding=batch_sharding)
  if config.input.device_resident:  # the pipeline yields indices; the device gathers the rows
    resident = resident_input.ResidentSplit(train_source, mesh)
    logging.info(
        "train split in device memory: %d examples, %.1f MB per device",
        resident.num_examples,
        resident.nbytes / 2**20,
    )
    train_source, to_global_batch = resident.index_source(), resident.batch
  train_iter = iter(
      input_pipeline.train_dataset(
          train_source,
          per_host_batch_size=per_host_batch,
          seed=config.seed,
          random_flip=config.input.random_flip,
          num_workers=config.input.num_workers,
          prefetch_buffer_size=config.input.prefetch_buffer_size,
      )
  )

  # --- Model and optimizer, created directly in their shardings ---
  graphdef, state, state_shardings = state_lib.create_state(config, dataset.num_classes, mesh)
  if config.mesh.fsdp > 1:
    split = [s for s in jax.tree.leaves(state_shardings) if s.spec != jax.sharding.PartitionSpec()]
    logging.info(
        "fsdp-sharded state arrays: %d of %d", len(split), len(jax.tree.leaves(state_shardings))
    )
  jit_train_step = jax.jit(
      functools.partial(train_step_lib.train_step, graphdef, config=config),
      donate_argnums=(0,),
      out_shardings=(state_shardings, sharding.replicated(mesh)),
  )
  evaluator = split_evaluator.Evaluator(graphdef, mesh, config)

  # --- Resume ---
  manager = state_lib.checkpoint_manager(workdir, config)
  resumed_step, state = checkpoint.restore_newest_usable(manager, state, train_iter)
  first_step = 1 if resumed_step is None else resumed_step + 1
  if resumed_step is not None:
    logging.info("Resuming from checkpoint at step %d", resumed_step)
  elif config.model.get("visual_weights") or config.model.get("audio_weights"):
    state = state_lib.load_pretrained_weights(graphdef, state, config)

  # --- Train loop ---
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_train_steps, writer=writer, every_steps=config.log_every_steps
  )
  window, last_train_loss = [], None
  preemption_flag = preemption.PreemptionFlag()
  for step in range(first_step, config.num_train_steps + 1):
    with jax.profiler.StepTraceAnnotation("train", step_num=step):
      batch = to_global_batch(next(train_iter))
      state, metrics = jit_train_step(state, batch)
    window.append((step, metrics))
    report_progress(step)
    is_last = step == config.num_train_steps
    evaluate_now = step % config.eval_every_steps == 0 or is_last
    save_now = evaluate_now or step % config.checkpoint_every_steps == 0
    preempted = preemption_flag.requested()
    # The loss is checked before anything is saved, so no checkpoint holds a diverged state.
    if step % config.log_every_steps == 0 or save_now or preempted:
      summary = {
          f"train/{k}": float(np.mean([jax.device_get(m[k]) for _, m in window]))
          for k in window[0][1]
      }
      if not np.isfinite(summary["train/loss"]):
        stop_on_divergence(manager, window, workdir)
      last_train_loss = summary["train/loss"]
      writer.write_scalars(step, summary)
      window = []
    if preempted:
      manager.wait_until_finished()
      if manager.latest_step() != step:
        checkpoint.save(manager, step, state, train_iter, force=True)
        manager.wait_until_finished()
      manager.close()
      preemption_flag.restore()
      raise preemption.Preempted(
          f"SIGTERM: saved a checkpoint at step {step} in {workdir / 'checkpoints'} and "
          "stopped; run the same command again to resume."
      )
    if evaluate_now:
      val_outputs = evaluator.predict(state, dataset.sources["val"])
      val = split_evaluator.split_metrics(val_outputs, "val")
      writer.write_scalars(step, val)
      if is_chief and config.explain.num_panels > 0 and {"where", "when"} <= val_outputs.keys():
        write_panels(writer, step, val_outputs, dataset, config.explain.num_panels)
      checkpoint.save(
          manager, step, state, train_iter, metrics={**val, "train/loss": last_train_loss}
      )
    elif save_now:
      checkpoint.save(manager, step, state, train_iter)  # no metrics: never "best"
  manager.wait_until_finished()
  preemption_flag.restore()

  # --- Final evaluation with the best checkpoint ---
  best_step = manager.best_step()
  if last_train_loss is None:  # Resumed a finished run: report the saved figure.
    last_train_loss = manager.metrics(manager.latest_step())["train/loss"]
  state = checkpoint.restore(manager, best_step, state)
  results = {
      "best_step": best_step,
      "train/loss": last_train_loss,
      "train/num_steps": config.num_train_steps,
  }
  results.update(evaluator.evaluate(state, dataset.sources["val"], "val", explain=True))
  results.update(evaluator.evaluate(state, dataset.sources["test"], "test", explain=True))
  writer.write_scalars(
      config.num_train_steps, {k: v for k, v in results.items() if isinstance(v, float)}
  )
  writer.flush()
  # A metric without trials (e.g. spatial pointing on a set without boxes) is NaN in memory
  # and null in the file.
  results = trained_run.write_results(workdir, results, write=is_chief)
  manager.close()
  if config.explain.viewer:  # <workdir>/viewer/index.html of the model's own maps
    viewer_build.build(workdir, config=config, trained=(graphdef, state, mesh))
  return results
