"""benchmarks/gpu_check.sh --cpu_smoke runs and writes the JSON the accelerator check promises."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_smoke_writes_every_figure(tmp_path):
  out = tmp_path / "gpu_check.json"
  env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_TIMEOUT_S="900")
  result = subprocess.run(
      [str(REPO / "benchmarks/gpu_check.sh"), "--cpu_smoke", str(out)],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=1200,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  figures = json.loads(out.read_text())

  assert figures["errors"] == {}
  assert figures["cpu_smoke"] is True
  assert figures["device"] and figures["backend"] == "cpu"
  for dtype in ("float32", "bfloat16"):
    assert figures["peak"]["peak_flops"][dtype] > 0
  assert figures["peak"]["copy_bytes_per_s"] > 0
  # The interleaved peak: measured before and after the work, with its spread.
  assert figures["peak"]["measurements"] == 2
  assert set(figures["peak"]["spread"]) == {"flops/float32", "flops/bfloat16", "copy", "cache_copy"}
  assert figures["peak_unstable"] == figures["peak"]["peak_unstable"]
  assert figures["versions"]["jax"] and figures["versions"]["flax"]
  # Raw-size bf16 at another batch (two on the accelerator; one more compile here).
  assert set(figures["raw_bf16_mfu_by_batch"]) == {"4"}
  for fraction in figures["raw_bf16_mfu_by_batch"].values():
    assert math.isfinite(fraction) and 0 < fraction < 1.5
  fractions = dict(figures["mfu"])
  # Each code path once: every size in float32, bfloat16 at the features size.
  assert set(fractions) == {
      "synthetic/float32",
      "features/float32",
      "features/bfloat16",
      "raw/float32",
  }
  fractions["ave_suite"] = figures["ave_suite"]["perturbation_roofline"]["fraction_of_peak"]
  for name, fraction in fractions.items():
    assert math.isfinite(fraction) and 0 < fraction < 1.5, (name, fraction)
  suite = figures["ave_suite"]
  assert (suite["tests"], suite["directions"], suite["fractions"]) == (2, 2, 10)
  assert len(suite["explainers"]) == 5
  assert math.isfinite(figures["ave_suite_seconds"]) and figures["ave_suite_seconds"] > 0
  assert {(row["size"], row["workers"]) for row in figures["input_pipeline"]} == {
      (size, workers) for size in ("features", "raw") for workers in (0, 1, "resident")
  }
  for row in figures["input_pipeline"]:
    assert math.isfinite(row["input_over_model"]) and row["input_over_model"] > 0
    assert row["device_waits"] == (row["input_over_model"] < 1)


def test_every_mode_plans_the_same_parts_and_cpu_keeps_the_real_sizes():
  sys.path.insert(0, str(REPO / "benchmarks"))
  import gpu_check  # pylint: disable=g-import-not-at-top

  plans = {mode: gpu_check.plan(mode) for mode in ("accelerator", "cpu", "cpu_smoke")}
  assert plans["accelerator"].keys() == plans["cpu"].keys() == plans["cpu_smoke"].keys()
  # The CPU figures of RESULTS.md: every training size in both dtypes where a CPU compiles it in
  # seconds, at the real segment count and AVE-size suite shapes (only the batches shrink).
  assert plans["cpu"]["num_segments"] == plans["accelerator"]["num_segments"] == 10
  assert plans["cpu"]["suite_shape"] == plans["accelerator"]["suite_shape"] == {}
  assert set(plans["cpu"]["train_dtypes"]) == set(gpu_check.TRAIN_SIZES)
  for size in gpu_check.TRAIN_SIZES:
    assert plans["cpu"]["train_batch"][size] < plans["accelerator"]["train_batch"][size]
  # What the next GPU run must answer: raw bf16 at two batches, 0 / 8 / 16 host workers.
  assert len(plans["accelerator"]["raw_bf16_batches"]) == 2
  assert plans["accelerator"]["input_workers"] == (0, 8, 16, "resident")
  with pytest.raises(AssertionError):
    gpu_check.plan("tpu")


def test_the_script_refuses_two_modes_at_once(tmp_path):
  result = subprocess.run(
      [str(REPO / "benchmarks/gpu_check.sh"), "--cpu", "--cpu_smoke", str(tmp_path / "x.json")],
      env=dict(os.environ, PYTHON=sys.executable),
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert result.returncode == 2 and "exclude each other" in result.stderr
  assert not (tmp_path / "x.json").exists()
