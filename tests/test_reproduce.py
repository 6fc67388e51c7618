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
from stt import reproduce_figures
from stt import reproduce_runs
from stt import reproduce_suites
from stt import reproduce_tables
from stt import split_evaluator
from tests.conftest import REPO

SMOKE = reproduce_suites.SUITES["smoke"]
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
  """A stand-in for `stt.main --mode=train,explain,sanity`: writes the run's results.json."""

  def execute(command, directory):
    row, seed = directory.parent.name, int(directory.name.removeprefix("seed"))
    calls.append((row, seed, "--mode=train,explain,sanity" in command))  # one command per run
    if (row, seed) in fail:
      return 1
    value = FAKE[(row, seed)]
    if "--mode=train,explain,sanity" in command:
      explainers = [c for c in command if c.startswith("--config.explain.explainers=")]
      results = {"test/accuracy": value, "val/accuracy": value, "test/num_examples": 8}
      results["val/explain/attention/pointing_temporal"] = value / 4  # from training
      for name in ("attention", "gradient", "random"):
        if f'"{name}"' in explainers[0]:
          results[f"explain/{name}/spatial/positive_auc"] = 10 * value
          results[f"explain/{name}/pointing_spatial"] = value / 2
      (directory / "results.json").write_text(json.dumps(results))
      # The explain step's per-video scores (stt/explain/video_scores.py): 10 videos, the
      # first 10 * value right; attention hits the first 10 * value / 2 videos' one trial.
      right = round(10 * value)
      videos = {
          "video_id": [f"v{i}" for i in range(10)],
          "label": [0] * 10,
          "correct": [i < right for i in range(10)],
          "explainers": {
              name: {
                  "pointing_spatial_hits": [
                      int(i < right / 2 and name != "random") for i in range(10)
                  ],
                  "pointing_spatial_trials": [1] * 10,
                  "pointing_temporal": [None] * 10,
              }
              for name in ("attention", "gradient", "random")
              if f'"{name}"' in explainers[0]
          },
      }
      (directory / "explain").mkdir()
      (directory / "explain" / "videos.json").write_text(json.dumps(videos))
      # The sanity checks add to the explain step's results, as stt.main does.
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
  runs = reproduce_runs.plan(SMOKE, epath.Path(tmp_path), seeds=3)
  assert [(r.row.name, r.seed) for r in runs] == sorted(FAKE, key=lambda k: (k[0] != "stan", k))
  command = runs[0].command
  assert command[1:3] == ("-m", "stt.main") and "--mode=train,explain,sanity" in command
  assert '--config.explain.explainers=("attention","gradient","random",)' in command
  assert '--config.sanity.explainers=("attention","gradient","random",)' in command
  assert "--config.seed=0" in command and f"--workdir={tmp_path}/stan/seed0" in command
  late_fusion = [r for r in runs if r.row.name == "late_fusion"][0].command
  assert '--config.explain.explainers=("gradient","random",)' in late_fusion
  assert reproduce_suites.explainers_for(
      reproduce_suites.Row("avel", "c", (("model.name", "avel"),)), reproduce_suites.EXPLAINERS
  )[:2] == (
      "attention",
      "gradient",
  )  # AVEL's own "where" (issue 29 §1)


def test_smoke_config_adds_the_argument_once():
  assert (
      reproduce_runs.smoke_config("configs/ave.py:features,weak")
      == "configs/ave.py:features,weak,smoke"
  )
  assert reproduce_runs.smoke_config("configs/synthetic.py") == "configs/synthetic.py:smoke"
  assert reproduce_runs.smoke_config("configs/synthetic.py:smoke") == "configs/synthetic.py:smoke"


def test_tables_are_mean_and_sample_std_over_seeds(tmp_path):
  runs = reproduce_runs.plan(SMOKE, epath.Path(tmp_path), seeds=3)
  assert reproduce_runs.run_all(runs, jobs=2, execute=_fake_execute([]), log=lambda _: None) == 0
  doc = epath.Path(tmp_path) / "docs" / "results.md"
  summary = reproduce.aggregate("smoke", runs, epath.Path(tmp_path), command="run it", doc=doc)
  assert doc.read_text() == (tmp_path / "tables.md").read_text()
  assert "Generated by `run it` (not typed)." in doc.read_text()
  assert summary["runs_done"] == summary["runs"] == 6
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
  assert stan["ci95"] == pytest.approx(0.248414, abs=1e-6)  # t(0.975, 2) * 0.1 / sqrt(3)
  assert "| stan | 0.900 ± 0.100 [±0.248] | 0.900 ± 0.100 [±0.248] | — | 3 |" in tables
  assert "| late_fusion | attention | — |" in tables
  # The validation table: the model's own maps on val, mean ± std (what choices rest on).
  assert "| stan | 0.900 ± 0.100 [±0.248] | — | — | 0.225 ± 0.025 [±0.062] | — | — |" in tables
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
  assert row.split(" | ")[3:6] == [
      "0.800 ± 0.100 [±0.248]",
      "0.400 ± 0.100 [±0.248]",
      "0.450 ± 0.050 [±0.124]",
  ]
  assert row.rstrip(" |").endswith("embedding")
  # The paired tests: stan right on 27 of 30 (seed, video) pairs, late_fusion on 18.
  comparisons = {
      (r["versus"], r["explainer"], r["metric"]): r
      for r in summary["rows"]
      if r["table"] == "comparisons"
  }
  assert set(comparisons) == {
      ("late_fusion", None, "accuracy"),
      ("stan", "attention", "pointing_spatial"),
      ("stan", "gradient", "pointing_spatial"),
  }  # late_fusion has no own map: no pointing row
  accuracy = comparisons[("late_fusion", None, "accuracy")]
  assert accuracy["difference"] == pytest.approx((27 - 18) / 30)
  assert accuracy["n_pairs"] == 30 and accuracy["n_seeds"] == 3
  assert accuracy["p_value"] < 0.01 and accuracy["ci_low"] > 0
  assert (
      "## Comparisons" in tables and "| accuracy | stan | late_fusion | 0.900 | 0.600 |" in tables
  )
  csv_rows = (tmp_path / "tables.csv").read_text().splitlines()
  assert sum(line.startswith("comparisons,stan,") for line in csv_rows) == 3
  for name in ("sanity_stan", "sanity_late_fusion"):
    assert (tmp_path / "figures" / f"{name}.png").exists()


def test_a_killed_suite_reruns_only_what_did_not_finish(tmp_path):
  runs = reproduce_runs.plan(SMOKE, epath.Path(tmp_path), seeds=3)
  calls, lines = [], []
  failures = reproduce_runs.run_all(
      runs, jobs=1, execute=_fake_execute(calls, {("late_fusion", 1)}), log=lines.append
  )
  assert failures == 1 and "FAILED" in " ".join(lines)
  first = reproduce.aggregate("smoke", runs, epath.Path(tmp_path))["rows"]
  calls.clear()
  assert reproduce_runs.run_all(runs, jobs=1, execute=_fake_execute(calls), log=lines.append) == 0
  assert calls == [("late_fusion", 1, True)]
  assert "6 runs, 5 already done, 1 to run" in lines[-2]
  again = reproduce.aggregate("smoke", runs, epath.Path(tmp_path))["rows"]
  fresh_dir = tmp_path / "fresh"
  fresh = reproduce_runs.plan(SMOKE, epath.Path(fresh_dir), seeds=3)
  reproduce_runs.run_all(fresh, jobs=3, execute=_fake_execute([]), log=lambda _: None)
  assert again == reproduce.aggregate("smoke", fresh, epath.Path(fresh_dir))["rows"]
  assert len(first) < len(again) or first != again  # the failed run was missing before


def test_synthetic_suite_pools_the_joint_transformers_tokens_only(tmp_path):
  runs = reproduce_runs.plan(reproduce_suites.SUITES["synthetic"], epath.Path(tmp_path), seeds=1)
  train = {run.row.name: run.command for run in runs}
  assert set(train) == set(reproduce_suites.COMPARED_MODELS)
  for name, command in train.items():
    pooled = "--config.model.token_pool=2" in command
    assert pooled == (name == "joint_transformer"), name
    assert "--config.explain.num_panels=1" in command
  assert "--config.model.num_layers=2" in train["joint_transformer"]
  # The AVE grid (7x7) is not pooled.
  ave = reproduce_runs.plan(reproduce_suites.SUITES["ave_features"], epath.Path(tmp_path), seeds=1)
  assert not any("token_pool" in " ".join(run.command) for run in ave)


def test_runs_share_a_compilation_cache_and_cpu_hosts_compile_fast(tmp_path):
  workdir = epath.Path(tmp_path)
  env = reproduce_runs.run_environment(workdir, {"XLA_FLAGS": "--a=1", "PATH": "/bin"}, cpu=True)
  assert env["JAX_COMPILATION_CACHE_DIR"] == str(workdir / "jax_cache")
  assert (
      env["XLA_FLAGS"].split() == ["--a=1", *reproduce_runs.CPU_XLA_FLAGS] and env["PATH"] == "/bin"
  )
  # What the environment sets wins; an accelerator host keeps its compiler's defaults.
  mine = {
      "JAX_COMPILATION_CACHE_DIR": "/c",
      "XLA_FLAGS": "--xla_backend_optimization_level=3",
  }
  env = reproduce_runs.run_environment(workdir, mine, cpu=True)
  assert env["JAX_COMPILATION_CACHE_DIR"] == "/c"
  assert env["XLA_FLAGS"].split() == [
      "--xla_backend_optimization_level=3",
      "--xla_llvm_disable_expensive_passes=true",
  ]
  assert "XLA_FLAGS" not in reproduce_runs.run_environment(workdir, {}, cpu=False)
  assert reproduce_runs.cpu_only({"JAX_PLATFORMS": "cpu"})
  assert reproduce_runs.cpu_only({})  # this test machine has no accelerator plugin


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
  assert len(lines) == 2 and all(shlex.split(line)[1:3] == ["-m", "stt.main"] for line in lines)
  assert reproduce.main(["--suite=smoke", f"--workdir={tmp_path}", "--models=mbt"]) == 2
  assert "unknown rows ['mbt']" in capsys.readouterr().err


def test_cli_explainers_pick_a_subset_of_the_suites(tmp_path, capsys):
  arguments = ["--suite=smoke", f"--workdir={tmp_path}", "--seeds=1", "--dry_run"]
  assert reproduce.main([*arguments, "--models=stan", "--explainers=attention"]) == 0
  (command,) = capsys.readouterr().out.strip().splitlines()
  assert command.endswith(
      "--mode=train,explain,sanity '--config.explain.explainers=(\"attention\",)' "
      "'--config.sanity.explainers=(\"attention\",)'"
  )
  # late_fusion has no attention maps: of the two, only gradient applies.
  assert (
      reproduce.main([*arguments, "--models=late_fusion", "--explainers=attention,gradient"]) == 0
  )
  (command,) = capsys.readouterr().out.strip().splitlines()
  assert "'--config.explain.explainers=(\"gradient\",)'" in command
  assert reproduce.main([*arguments, "--explainers=attention,shap"]) == 2
  assert "unknown explainers ['shap']" in capsys.readouterr().err


def summary_videos(run_dir) -> int:
  """The number of test videos in a run's explain/videos.json."""
  return len(json.loads((run_dir / "explain" / "videos.json").read_text())["video_id"])


@pytest.mark.slow
def test_smoke_suite_end_to_end_and_its_dry_run_commands(tmp_path, smoke_run):
  """The real suite (1 seed); its dry-run prints the very commands the suite ran, and those of
  one row, run one by one, give that row's same tables with --aggregate_only."""
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
  cells = {
      (r["model"], r["explainer"], r["metric"]): r
      for r in summary["rows"]
      if r["table"] != "comparisons"
  }
  assert cells[("stan", None, "accuracy")]["n"] == 1
  assert ("late_fusion", "attention", "pointing_spatial") not in cells
  assert cells[("late_fusion", "gradient", "pointing_spatial")]["n"] == 1
  assert all("ci95" in r for r in summary["rows"])  # None: one seed has no interval
  assert cells[("stan", None, "accuracy")]["ci95"] is None
  # The paired tests read each run's explain/videos.json: STAN against late_fusion.
  accuracy = next(
      r for r in summary["rows"] if r["table"] == "comparisons" and r["metric"] == "accuracy"
  )
  assert accuracy["versus"] == "late_fusion" and accuracy["n_seeds"] == 1
  assert all(np.isfinite(accuracy[k]) for k in ("difference", "ci95", "p_value"))
  assert accuracy["n_pairs"] == summary_videos(tmp_path / "a" / "stan" / "seed0")
  again = run(f"--workdir={tmp_path / 'a'}")
  assert "2 runs, 2 already done, 0 to run" in again.stdout
  dry = run(f"--workdir={tmp_path / 'b'}", "--dry_run").stdout.strip().splitlines()
  ran = [
      shlex.join(
          json.loads((tmp_path / "a" / row / "seed0" / reproduce_runs.DONE_FILE).read_text())[
              "command"
          ]
      ).replace(str(tmp_path / "a"), str(tmp_path / "b"))
      for row in ("stan", "late_fusion")
  ]
  assert dry == ran and len(dry) == 2
  # Run by hand (one row, to keep the test short), they give that row's cells again.
  one_row = run(f"--workdir={tmp_path / 'b'}", "--models=late_fusion", "--dry_run")
  for line in one_row.stdout.strip().splitlines():
    assert subprocess.run(shlex.split(line), capture_output=True, cwd=REPO).returncode == 0
  aggregated = run(f"--workdir={tmp_path / 'b'}", "--models=late_fusion", "--aggregate_only")
  assert aggregated.returncode == 0, aggregated.stderr[-3000:]
  rows_b = json.loads((tmp_path / "b" / "summary.json").read_text())["rows"]
  late_fusion = [r for r in summary["rows"] if r["model"] == "late_fusion"]
  assert late_fusion and [r for r in rows_b if r["model"] == "late_fusion"] == late_fusion


def test_perturbation_figure_draws_only_the_curves_table_2_has(tmp_path):
  # Issue 29 §5: rollout's spatial curves on STAN (attention's by construction) were drawn from
  # curves that had values while Table 2 blanks them; the figure now follows the table.
  fractions = [0.0, 0.5]
  curves = {
      name: {test: np.array([0.9, 0.5]) for test in reproduce_figures.TESTS}
      for name in ("attention", "rollout")
  }
  rows = [
      dict(table="perturbation", model="stan", explainer=name, metric=f"{test}_auc")
      for name in ("attention", "rollout")
      for test in reproduce_figures.TESTS
      if not (name == "rollout" and test.startswith("spatial"))
  ]
  drawn = reproduce_figures.drawn_tests(rows, "stan")
  lines = reproduce_figures.perturbation_figure(
      epath.Path(tmp_path) / "p.png", "stan", fractions, curves, drawn
  )
  assert lines["spatial/positive"] == lines["spatial/negative"] == ["attention"]
  assert lines["temporal/positive"] == ["attention", "rollout"]
  assert (tmp_path / "p.png").exists()


def test_head_pointing_and_the_validation_tables_head_columns():
  # Issue 29 §2: each head's map alone is scored on val (pointing_spatial_head<k>) and shown.
  v, t, heads = 2, 2, 3
  attention = np.zeros((v, t, heads, 4), np.float32)  # 2x2 grid on 100 px frames
  attention[:, :, 0, 0] = 1.0  # head 0: the top-left cell, on the box
  attention[:, :, 1, 3] = 1.0  # head 1: the bottom-right cell, off it
  attention[:, :, 2, 0] = attention[:, :, 2, 3] = 0.5
  attention[0, :, 2, 3] = attention[1, :, 2, 0] = 0.6  # head 2: top-left in video 1 only
  boxes = np.tile(np.array([0, 0, 30, 30], np.float32), (v, t, 1, 1))
  out = {
      "where": attention.mean(2).reshape(v, t, 2, 2),
      "spatial_attention": attention,
      "boxes": boxes,
      "box_mask": np.ones((v, t, 1), bool),
      "frame_size": np.full((v, 2), 100),
      "label": np.array([0, 1]),
      "segment_mask": np.ones((v, t), bool),
  }
  scores = split_evaluator.head_pointing(out, 15.0)
  assert scores == {
      "pointing_spatial_head0": 1.0,
      "pointing_spatial_head1": 0.0,
      "pointing_spatial_head2": 0.5,
  }
  assert split_evaluator.head_pointing({**out, "spatial_attention": attention[:, :, :1]}, 15) == {}
  results = [
      {
          "val/accuracy": 0.5,
          "val/explain/attention/pointing_spatial": 0.75,
          "val/explain/attention/pointing_spatial_in_box": 0.5,
          **{f"val/explain/attention/{k}": value for k, value in scores.items()},
      }
  ]
  rows = reproduce_tables.summary_rows({"stan": results, "avel": [{"val/accuracy": 0.4}]})
  text = reproduce_tables.markdown(rows, "# t")
  header = next(x for x in text.splitlines() if x.startswith("| model | val accuracy |"))
  assert header.split(" | ")[2:4] == ["pointing_spatial", "pointing_spatial_in_box"]
  assert header.rstrip(" |").endswith("pointing_spatial_head1 | pointing_spatial_head2")
  assert "| stan | 0.500 ± 0.000 | 0.750 ± 0.000 | 0.500 ± 0.000 | — | — | — | 1.000 ± 0.000 |" in (
      text
  )


def test_pointing_table_has_in_box_and_says_why_ciou_is_absent():
  def results(ciou):
    return {
        "explain/gradient/pointing_spatial": 0.5,
        "explain/gradient/pointing_spatial_in_box": 0.25,
        "explain/gradient/ciou_mean": 0.2,
        **({"explain/gradient/ciou": ciou} if ciou is not None else {}),
    }

  assert "pointing_spatial_in_box" in reproduce_tables.POINTING_METRICS
  small = reproduce_tables.markdown(reproduce_tables.summary_rows({"stan": [results(None)]}), "#")
  # Only the measured columns: pointing_spatial, pointing_spatial_in_box, ciou_mean.
  assert "| stan | gradient | 0.500 ± 0.000 | 0.250 ± 0.000 | 0.200 ± 0.000 |" in small
  assert "| ciou |" not in small and "| ciou_mean |" in small
  assert "covers under a quarter of the frame" in small
  large = reproduce_tables.markdown(reproduce_tables.summary_rows({"stan": [results(0.3)]}), "#")
  assert "covers under a quarter of the frame" not in large
