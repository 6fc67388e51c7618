"""Shared fixtures: one smoke run of the main job per session, which also builds the data."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# The real AVE release metadata (tests/data/ave/README.md); STT_AVE_METADATA_DIR points elsewhere.
AVE_METADATA_DIR = pathlib.Path(os.environ.get("STT_AVE_METADATA_DIR", REPO / "tests/data/ave"))
SMOKE = "--config=configs/synthetic.py:smoke"
REQUIRED_KEYS = ("test/accuracy", "test/num_examples", "val/accuracy", "train/loss",
                 "explain/attention/pointing_spatial", "explain/attention/pointing_temporal")


def main_command(workdir, data_dir, *overrides, config=SMOKE):
  return [sys.executable, "-m", "stt.main", config, f"--workdir={workdir}",
          f"--config.data_dir={data_dir}", *overrides]


def subprocess_env(num_devices: int = 1):
  return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}")


def run_main(workdir, data_dir, *overrides, num_devices: int = 1, expect_rc: int = 0,
             timeout: int = 300) -> subprocess.CompletedProcess:
  result = subprocess.run(main_command(workdir, data_dir, *overrides), cwd=REPO,
                          env=subprocess_env(num_devices), capture_output=True, text=True,
                          timeout=timeout)
  assert result.returncode == expect_rc, result.stderr[-3000:]
  return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
  """(data_dir, workdir, stderr) of one complete smoke run that also builds the data."""
  data_dir = tmp_path_factory.mktemp("tfds")
  workdir = tmp_path_factory.mktemp("smoke")
  result = run_main(workdir, data_dir)
  return data_dir, workdir, result.stderr
