"""A killed, preempted or damaged run loses nothing: real processes, real signals, real files."""

import json
import pathlib
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO
from tests.conftest import REQUIRED_KEYS
from tests.conftest import main_command
from tests.conftest import run_main
from tests.conftest import subprocess_env

# Long enough to interrupt: checkpoints every 2 steps, validation (and "best") every 6.
LONGER = (
    "--config.num_train_steps=24",
    "--config.eval_every_steps=6",
    "--config.checkpoint_every_steps=2",
    "--config.log_every_steps=2",
)


def _checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  """Finalized checkpoint steps (orbax renames a temporary directory when a save is done)."""
  root = workdir / "checkpoints"
  return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.exists() else []


def _start_and_wait_for_checkpoint(workdir, data_dir, min_step: int, num_devices: int = 1):
  process = subprocess.Popen(
      main_command(workdir, data_dir, *LONGER),
      cwd=REPO,
      env=subprocess_env(num_devices),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  deadline = time.monotonic() + 600
  while max(_checkpoint_steps(workdir), default=0) < min_step:
    assert process.poll() is None, process.stderr.read()[-3000:]
    assert time.monotonic() < deadline
    time.sleep(0.05)
  return process


def _resumed_from(stderr: str) -> int:
  return int(stderr.split("Resuming from checkpoint at step ")[1].split()[0])


def _assert_same_results(got_dir: pathlib.Path, expected_dir: pathlib.Path, tolerance: float):
  expected = json.loads((expected_dir / "results.json").read_text())
  got = json.loads((got_dir / "results.json").read_text())
  assert got["best_step"] == expected["best_step"]
  for key in REQUIRED_KEYS + ("test/loss", "val/loss"):
    assert got[key] == pytest.approx(expected[key], abs=tolerance), key


def read_state(workdir: pathlib.Path, step: int) -> dict:
  """The saved training state of `step` as {path: numpy array}, on this process's one device."""
  checkpointer = ocp.StandardCheckpointer()
  directory = workdir / "checkpoints" / str(step) / "state"
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      checkpointer.metadata(directory).item_metadata,
  )
  restored = checkpointer.restore(directory, target)
  return {
      jax.tree_util.keystr(path): np.asarray(leaf)
      for path, leaf in jax.tree_util.tree_leaves_with_path(restored)
  }


def assert_same_state(
    got_dir: pathlib.Path, expected_dir: pathlib.Path, step: int, tolerance: float
):
  got, expected = read_state(got_dir, step), read_state(expected_dir, step)
  assert got.keys() == expected.keys() and len(got) > 100
  for name, array in expected.items():
    np.testing.assert_allclose(got[name], array, atol=tolerance, rtol=0, err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted(smoke_run, tmp_path_factory):
  """Workdir of the LONGER run on one device, never interrupted."""
  data_dir, _, _ = smoke_run
  workdir = tmp_path_factory.mktemp("uninterrupted")
  run_main(workdir, data_dir, *LONGER)
  return workdir


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_one(smoke_run, uninterrupted, tmp_path):
  """SIGKILL mid-training, re-run the same command: it resumes and ends where it would have."""
  data_dir, _, _ = smoke_run
  process = _start_and_wait_for_checkpoint(tmp_path, data_dir, min_step=4)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert max(_checkpoint_steps(tmp_path)) < 24 and not (tmp_path / "results.json").exists()

  resumed = run_main(tmp_path, data_dir, *LONGER)
  assert 4 <= _resumed_from(resumed.stderr) < 24
  _assert_same_results(tmp_path, uninterrupted, tolerance=1e-6)
  # Same data order and same updates: parameters, optimizer moments, batch-norm statistics
  # and RNG counters of the final state agree.
  assert_same_state(tmp_path, uninterrupted, step=24, tolerance=1e-6)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits(smoke_run, uninterrupted, tmp_path):
  """Preemption: SIGTERM → checkpoint at the current step, exit 143; resuming matches."""
  data_dir, _, _ = smoke_run
  process = _start_and_wait_for_checkpoint(tmp_path, data_dir, min_step=2)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=600)
  assert process.returncode == 143, stderr[-3000:]
  saved = int(stderr.split("SIGTERM: saved a checkpoint at step ")[1].split()[0])
  assert saved in _checkpoint_steps(tmp_path) and saved < 24
  assert not (tmp_path / "results.json").exists()

  resumed = run_main(tmp_path, data_dir, *LONGER)
  assert _resumed_from(resumed.stderr) == saved
  _assert_same_results(tmp_path, uninterrupted, tolerance=1e-6)
  assert_same_state(tmp_path, uninterrupted, step=24, tolerance=1e-6)


def test_corrupt_latest_checkpoint_is_skipped_for_the_previous_one(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  (workdir / "results.json").unlink()
  assert _checkpoint_steps(workdir) == [3, 6]
  for path in (workdir / "checkpoints" / "6" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"\x00garbage")

  result = run_main(workdir, data_dir)
  assert "Checkpoint at step 6 cannot be restored" in result.stderr
  assert _resumed_from(result.stderr) == 3
  assert (workdir / "checkpoints" / "6.unreadable").is_dir()  # kept for inspection
  results = json.loads((workdir / "results.json").read_text())
  assert results["train/num_steps"] == 6 and results["test/num_examples"] == 8


def test_no_usable_checkpoint_is_a_clear_error(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  # A different model: no checkpoint fits, which must not silently restart from scratch.
  result = run_main(workdir, data_dir, "--config.model.width=32", expect_rc=2)
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("stt: error: the checkpoint at step 6 in")
  assert "does not fit the configured model" in last_line and "(64,)" in last_line
  assert "Use a new --workdir" in last_line
  assert _checkpoint_steps(workdir) == [3, 6]  # nothing was moved or deleted


@pytest.mark.slow
def test_checkpoint_written_on_4_devices_resumes_on_2(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  process = _start_and_wait_for_checkpoint(tmp_path, data_dir, min_step=4, num_devices=4)
  process.send_signal(signal.SIGTERM)
  process.communicate(timeout=600)
  assert process.returncode == 143
  resumed = run_main(tmp_path, data_dir, *LONGER, num_devices=2)
  assert _resumed_from(resumed.stderr) >= 4
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["train/num_steps"] == 24 and results["test/num_examples"] == 8


def test_every_checkpoint_damaged_is_a_clear_error(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  for step in (3, 6):
    for path in (workdir / "checkpoints" / str(step) / "state").rglob("*"):
      if path.is_file():
        path.write_bytes(b"\x00garbage")
  result = run_main(workdir, data_dir, expect_rc=2)
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("stt: error: none of the 2 checkpoints in")
  assert _checkpoint_steps(workdir) == [3, 6]  # nothing was moved or deleted
