"""The `synthetic_ablations` suite (issue 29): its STAN variants, train-only runs, and tables
built from runs that have no explanation keys."""

import json
import shlex

from etils import epath
import pytest

from stt import reproduce
from stt import reproduce_runs
from stt import reproduce_suites

ABLATIONS = reproduce_suites.SUITES["synthetic_ablations"]
NEW_ROWS = {
    "stan_additive_scoring": "--config.model.spatial_scoring=additive",
    "stan_no_position_in_attention": "--config.model.spatial_position_embedding=False",
    "stan_one_head": "--config.model.spatial_heads=1",
    "stan_direct_alpha_loss": "--config.model.spatial_aux_weight=1.0",
}
ALL_FOUR = list(NEW_ROWS.values())
OLD_ROWS = {
    "stan": None,
    "stan_spatial_query_none": "--config.model.spatial_query=none",
    "stan_spatial_query_learned": "--config.model.spatial_query=learned",
    "stan_temporal_pool_mean": "--config.model.temporal_pool=mean",
    "stan_pool_values_contextual": "--config.model.pool_values=contextual",
}


def test_ablation_rows_train_only_with_their_overrides(tmp_path, capsys):
  assert (
      reproduce.main(
          ["--suite=synthetic_ablations", f"--workdir={tmp_path}", "--seeds=2", "--dry_run"]
      )
      == 0
  )
  lines = capsys.readouterr().out.splitlines()
  rows = list(OLD_ROWS) + list(NEW_ROWS) + ["stan_avel_where"]
  assert len(lines) == 2 * len(rows)
  for line, (row, seed) in zip(lines, [(r, s) for r in rows for s in range(2)]):
    command = shlex.split(line)
    assert f"--workdir={tmp_path}/{row}/seed{seed}" in command
    assert command[-1] == "--mode=train"  # no explanation or sanity step
    assert not any(
        c.startswith(("--config.explain.explainers", "--config.sanity")) for c in command
    )
    overrides = [c for c in command if c.startswith("--config.model.")]
    if row == "stan_avel_where":
      assert overrides == ALL_FOUR
      continue
    expected = {**OLD_ROWS, **NEW_ROWS}[row]
    assert overrides == ([expected] if expected else []), row
  # The other suites still explain and sanity-check.
  synthetic = reproduce_runs.plan(reproduce_suites.SUITES["synthetic"], epath.Path(tmp_path), 1)
  assert all("--mode=train,explain,sanity" in run.command for run in synthetic)


def test_tables_of_train_only_runs_have_the_validation_table(tmp_path):
  runs = reproduce_runs.plan(
      ABLATIONS, epath.Path(tmp_path), seeds=2, only_rows=["stan", "stan_one_head"]
  )

  def execute(command, directory):
    assert "--mode=train" in command
    value = 0.9 if directory.parent.name == "stan" else 0.7
    value += 0.1 * int(directory.name.removeprefix("seed"))
    results = {"test/accuracy": 1.0, "val/accuracy": 1.0}
    results["val/explain/attention/pointing_spatial"] = value  # what training writes
    (directory / "results.json").write_text(json.dumps(results))
    return 0

  assert reproduce_runs.run_all(runs, jobs=1, execute=execute, log=lambda _: None) == 0
  summary = reproduce.aggregate("synthetic_ablations", runs, epath.Path(tmp_path))
  cells = {(r["table"], r["model"], r["metric"], r["split"]): r for r in summary["rows"]}
  assert cells[("pointing", "stan_one_head", "pointing_spatial", "val")]["mean"] == pytest.approx(
      0.75
  )
  assert not any(r["table"] in ("perturbation", "sanity") for r in summary["rows"])
  tables = (tmp_path / "tables.md").read_text()
  # The validation table (ci95 of 2 seeds: t(0.975, 1) * 0.0707 / sqrt(2) = 0.635).
  assert "| stan_one_head | 1.000 ± 0.000 [±0.000] | 0.750 ± 0.071 [±0.635] | — |" in tables
