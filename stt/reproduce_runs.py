"""The runs of a reproduce suite: one `python -m stt.main --mode=train,explain,sanity` command
(the suite's `modes`) per (row, seed) in `<workdir>/<row>/seed<k>/`, run `jobs` at a time with a
progress line each; a run whose command finished (its DONE_FILE) is skipped, a killed one
resumes from its checkpoints.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Callable

from etils import epath

from stt import reproduce_suites

DONE_FILE = "reproduce_done.json"
REPO = epath.Path(__file__).resolve().parents[1]  # config paths are relative to it
# XLA:CPU at optimisation level 1 without its expensive LLVM passes compiles the suite's
# programs ~40 % faster, and the synthetic-size training step runs as fast
# (benchmarks/RESULTS.md); a suite's short runs spend much of their time compiling. Only where
# jax can run on nothing but the CPU (`run_environment`).
CPU_XLA_FLAGS = ("--xla_backend_optimization_level=1", "--xla_llvm_disable_expensive_passes=true")
ACCELERATOR_PLUGINS = ("jax-cuda12-plugin", "jax-cuda13-plugin", "jax-rocm7-plugin", "libtpu")


@dataclasses.dataclass(frozen=True)
class Run:
  row: reproduce_suites.Row
  seed: int
  directory: epath.Path
  command: tuple[str, ...]  # stt.main --mode=<the suite's modes>


def smoke_config(config: str) -> str:
  """The config argument with `smoke` added (every config file takes it: a run of seconds)."""
  path, _, arg = config.partition(":")
  args = [a for a in arg.split(",") if a]
  return f"{path}:{','.join(args if 'smoke' in args else args + ['smoke'])}"


def plan(
    suite: reproduce_suites.Suite,
    workdir: epath.Path,
    seeds: int,
    only_rows=None,
    extra=(),
    smoke=False,
) -> list[Run]:
  """Every run of the suite, rows in order, seeds 0..seeds-1 (`smoke`: each at smoke size)."""
  runs = []
  for row in suite.rows:
    if only_rows and row.name not in only_rows:
      continue
    for seed in range(seeds):
      directory = workdir / row.name / f"seed{seed}"
      names = ",".join(f'"{e}"' for e in reproduce_suites.explainers_for(row, suite.explainers))
      explain_flags = (
          (f"--config.explain.explainers=({names},)", f"--config.sanity.explainers=({names},)")
          if set(suite.modes) - {"train"}
          else ()
      )
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
          f"--mode={','.join(suite.modes)}",
          *explain_flags,
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


def run_seconds(runs: list[Run]) -> float:
  """The summed time of the finished runs (each run's reproduce_done.json), over all the
  invocations that ran them."""
  total = 0.0
  for run in runs:
    if is_done(run):
      total += json.loads((run.directory / DONE_FILE).read_text()).get("seconds", 0.0)
  return total
