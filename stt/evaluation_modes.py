"""The modes that evaluate a finished run's best checkpoint: `--mode=explain` (every configured
explainer, stt/explain/suite.py) and `--mode=sanity` (the parameter randomisation test,
stt/explain/sanity.py). stt/main.py calls them after, or instead of, `train.train_and_evaluate`.

Each restores the best checkpoint of the run in `workdir` with the model, data and task of the
run's own config.json (trained_run.with_trained_model), and adds its keys to results.json.
"""

from __future__ import annotations

import logging

from etils import epath
import jax
import ml_collections

from stt import checkpoint
from stt import config_validation
from stt import datasets
from stt import sharding
from stt import state as state_lib
from stt import trained_run
from stt.explain import explained_split
from stt.explain import sanity
from stt.explain import sanity_report
from stt.explain import suite
from stt.explain import viewer_build


def _restore_for_evaluation(config: ml_collections.ConfigDict, workdir: epath.Path, mode: str):
  """(config of the trained model, dataset, mesh, best step, graphdef, state) of a finished run.

  The model, data and task come from the run's config.json (trained_run.with_trained_model);
  the explain and sanity settings from `config`.
  """
  if not (workdir / trained_run.RESULTS_FILE).exists():
    raise checkpoint.NoUsableCheckpointError(
        f"{workdir} has no finished run (no results.json); train first with --mode=train"
    )
  config, differences = trained_run.with_trained_model(config, workdir)
  if differences:
    logging.warning(
        "--mode=%s evaluates the model the run in %s was trained with "
        "(its config.json); the given config differs in %s",
        mode,
        workdir,
        "; ".join(differences),
    )
  config_validation.validate(
      config, device_count=jax.device_count(), process_count=jax.process_count()
  )
  dataset = datasets.load(config)
  mesh = sharding.make_mesh(config)
  step, graphdef, state = state_lib.restore_best(workdir, config, dataset.num_classes, mesh)
  return config, dataset, mesh, step, graphdef, state


def explain_best(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """--mode=explain: every configured explainer on the best checkpoint, on the run's test split
  and/or the annotation sets of `explain.dataset` / `explain.datasets`, one set after the other.

  Adds `explain/<explainer>/...` (test split) and `explain_<set>/<explainer>/...` keys to
  results.json and writes workdir/explain/ (explain_<set>/) reports and viewer/ (viewer_<set>/).
  """
  workdir = epath.Path(workdir)
  config, dataset, mesh, step, graphdef, state = _restore_for_evaluation(config, workdir, "explain")
  metrics = {}
  for name in explained_split.explained_sets(config):  # '' the test split, else annotation sets
    source = explained_split.explain_source(config, dataset, name)
    metrics.update(
        suite.run(graphdef, state, source, mesh, config, workdir, dataset.class_names, name)
    )
    if config.explain.viewer:  # <workdir>/viewer/ (viewer_<set>/): stt/explain/view.py
      viewer_build.build(workdir, dataset=name, config=config, trained=(graphdef, state, mesh))
  return trained_run.write_results(
      workdir, {"best_step": step, **metrics}, write=jax.process_index() == 0
  )


def sanity_best(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """--mode=sanity: the parameter randomisation test (stt/explain/sanity.py) of the best
  checkpoint on the test split; adds the `sanity/...` keys to results.json and writes
  workdir/sanity/ (table and figure)."""
  workdir = epath.Path(workdir)
  config, dataset, mesh, step, graphdef, state = _restore_for_evaluation(config, workdir, "sanity")
  metrics = sanity.run(graphdef, state, dataset.sources["test"], mesh, config, dataset.num_classes)
  if jax.process_index() == 0:
    sanity_report.write(workdir / "sanity", metrics)
  return trained_run.write_results(
      workdir, {"best_step": step, **metrics}, write=jax.process_index() == 0
  )
