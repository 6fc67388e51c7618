"""Shared fixtures: one smoke run of the main job per session, which also builds the data.

Every test that only needs *a* trained run reuses `smoke_run`'s workdir (copying it when it
changes it). JAX's persistent compilation cache is on for the session (this process and its
subprocesses), so the many smoke runs compile the train and eval steps once.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from data_pipelines import build
from data_pipelines import synthetic_files

REPO = pathlib.Path(__file__).resolve().parents[1]
# The real AVE release metadata (tests/data/ave/README.md); STT_AVE_METADATA_DIR points elsewhere.
AVE_METADATA_DIR = pathlib.Path(os.environ.get("STT_AVE_METADATA_DIR", REPO / "tests/data/ave"))
SMOKE = "--config=configs/synthetic.py:smoke"
REQUIRED_KEYS = (
    "test/accuracy",
    "test/num_examples",
    "val/accuracy",
    "train/loss",
    "explain/attention/pointing_spatial",
    "explain/attention/pointing_temporal",
)

# XLA:CPU's LLVM backend at optimization level 1 without its expensive passes. The tests' models
# are tiny, so compiling is most of their time: one smoke run of the main job took 73 s of CPU
# with the defaults and 51 s with these (2026-12-04), with bit-identical results (train loss,
# accuracy, pointing). Level 0 was as fast but not identical: it moved the first argmax of a
# bilinearly resized map (tests/test_pointing.py). Set for this process and, through the
# environment, its subprocesses.
FAST_COMPILE_XLA_FLAGS = (
    "--xla_backend_optimization_level=1",
    "--xla_llvm_disable_expensive_passes=true",
)
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
_COMPILATION_CACHE = None


def xla_flags(num_devices: int | None = None) -> str:
  """XLA_FLAGS of this session, with `num_devices` host CPU devices if given."""
  flags = os.environ.get("XLA_FLAGS", "").split()
  if num_devices is not None:
    flags = [f for f in flags if not f.startswith(_DEVICE_COUNT_FLAG)]
    flags.append(f"{_DEVICE_COUNT_FLAG}={num_devices}")
  return " ".join(flags)


def pytest_configure(config):
  """Fast XLA:CPU compilation, and a per-session JAX compilation cache unless the environment
  already names one."""
  del config
  global _COMPILATION_CACHE
  flags = os.environ.get("XLA_FLAGS", "").split()
  named = {flag.split("=")[0] for flag in flags}
  flags += [flag for flag in FAST_COMPILE_XLA_FLAGS if flag.split("=")[0] not in named]
  os.environ["XLA_FLAGS"] = " ".join(flags)
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _COMPILATION_CACHE = tempfile.mkdtemp(prefix="stt-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _COMPILATION_CACHE
  # Only programs worth caching (the model's steps), not every small op.
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  if "jax" in sys.modules:  # imported before this hook: it has read the environment already
    jax = sys.modules["jax"]
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs",
        float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
    )


def pytest_unconfigure(config):
  del config
  if _COMPILATION_CACHE is not None:
    shutil.rmtree(_COMPILATION_CACHE, ignore_errors=True)


def main_command(workdir, data_dir, *overrides, config=SMOKE):
  return [
      sys.executable,
      "-m",
      "stt.main",
      config,
      f"--workdir={workdir}",
      f"--config.data_dir={data_dir}",
      *overrides,
  ]


def subprocess_env(num_devices: int = 1):
  return dict(os.environ, XLA_FLAGS=xla_flags(num_devices))


def run_main(
    workdir, data_dir, *overrides, num_devices: int = 1, expect_rc: int = 0, timeout: int = 900
) -> subprocess.CompletedProcess:
  result = subprocess.run(
      main_command(workdir, data_dir, *overrides),
      cwd=REPO,
      env=subprocess_env(num_devices),
      capture_output=True,
      text=True,
      timeout=timeout,
  )
  assert result.returncode == expect_rc, result.stderr[-3000:]
  return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
  """(data_dir, workdir, stderr) of one complete smoke run that also builds the data.

  Shared by the whole session, and by all its pytest-xdist workers (the first to need it runs
  it under a lock; the others wait and reuse it): a test that changes the workdir works on a
  copy of it.
  """
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # the directory the session's workers share
  root = base / "shared_smoke_run"
  root.mkdir(exist_ok=True)
  data_dir, workdir, stderr = root / "tfds", root / "smoke", root / "stderr.txt"
  with synthetic_files.exclusive(base / "shared_smoke_run.lock"):
    if not stderr.exists():
      stderr.write_text(run_main(workdir, data_dir).stderr)
  return data_dir, workdir, stderr.read_text()


def explain_on_annotation_set(smoke_run, workdir, dataset: str, manual_dir) -> dict:
  """Builds `dataset` (vggss | flickr_soundnet) from `manual_dir` into the smoke run's data dir,
  explains a copy of the smoke run in `workdir` on it with `attention`; returns results.json."""
  data_dir, finished, _ = smoke_run
  shutil.copytree(finished, workdir)
  build_args = [f"--dataset={dataset}", f"--manual_dir={manual_dir}", f"--data_dir={data_dir}"]
  assert build.main([*build_args, "--frame_size=64"]) == 0
  run_main(
      workdir,
      data_dir,
      "--config.explain.explainers=('attention',)",
      f"--config.explain.dataset={dataset}",
      "--mode=explain",
  )
  return json.loads((workdir / "results.json").read_text())
