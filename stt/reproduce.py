r"""The paper's tables with one command: every (model, seed) trained, explained and tabulated.

  python -m stt.reproduce --suite=synthetic --workdir=/tmp/tables            # all of it, here
  python -m stt.reproduce --suite=smoke --workdir=/tmp/tables_smoke --seeds=2
  python -m stt.reproduce --suite=ave_features --workdir=W --dry_run > runs.txt   # for a queue
  python -m stt.reproduce --suite=ave_features --workdir=W --aggregate_only       # tables only

Each (row, seed) is one ordinary run in `<workdir>/<row>/seed<k>/`, one command:
`python -m stt.main --mode=train,explain,sanity` trains it (resuming from its checkpoints if it
was killed), evaluates its explainers, and runs the parameter randomisation test
(stt/explain/sanity.py), in one process; a run whose command finished is skipped. A row is
a model (`model.name`) or, for `synthetic_ablations`, a STAN variant. Explainers a model cannot have (the intrinsic
`attention` and `rollout` need the model's own maps) are not run for it and show as "—".
Output: `<workdir>/summary.json` (one record per cell, stt/reproduce_tables.py),
`tables.md` and `tables.csv` (Tables 1-4), and `figures/` (stt/reproduce_figures.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from typing import Callable

from etils import epath

from stt import models
from stt import reproduce_figures
from stt import reproduce_tables
from stt.explain import explainers as explainers_lib
from stt.explain import viewer_suite

COMPARED_MODELS = ("stan", "late_fusion", "audio_only", "visual_only", "avel", "joint_transformer")
EXPLAINERS = ("attention", "rollout", "gradient", "gradcam", "grad_x_input", "random", "center")
DONE_FILE = "reproduce_done.json"
REPO = epath.Path(__file__).resolve().parents[1]  # config paths are relative to it


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the tables: a config file (with its argument) and overrides."""

  name: str
  config: str
  overrides: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Suite:
  rows: tuple[Row, ...]
  explainers: tuple[str, ...] = EXPLAINERS
  extra: tuple[str, ...] = ()  # flags for every stt.main command of the suite


# Settings a compared model needs whatever the config: the joint transformer's modalities meet
# only through its bottleneck tokens, which takes two layers (stt/models/joint_transformer.py).
MODEL_OVERRIDES = {"joint_transformer": (("model.num_layers", "2"),)}
# On the synthetic set (8x8 cells) the joint transformer attends over 655 tokens: its training
# alone took longer than the other five rows together on 2 CPU cores. Visual tokens of 2x2 cells
# (175 tokens) make its step ~7x cheaper (docs/reproducing.md).
SYNTHETIC_MODEL_OVERRIDES = {"joint_transformer": (("model.token_pool", "2"),)}
# Flags of every run of the CPU-sized suites: one example panel per explainer (rendering 4 took
# ~20 s of a 55 s explanation run; the tables do not read them).
SYNTHETIC_EXTRA = ("--config.explain.num_panels=1",)
# XLA:CPU at optimisation level 1 without its expensive LLVM passes compiles the suite's
# programs ~40 % faster, and the synthetic-size training step runs as fast
# (benchmarks/RESULTS.md); a suite's short runs spend much of their time compiling. Only where
# jax can run on nothing but the CPU (`run_environment`).
CPU_XLA_FLAGS = ("--xla_backend_optimization_level=1", "--xla_llvm_disable_expensive_passes=true")
ACCELERATOR_PLUGINS = ("jax-cuda12-plugin", "jax-cuda13-plugin", "jax-rocm7-plugin", "libtpu")


def _model_rows(config: str, names=COMPARED_MODELS, model_overrides=None) -> tuple[Row, ...]:
  model_overrides = model_overrides or {}
  return tuple(
      Row(
          name,
          config,
          (("model.name", name),) + MODEL_OVERRIDES.get(name, ()) + model_overrides.get(name, ()),
      )
      for name in names
  )


SUITES = {
    "smoke": Suite(
        _model_rows("configs/synthetic.py:smoke", ("stan", "late_fusion")),
        explainers=("attention", "gradient", "random"),
        extra=("--config.explain.num_panels=0",),
    ),
    "synthetic": Suite(
        _model_rows("configs/synthetic.py", model_overrides=SYNTHETIC_MODEL_OVERRIDES),
        extra=SYNTHETIC_EXTRA,
    ),
    "synthetic_ablations": Suite(
        (
            Row("stan", "configs/synthetic.py"),
            Row(
                "stan_spatial_query_none",
                "configs/synthetic.py",
                (("model.spatial_query", "none"),),
            ),
            Row(
                "stan_spatial_query_learned",
                "configs/synthetic.py",
                (("model.spatial_query", "learned"),),
            ),
            Row(
                "stan_temporal_pool_mean",
                "configs/synthetic.py",
                (("model.temporal_pool", "mean"),),
            ),
            Row(
                "stan_pool_values_contextual",
                "configs/synthetic.py",
                (("model.pool_values", "contextual"),),
            ),
        ),
        extra=SYNTHETIC_EXTRA,
    ),
    "ave_features": Suite(
        _model_rows("configs/ave.py:features")
        + tuple(
            Row(
                f"{name}_localization",
                "configs/ave.py:features,localization",
                (("model.name", name),) + MODEL_OVERRIDES.get(name, ()),
            )
            for name in COMPARED_MODELS
        )
        + (Row("stan_weak", "configs/ave.py:features,weak"),)
    ),
    "kinetics_sounds": Suite(_model_rows("configs/kinetics_sounds.py")),
    "vggsound": Suite(_model_rows("configs/vggsound.py")),
}


@dataclasses.dataclass(frozen=True)
class Run:
  row: Row
  seed: int
  directory: epath.Path
  command: tuple[str, ...]  # stt.main --mode=train,explain,sanity


def explainers_for(row: Row, explainers: tuple[str, ...]) -> tuple[str, ...]:
  """The suite's explainers that the row's model can have."""
  name = dict(row.overrides).get("model.name", "stan")
  has = models.MODELS[name].EXPLANATIONS
  return tuple(e for e in explainers if explainers_lib.applies_to(e, has))


def smoke_config(config: str) -> str:
  """The config argument with `smoke` added (every config file takes it: a run of seconds)."""
  path, _, arg = config.partition(":")
  args = [a for a in arg.split(",") if a]
  return f"{path}:{','.join(args if 'smoke' in args else args + ['smoke'])}"


def plan(
    suite: Suite, workdir: epath.Path, seeds: int, only_rows=None, extra=(), smoke=False
) -> list[Run]:
  """Every run of the suite, rows in order, seeds 0..seeds-1 (`smoke`: each at smoke size)."""
  runs = []
  for row in suite.rows:
    if only_rows and row.name not in only_rows:
      continue
    for seed in range(seeds):
      directory = workdir / row.name / f"seed{seed}"
      names = ",".join(f'"{e}"' for e in explainers_for(row, suite.explainers))
      command = (
          sys.executable,
          "-m",
          "stt.main",
          f"--config={REPO / (smoke_config(row.config) if smoke else row.config)}",
          f"--workdir={directory}",
          f"--config.seed={seed}",
          *(f"--config.{key}={value}" for key, value in row.overrides),
          *suite.extra,
          *extra,
          "--mode=train,explain,sanity",
          f"--config.explain.explainers=({names},)",
          f"--config.sanity.explainers=({names},)",
      )
      runs.append(Run(row, seed, directory, command))
  return runs


def is_done(run: Run) -> bool:
  return (run.directory / DONE_FILE).exists()


def run_one(run: Run, execute: Callable[[tuple[str, ...], epath.Path], int]) -> float:
  """Trains and explains one run unless it is done; returns the seconds it took."""
  start = time.time()
  run.directory.mkdir(parents=True, exist_ok=True)
  status = execute(run.command, run.directory)
  if status != 0:
    raise RuntimeError(
        f"{run.row.name} seed {run.seed}: `{shlex.join(run.command)}` exited with "
        f"{status}; see {run.directory / 'log.txt'}; re-run to resume"
    )
  (run.directory / DONE_FILE).write_text(
      json.dumps({"command": list(run.command), "seconds": time.time() - start})
  )
  return time.time() - start


def cpu_only(environ=os.environ) -> bool:
  """Whether jax can only run on the CPU here: JAX_PLATFORMS=cpu, or no accelerator plugin
  installed (checked without starting jax, which would take the accelerator's memory)."""
  if environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    return True
  installed = set()
  for name in ACCELERATOR_PLUGINS:
    try:
      importlib.metadata.version(name)
      installed.add(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return not installed


def run_environment(workdir: epath.Path, environ=os.environ, cpu: bool | None = None) -> dict:
  """The environment of the suite's runs: `environ` plus, unless it sets them, a JAX
  compilation cache shared by all runs (`<workdir>/jax_cache`: the seeds of a row, and its
  train/explain/sanity steps, compile the same programs) and, on a CPU-only host, CPU_XLA_FLAGS."""
  env = dict(environ)
  env.setdefault("JAX_COMPILATION_CACHE_DIR", str(workdir / "jax_cache"))
  if cpu_only(environ) if cpu is None else cpu:
    flags = env.get("XLA_FLAGS", "").split()
    named = {flag.split("=")[0] for flag in flags}
    flags += [flag for flag in CPU_XLA_FLAGS if flag.split("=")[0] not in named]
    env["XLA_FLAGS"] = " ".join(flags)
  return env


def execute_logged(command: tuple[str, ...], directory: epath.Path, env: dict | None = None) -> int:
  """Runs `command`, appending its output to `<directory>/log.txt`; returns its exit status."""
  with (directory / "log.txt").open("a") as log:
    return subprocess.run(
        command, stdout=log, stderr=subprocess.STDOUT, check=False, env=env
    ).returncode


def run_all(runs: list[Run], jobs: int, execute=execute_logged, log=print) -> int:
  """Runs what is not done, `jobs` at a time, with a progress line per run; returns failures."""
  todo = [run for run in runs if not is_done(run)]
  log(f"reproduce: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to run")
  start, finished, failures = time.time(), 0, 0
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
    futures = {pool.submit(run_one, run, execute): run for run in todo}
    for future in concurrent.futures.as_completed(futures):
      run, finished = futures[future], finished + 1
      elapsed = time.time() - start
      eta = elapsed / finished * (len(todo) - finished)
      try:
        seconds = future.result()
        status = f"done in {seconds:.0f} s"
      except RuntimeError as error:
        failures += 1
        status = f"FAILED: {error}"
      log(
          f"[{finished}/{len(todo)}] {run.row.name} seed {run.seed}: {status}; elapsed "
          f"{elapsed:.0f} s, ETA {eta:.0f} s"
      )
  return failures


def _commit() -> str:
  try:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
        cwd=epath.Path(__file__).parent,
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _run_seconds(runs: list[Run]) -> float:
  """The summed time of the finished runs (each run's reproduce_done.json), over all the
  invocations that ran them."""
  total = 0.0
  for run in runs:
    if is_done(run):
      total += json.loads((run.directory / DONE_FILE).read_text()).get("seconds", 0.0)
  return total


def aggregate(
    suite_name: str,
    runs: list[Run],
    workdir: epath.Path,
    wall_time_s=None,
    command: str = "",
    doc: epath.Path | None = None,
) -> dict:
  """Writes summary.json, tables.md and tables.csv from the runs' results.json files (and the
  tables to `doc`, e.g. docs/results_synthetic.md)."""
  by_row = {}
  for run in runs:
    by_row.setdefault(run.row.name, []).append(run.directory)
  rows = reproduce_tables.summary_rows(reproduce_tables.read_results(by_row))
  summary = {
      "suite": suite_name,
      "commit": _commit(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "machine": f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
      "cpus": os.cpu_count(),
      "command": command,
      "wall_time_s": wall_time_s,
      "run_time_s": _run_seconds(runs),
      "runs_done": sum(is_done(run) for run in runs),
      "runs": len(runs),
      "rows": rows,
  }
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
  header = (
      f"# Suite `{suite_name}`\n\n"
      + (f"Generated by `{command}` (not typed).\n\n" if command else "")
      + f"Commit {summary['commit']}, {summary['date']}, {summary['machine']} "
      f"({summary['cpus']} CPUs). {summary['runs_done']} of {summary['runs']} runs finished; "
      f"their summed run time {summary['run_time_s'] / 60:.1f} min"
      + (f"; this invocation {wall_time_s / 60:.1f} min" if wall_time_s else "")
      + "."
  )
  text = reproduce_tables.markdown(rows, header)
  (workdir / "tables.md").write_text(text)
  if doc is not None:
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
  (workdir / "tables.csv").write_text(reproduce_tables.csv_text(rows))
  reproduce_figures.write(workdir, rows, by_row)
  viewer_suite.write(workdir, rows, by_row)  # index.html: the tables linked to the viewers
  return summary


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m stt.reproduce",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--suite", required=True, choices=sorted(SUITES))
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--models", default="", help="comma-separated rows to run (default: all)")
  parser.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine")
  parser.add_argument(
      "--explainers",
      default="",
      help="comma-separated explainers to explain and sanity-check with (default: the suite's)",
  )
  parser.add_argument(
      "--dry_run",
      action="store_true",
      help="print each run's stt.main command (train, explain, sanity checks), one line per "
      "run, and stop",
  )
  parser.add_argument(
      "--aggregate_only",
      action="store_true",
      help="only build the tables from the runs already in --workdir",
  )
  parser.add_argument(
      "--smoke",
      action="store_true",
      help="every run at its config's smoke size (seconds): to try a suite's plumbing, not "
      "for numbers",
  )
  parser.add_argument(
      "--doc",
      default="",
      help="also write the tables to this Markdown file, e.g. docs/results_synthetic.md",
  )
  parser.add_argument(
      "--config_override",
      action="append",
      default=[],
      help="a --config.KEY=VALUE added to every run, e.g. --config.data_dir=D",
  )
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = _parse_args(argv)
  suite = SUITES[args.suite]
  only = [m for m in args.models.split(",") if m]
  unknown = sorted(set(only) - {row.name for row in suite.rows})
  explainers = tuple(e for e in args.explainers.split(",") if e)
  unknown_explainers = sorted(set(explainers) - set(explainers_lib.EXPLAINERS))
  if unknown_explainers:
    print(
        f"stt.reproduce: error: unknown explainers {unknown_explainers} (known: "
        f"{sorted(explainers_lib.EXPLAINERS)})",
        file=sys.stderr,
    )
    return 2
  if explainers:
    suite = dataclasses.replace(suite, explainers=explainers)
  if unknown or args.seeds < 1 or args.jobs < 1:
    print(
        f"stt.reproduce: error: unknown rows {unknown} of suite {args.suite} (known: "
        f"{[row.name for row in suite.rows]})"
        if unknown
        else "stt.reproduce: error: --seeds and --jobs must be >= 1",
        file=sys.stderr,
    )
    return 2
  workdir = epath.Path(args.workdir).resolve()
  runs = plan(suite, workdir, args.seeds, only, extra=tuple(args.config_override), smoke=args.smoke)
  if args.dry_run:
    for run in runs:
      print(shlex.join(run.command))
    return 0
  start = time.time()
  execute = functools.partial(execute_logged, env=run_environment(workdir))
  failures = 0 if args.aggregate_only else run_all(runs, args.jobs, execute)
  summary = aggregate(
      args.suite,
      runs,
      workdir,
      None if args.aggregate_only else time.time() - start,
      command=shlex.join(["python", "-m", "stt.reproduce", *(argv or sys.argv[1:])]),
      doc=epath.Path(args.doc) if args.doc else None,
  )
  print(
      f"reproduce: {len(summary['rows'])} table cells -> {workdir / 'tables.md'}"
      + (f"; {failures} runs failed (re-run to resume them)" if failures else "")
  )
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
