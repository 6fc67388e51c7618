"""The main job end to end, as a user runs it: `python -m stt.main --config=... --workdir=...`.

One smoke dataset is generated and built per session and shared by these tests.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = "--config=configs/synthetic.py:smoke"
REQUIRED_KEYS = ("test/accuracy", "test/num_examples", "val/accuracy", "train/loss",
                 "explain/attention/pointing_spatial", "explain/attention/pointing_temporal")


def _main_command(workdir, data_dir, *overrides):
  return [sys.executable, "-m", "stt.main", SMOKE, f"--workdir={workdir}",
          f"--config.data_dir={data_dir}", *overrides]


def _env():
  return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")


def _run(workdir, data_dir, *overrides, timeout=300):
  result = subprocess.run(_main_command(workdir, data_dir, *overrides), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  """(data_dir, workdir, stderr) of one complete smoke run that also builds the data."""
  data_dir = tmp_path_factory.mktemp("tfds")
  workdir = tmp_path_factory.mktemp("smoke")
  result = _run(workdir, data_dir)
  return data_dir, workdir, result.stderr


def test_smoke_run_writes_results(smoke_run):
  data_dir, workdir, _ = smoke_run
  results = json.loads((workdir / "results.json").read_text())
  for key in REQUIRED_KEYS:
    assert key in results, key
  assert results["test/num_examples"] == 8 and results["val/num_examples"] == 8
  assert results["train/num_steps"] == 6
  for key in ("test/accuracy", "val/accuracy", "explain/attention/pointing_spatial",
              "explain/attention/pointing_temporal"):
    assert 0.0 <= results[key] <= 1.0, key
  # 6 classes: the untrained loss is ~ln 6; a finite value that is not wildly off.
  assert 0.5 < results["train/loss"] < 3.0
  # Accuracy is a fraction of 8 test videos.
  assert results["test/accuracy"] * 8 == pytest.approx(round(results["test/accuracy"] * 8))
  assert results["best_step"] in (3, 6)
  # The dataset is cached in the data dir, and TensorBoard event files were written.
  assert list(data_dir.glob("ave_videos/synthetic_*_t10_f1_s64/1.0.0/dataset_info.json"))
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_rerunning_a_finished_run_reuses_data_and_checkpoint(smoke_run):
  data_dir, workdir, _ = smoke_run
  before = json.loads((workdir / "results.json").read_text())
  result = _run(workdir, data_dir)
  assert "Resuming from checkpoint at step 6" in result.stderr
  assert "Generating" not in result.stderr  # the built dataset was reused
  after = json.loads((workdir / "results.json").read_text())
  for key in REQUIRED_KEYS:
    assert after[key] == pytest.approx(before[key], abs=1e-6), key


def _latest_checkpoint(workdir: pathlib.Path) -> int | None:
  """Newest finalized checkpoint step (orbax renames a temporary directory when done)."""
  root = workdir / "checkpoints"
  steps = [int(p.name) for p in root.iterdir() if p.name.isdigit()] if root.exists() else []
  return max(steps, default=None)


def test_killed_run_resumes_and_matches_an_uninterrupted_one(smoke_run, tmp_path):
  """SIGKILL mid-training, re-run the same command: it resumes and ends where it would have."""
  data_dir, _, _ = smoke_run
  longer = ("--config.num_train_steps=24", "--config.eval_every_steps=6",
            "--config.checkpoint_every_steps=2", "--config.log_every_steps=2")
  reference = tmp_path / "uninterrupted"
  _run(reference, data_dir, *longer)

  killed = tmp_path / "killed"
  process = subprocess.Popen(_main_command(killed, data_dir, *longer), cwd=REPO, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 240
  while (_latest_checkpoint(killed) or 0) < 4:
    assert process.poll() is None, "the run ended before it could be killed"
    assert time.monotonic() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = _latest_checkpoint(killed)
  assert killed_at < 24 and not (killed / "results.json").exists()

  resumed = _run(killed, data_dir, *longer)
  resumed_from = int(resumed.stderr.split("Resuming from checkpoint at step ")[1].split()[0])
  assert 4 <= resumed_from < 24
  expected = json.loads((reference / "results.json").read_text())
  got = json.loads((killed / "results.json").read_text())
  assert got["best_step"] == expected["best_step"]
  for key in REQUIRED_KEYS + ("test/loss", "val/loss"):
    assert got[key] == pytest.approx(expected[key], abs=1e-5), key


def test_non_finite_loss_stops_with_a_clear_message(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  result = subprocess.run(
      _main_command(tmp_path / "w", data_dir, "--config.optimizer.learning_rate=1e30",
                    "--config.optimizer.grad_clip_norm=1e30", "--config.log_every_steps=1"),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 3, result.stderr[-3000:]
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("stt: error: training loss is nan at step")
  assert "Lower optimizer.learning_rate" in last_line
  assert not (tmp_path / "w" / "results.json").exists()
