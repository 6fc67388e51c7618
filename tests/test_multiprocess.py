"""Multi-host training as real processes on localhost (launch/local.py, jax.distributed, gloo)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from stt import distributed
from stt import sharding
from tests.conftest import REPO
from tests.conftest import SMOKE
from tests.conftest import run_main


def _launch(workdir, data_dir, *overrides, num_processes=2, devices_per_process=2):
  return [
      sys.executable,
      "launch/local.py",
      f"--num_processes={num_processes}",
      f"--devices_per_process={devices_per_process}",
      "--",
      sys.executable,
      "-m",
      "stt.main",
      SMOKE,
      f"--workdir={workdir}",
      f"--config.data_dir={data_dir}",
      *overrides,
  ]


@pytest.mark.slow
def test_two_processes_of_two_devices_equal_one_process_of_four(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  multi = subprocess.run(
      _launch(tmp_path / "multi", data_dir), cwd=REPO, capture_output=True, text=True, timeout=900
  )
  assert multi.returncode == 0, multi.stdout[-3000:]
  assert "[p0]" in multi.stdout and "[p1]" in multi.stdout
  # Only process 0 logs progress (TensorBoard files and results.json are process 0's too).
  assert "train/loss=" in multi.stdout.split("[p0]", 1)[1]
  assert not any(
      "train/loss=" in line for line in multi.stdout.splitlines() if line.startswith("[p1]")
  )
  run_main(tmp_path / "single", data_dir, num_devices=4)

  got = json.loads((tmp_path / "multi" / "results.json").read_text())
  expected = json.loads((tmp_path / "single" / "results.json").read_text())
  assert got["train/num_steps"] == expected["train/num_steps"] == 6
  assert got["test/num_examples"] == expected["test/num_examples"] == 8
  for key in (
      "train/loss",
      "test/accuracy",
      "test/loss",
      "val/accuracy",
      "explain/attention/pointing_spatial",
      "explain/attention/pointing_temporal",
  ):
    assert got[key] == pytest.approx(expected[key], abs=1e-4), key


@pytest.mark.slow
def test_fsdp_shards_large_arrays_and_trains_like_replicated(smoke_run, tmp_path):
  """4 devices as 2 (data) x 2 (fsdp): same results as pure data parallelism."""
  data_dir, _, _ = smoke_run
  run_main(tmp_path / "replicated", data_dir, num_devices=4)
  fsdp = run_main(
      tmp_path / "fsdp",
      data_dir,
      "--config.mesh.fsdp=2",
      "--config.mesh.fsdp_min_size=1024",
      num_devices=4,
  )
  assert "fsdp-sharded state arrays:" in fsdp.stderr
  sharded = int(fsdp.stderr.split("fsdp-sharded state arrays: ")[1].split()[0])
  assert sharded > 10
  got = json.loads((tmp_path / "fsdp" / "results.json").read_text())
  expected = json.loads((tmp_path / "replicated" / "results.json").read_text())
  for key in ("train/loss", "test/loss", "test/accuracy", "val/accuracy"):
    assert got[key] == pytest.approx(expected[key], abs=1e-4), key


@pytest.mark.parametrize(
    "shape, fsdp, min_size, spec",
    [
        ((512, 128), 2, 1024, ("fsdp", None)),
        ((128, 512), 4, 1024, (None, "fsdp")),
        ((3, 3, 16, 32), 2, 1024, (None, None, None, "fsdp")),
        ((3, 3, 3, 3), 2, 1, ()),  # no dimension divides evenly: replicated
        ((512, 128), 2, 10**6, ()),  # too small to be worth splitting
        ((512, 128), 1, 1, ()),
    ],
)
def test_fsdp_partition_specs(shape, fsdp, min_size, spec):
  assert tuple(sharding.array_spec(shape, fsdp, min_size)) == spec


def _children(pid: int) -> list[int]:
  out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
  return [int(line) for line in out.split()]


@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_at_the_same_step(smoke_run, tmp_path):
  """A preemption notice on one host: every host saves the same step and exits 143."""
  data_dir, _, _ = smoke_run
  longer = (
      "--config.num_train_steps=200",
      "--config.eval_every_steps=100",
      "--config.checkpoint_every_steps=100",
      "--config.log_every_steps=1",
  )
  launcher = subprocess.Popen(
      _launch(tmp_path, data_dir, *longer),
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  deadline = time.monotonic() + 600
  lines = []
  for line in launcher.stdout:  # wait until training runs (steps are collective: on both)
    lines.append(line)
    if line.startswith("[p0]") and "[2] train/" in line:
      break
    assert time.monotonic() < deadline
  workers = _children(launcher.pid)
  assert len(workers) == 2
  os.kill(workers[1], signal.SIGTERM)  # only process 1 is told
  rest, _ = launcher.communicate(timeout=600)
  output = "".join(lines) + rest
  assert launcher.returncode == 143, output[-3000:]
  saved = {
      line.split("]")[0] + "]": int(line.split("saved a checkpoint at step ")[1].split()[0])
      for line in output.splitlines()
      if "SIGTERM: saved a checkpoint at step" in line
  }
  assert set(saved) == {"[p0]", "[p1]"} and saved["[p0]"] == saved["[p1]"]
  assert (tmp_path / "checkpoints" / str(saved["[p0]"])).is_dir()
  assert not (tmp_path / "results.json").exists()


def test_process_spec_from_environment():
  spec = distributed.from_environment(
      {"STT_COORDINATOR_ADDRESS": "localhost:1234", "STT_NUM_PROCESSES": "4", "STT_PROCESS_ID": "3"}
  )
  assert spec == distributed.ProcessSpec("localhost:1234", 4, 3)
  assert distributed.from_environment({}) == distributed.ProcessSpec()


@pytest.mark.parametrize(
    "environ, kind",
    [
        ({}, None),
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, None),
        ({"SLURM_NTASKS": "8", "SLURM_PROCID": "3"}, "slurm"),
        ({"TPU_WORKER_HOSTNAMES": "10.0.0.2"}, None),
        ({"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5"}, "tpu"),
    ],
)
def test_cluster_detection(environ, kind):
  assert distributed.cluster_kind(environ, on_cloud_tpu_vm=False) == kind


def test_a_cloud_tpu_vm_is_a_cluster_even_without_env_vars():
  assert distributed.cluster_kind({}, on_cloud_tpu_vm=True) == "tpu"
  assert distributed._on_cloud_tpu_vm() is False  # pylint: disable=protected-access  # this CPU


def test_distributed_off_never_joins():
  spec = distributed.ProcessSpec("localhost:1", 2, 0)
  assert distributed.initialize(spec, environ={}, mode="off") == "single"


def test_incomplete_explicit_spec_is_an_error():
  with pytest.raises(ValueError, match="needs --num_processes and --process_id"):
    distributed.initialize(distributed.ProcessSpec("localhost:1234", None, 0), environ={})


def test_launcher_returns_the_first_failure_and_stops_the_rest():
  script = (
      "import os, sys, time\n"
      "if os.environ['STT_PROCESS_ID'] == '1': sys.exit(7)\n"
      "time.sleep(60)\n"
  )
  start = time.monotonic()
  result = subprocess.run(
      [sys.executable, "launch/local.py", "--num_processes=3", "--", sys.executable, "-c", script],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=60,
  )
  assert result.returncode == 7
  assert time.monotonic() - start < 30  # the sleepers were stopped, not waited for
