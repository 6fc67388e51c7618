"""stt.reproduce: planning, resuming, dry runs and the tables, with stand-in runs (fast) and one
real smoke suite (slow)."""

import json
import shlex
import subprocess
import sys

from etils import epath
import numpy as np
import pytest

from stt import reproduce
from stt import reproduce_tables
from tests.conftest import REPO

SMOKE = reproduce.SUITES["smoke"]
# What each stand-in run reports: accuracy and an AUC that depend on (row, seed).
FAKE = {
    ("stan", 0): 1.0,
    ("stan", 1): 0.8,
    ("stan", 2): 0.9,
    ("late_fusion", 0): 0.5,
    ("late_fusion", 1): 0.7,
    ("late_fusion", 2): 0.6,
}


def _fake_execute(calls: list, fail: set = frozenset()):
  """A stand-in for `stt.main`: the explain command writes a results.json."""

  def execute(command, directory):
    row, seed = directory.parent.name, int(directory.name.removeprefix("seed"))
    calls.append((row, seed, "--mode=explain" in command))
    if (row, seed) in fail:
      return 1
    value = FAKE[(row, seed)]
    if "--mode=explain" in command:
      explainers = [c for c in command if c.startswith("--config.explain.explainers=")]
      results = {"test/accuracy": value, "val/accuracy": value, "test/num_examples": 8}
      for name in ("attention", "gradient", "random"):
        if f'"{name}"' in explainers[0]:
          results[f"explain/{name}/spatial/positive_auc"] = 10 * value
          results[f"explain/{name}/pointing_spatial"] = value / 2
      (directory / "results.json").write_text(json.dumps(results))
    if "--mode=sanity" in command:  # added to the explain step's results, as stt.main does
      results = json.loads((directory / "results.json").read_text())
      results["sanity/blocks"] = ["classifier", "embedding"]
      results["sanity/trained/accuracy"] = value
      results["sanity/cascading/classifier/accuracy"] = value / 4
      results["sanity/cascading/classifier/gradient/where_spearman"] = value - 0.1
      results["sanity/cascading/embedding/gradient/where_spearman"] = value - 0.5
      results["sanity/independent/embedding/gradient/where_spearman"] = value / 2
      (directory / "results.json").write_text(json.dumps(results))
    return 0

  return execute


def test_plan_has_a_run_per_row_and_seed_and_only_the_explainers_a_model_has(tmp_path):
  runs = reproduce.plan(SMOKE, epath.Path(tmp_path), seeds=3)
  assert [(r.row.name, r.seed) for r in runs] == sorted(FAKE, key=lambda k: (k[0] != "stan", k))
  train, explain, sanity = runs[0].commands
  assert explain[: len(train)] == train and "--mode=explain" in explain
  assert sanity[: len(train)] == train and "--mode=sanity" in sanity
  assert '--config.sanity.explainers=("attention","gradient","random",)' in sanity
  assert "--config.seed=0" in train and f"--workdir={tmp_path}/stan/seed0" in train
  late_fusion_explain = [r for r in runs if r.row.name == "late_fusion"][0].commands[1]
  assert '--config.explain.explainers=("gradient","random",)' in late_fusion_explain
  assert reproduce.explainers_for(
      reproduce.Row("avel", "c", (("model.name", "avel"),)), reproduce.EXPLAINERS
  )[:2] == ("gradient", "gradcam")


def test_tables_are_mean_and_sample_std_over_seeds(tmp_path):
  runs = reproduce.plan(SMOKE, epath.Path(tmp_path), seeds=3)
  assert reproduce.run_all(runs, jobs=2, execute=_fake_execute([]), log=lambda _: None) == 0
  summary = reproduce.aggregate("smoke", runs, epath.Path(tmp_path))
  cells = {
      (r["table"], r["model"], r["explainer"], r["metric"], r["split"]): r for r in summary["rows"]
  }
  stan = cells[("recognition", "stan", None, "accuracy", "test")]
  assert stan["n"] == 3 and stan["mean"] == pytest.approx(0.9)
  assert stan["std"] == pytest.approx(np.std([1.0, 0.8, 0.9], ddof=1))
  auc = cells[("perturbation", "late_fusion", "gradient", "spatial/positive_auc", "test")]
  assert auc["mean"] == pytest.approx(6.0) and auc["split"] == "test"
  assert ("pointing", "late_fusion", "attention", "pointing_spatial", "test") not in cells
  assert set(summary) >= {"suite", "commit", "rows"} and len(summary["commit"]) == 40
  tables = (tmp_path / "tables.md").read_text()
  assert "| stan | 0.900 ± 0.100 | 0.900 ± 0.100 | — | 3 |" in tables
  assert "| late_fusion | attention | — |" in tables
  assert (tmp_path / "tables.csv").read_text().splitlines()[0] == ",".join(
      reproduce_tables.CSV_FIELDS
  )
  # Table 4: randomised = the blocks re-initialised; cascade prefixes, a block alone.
  sanity = {
      (tuple(r["randomised"] or ()), r["explainer"], r["metric"]): r
      for r in summary["rows"]
      if r["table"] == "sanity" and r["model"] == "stan"
  }
  assert sanity[((), None, "accuracy")]["mean"] == pytest.approx(0.9)
  assert sanity[(("classifier",), None, "accuracy")]["mean"] == pytest.approx(0.225)
  step = sanity[(("classifier", "embedding"), "gradient", "where_spearman")]
  assert step["mean"] == pytest.approx(0.4) and step["std"] == pytest.approx(0.1)
  alone = sanity[(("embedding",), "gradient", "where_spearman")]
  assert alone["mean"] == pytest.approx(0.45) and alone["n"] == 3
  # stan's gradient "where": 0.8 after the classifier, 0.4 (< 0.5) once the embedding is too.
  assert "Table 4: sanity checks, stan" in tables
  row = next(x for x in tables.splitlines() if x.startswith("| gradient | where_spearman"))
  assert row.split(" | ")[3:6] == ["0.800 ± 0.100", "0.400 ± 0.100", "0.450 ± 0.050"]
  assert row.rstrip(" |").endswith("embedding")
  for name in ("sanity_stan", "sanity_late_fusion"):
    assert (tmp_path / "figures" / f"{name}.png").exists()


def test_a_killed_suite_reruns_only_what_did_not_finish(tmp_path):
  runs = reproduce.plan(SMOKE, epath.Path(tmp_path), seeds=3)
  calls, lines = [], []
  failures = reproduce.run_all(
      runs, jobs=1, execute=_fake_execute(calls, {("late_fusion", 1)}), log=lines.append
  )
  assert failures == 1 and "FAILED" in " ".join(lines)
  first = reproduce.aggregate("smoke", runs, epath.Path(tmp_path))["rows"]
  calls.clear()
  assert reproduce.run_all(runs, jobs=1, execute=_fake_execute(calls), log=lines.append) == 0
  assert calls == [("late_fusion", 1, False), ("late_fusion", 1, True), ("late_fusion", 1, False)]
  assert "6 runs, 5 already done, 1 to run" in lines[-2]
  again = reproduce.aggregate("smoke", runs, epath.Path(tmp_path))["rows"]
  fresh_dir = tmp_path / "fresh"
  fresh = reproduce.plan(SMOKE, epath.Path(fresh_dir), seeds=3)
  reproduce.run_all(fresh, jobs=3, execute=_fake_execute([]), log=lambda _: None)
  assert again == reproduce.aggregate("smoke", fresh, epath.Path(fresh_dir))["rows"]
  assert len(first) < len(again) or first != again  # the failed run was missing before


def test_cli_dry_run_and_bad_arguments(tmp_path, capsys):
  assert (
      reproduce.main(
          [
              "--suite=smoke",
              f"--workdir={tmp_path}",
              "--seeds=2",
              "--models=late_fusion",
              "--dry_run",
          ]
      )
      == 0
  )
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 6 and all(shlex.split(line)[1:3] == ["-m", "stt.main"] for line in lines)
  assert reproduce.main(["--suite=smoke", f"--workdir={tmp_path}", "--models=mbt"]) == 2
  assert "unknown rows ['mbt']" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_suite_end_to_end_and_its_dry_run_commands(tmp_path, smoke_run):
  """The real suite (1 seed), then its dry-run commands run one by one give the same tables."""
  override = f"--config_override=--config.data_dir={smoke_run[0]}"
  run = lambda *args: subprocess.run(
      [sys.executable, "-m", "stt.reproduce", "--suite=smoke", "--seeds=1", override, *args],
      capture_output=True,
      text=True,
      cwd=REPO,
      timeout=3600,
  )
  done = run(f"--workdir={tmp_path / 'a'}")
  assert done.returncode == 0, done.stderr[-3000:]
  summary = json.loads((tmp_path / "a" / "summary.json").read_text())
  cells = {(r["model"], r["explainer"], r["metric"]): r for r in summary["rows"]}
  assert cells[("stan", None, "accuracy")]["n"] == 1
  assert ("late_fusion", "attention", "pointing_spatial") not in cells
  assert cells[("late_fusion", "gradient", "pointing_spatial")]["n"] == 1
  again = run(f"--workdir={tmp_path / 'a'}")
  assert "2 runs, 2 already done, 0 to run" in again.stdout
  dry = run(f"--workdir={tmp_path / 'b'}", "--dry_run")
  for line in dry.stdout.strip().splitlines():
    assert subprocess.run(shlex.split(line), capture_output=True, cwd=REPO).returncode == 0
  assert run(f"--workdir={tmp_path / 'b'}", "--aggregate_only").returncode == 0
  rows_b = json.loads((tmp_path / "b" / "summary.json").read_text())["rows"]
  assert rows_b == summary["rows"]
