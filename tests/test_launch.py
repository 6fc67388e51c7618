"""The launch scripts: tpu.sh's dry run prints a complete, correct command sequence; local.py
and tpu.sh document their options; slurm.sbatch requeues a job stopped at the time limit."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

STT_ARGS = ("--config=configs/ave.py:features", "--config.batch_size=256")


def _tpu(*args, cwd=REPO):
  return subprocess.run(
      ["bash", "launch/tpu.sh", *args], cwd=cwd, capture_output=True, text=True, timeout=30
  )


def _tpu_dry_run(*extra, name=("--name=run1",), stt_args=STT_ARGS):
  result = _tpu(
      "--dry-run",
      "--project=proj",
      "--zone=us-west4-a",
      "--accelerator=v5litepod-32",
      "--bucket=gs://bkt",
      *name,
      *extra,
      "--",
      *stt_args,
  )
  assert result.returncode == 0, result.stderr
  return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def _workdir(commands):
  return re.search(r"--workdir=(\S+)$", commands[-2]).group(1)


def test_tpu_dry_run_for_a_v5e_32_slice():
  commands = _tpu_dry_run()
  steps = [
      r"^gcloud compute tpus queued-resources create run1 --project=proj --zone=us-west4-a "
      r"--node-id=run1 --accelerator-type=v5litepod-32 --runtime-version=v2-alpha-tpuv5-lite$",
      r"^until .*queued-resources describe run1 .*ACTIVE",
      r"^git archive --format=tar.gz",
      r"^gcloud compute tpus tpu-vm scp .* --worker=all$",
      r"^gcloud compute tpus tpu-vm ssh run1 .* --worker=all --command=mkdir",
      r"^gcloud compute tpus tpu-vm ssh run1 .* --worker=all --command=.*pip\\? install\\? -e\\? \.",
      r"^gcloud compute tpus tpu-vm ssh run1 .* --worker=all --command=.*"
      r"TFDS_DATA_DIR=gs://bkt/tensorflow_datasets\\? python\\? -m\\? stt.main\\? "
      r"--distributed=on\\? "
      r"--config=configs/ave.py:features\\? --config.batch_size=256\\? "
      r"--workdir=gs://bkt/workdirs/run1$",
      r"^gcloud compute tpus queued-resources delete run1 --project=proj --zone=us-west4-a "
      r"--force --quiet$",
  ]
  assert len(commands) == len(steps), "\n".join(commands)
  for command, pattern in zip(commands, steps):
    assert re.search(pattern, command), (pattern, command)
  assert "jax\\[tpu\\]" in commands[5]


def test_tpu_options_spot_keep_and_clone():
  commands = _tpu_dry_run("--spot", "--keep", "--clone=https://example.org/stt.git")
  assert commands[0].endswith("--spot")
  assert not any("delete" in c for c in commands)
  assert any(
      "git clone --depth=1 https://example.org/stt.git" in c.replace("\\", "") for c in commands
  )
  assert not any(c.startswith("git archive") for c in commands)


def test_tpu_default_name_is_the_same_on_every_run_so_a_rerun_resumes():
  first, second = _tpu_dry_run(name=()), _tpu_dry_run(name=())
  assert _workdir(first) == _workdir(second) == "gs://bkt/workdirs/stt-ave-features"
  assert first == second
  assert first[0].startswith("gcloud compute tpus queued-resources create stt-ave-features ")
  other = _tpu_dry_run(name=(), stt_args=("--config=configs/vggsound.py",))
  assert _workdir(other) == "gs://bkt/workdirs/stt-vggsound"
  assert _workdir(_tpu_dry_run(stt_args=(*STT_ARGS, "--workdir=gs://bkt/mine"))) == "gs://bkt/mine"


def test_tpu_options_also_take_their_value_after_a_space():
  spaced = _tpu(
      "--dry-run",
      "--project",
      "proj",
      "--zone",
      "us-west4-a",
      "--accelerator",
      "v5litepod-32",
      "--bucket",
      "gs://bkt",
      "--name",
      "run1",
      "--",
      *STT_ARGS,
  )
  assert spaced.returncode == 0, spaced.stderr
  assert (
      spaced.stdout
      == _tpu(
          "--dry-run",
          "--project=proj",
          "--zone=us-west4-a",
          "--accelerator=v5litepod-32",
          "--bucket=gs://bkt",
          "--name=run1",
          "--",
          *STT_ARGS,
      ).stdout
  )
  missing = _tpu("--dry-run", "--project", "--zone=z")
  assert missing.returncode == 2 and "--project needs a value" in missing.stderr


def test_tpu_help_lists_every_option_with_its_default():
  result = _tpu("--help")
  assert result.returncode == 0
  options = set(re.findall(r"^\s+(--[a-z-]+)", result.stdout, re.M))
  script = (REPO / "launch" / "tpu.sh").read_text()
  parser = script.split("while [[ $# -gt 0 ]]", 1)[1].split("\ndone\n", 1)[0]
  parsed = set(re.findall(r"^    (--[a-z-]+)\) ", parser, re.M)) - {"--"}
  assert parsed and parsed <= options, parsed - options
  for text in (
      "default: v5litepod-32",
      "default: stt-<config>",
      "default: delete it",
      "default: copy `git archive HEAD`",
      "uncommitted changes are NOT copied",
      "there is no default run",
      "`--opt=value` or `--opt value`",
  ):
    assert text in " ".join(result.stdout.split()), text
  unknown = _tpu("--frobnicate")
  assert unknown.returncode == 2 and "unknown argument --frobnicate" in unknown.stderr


def test_tpu_needs_a_training_command():
  result = _tpu("--dry-run", "--project=p", "--zone=z", "--bucket=gs://b")
  assert result.returncode == 2
  assert "give the training command after --, at least --config=" in result.stderr
  assert "+ gcloud" not in result.stdout


def test_tpu_warns_that_the_synthetic_set_is_not_on_the_bucket():
  result = _tpu(
      "--dry-run",
      "--project=p",
      "--zone=z",
      "--bucket=gs://b",
      "--",
      "--config=configs/synthetic.py:smoke",
  )
  assert result.returncode == 0
  assert "configs/synthetic.py trains on data generated on a local disk" in result.stderr


def test_tpu_warns_about_uncommitted_changes_that_are_not_copied(tmp_path):
  shutil.copytree(REPO / "launch", tmp_path / "launch")
  git = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
  git("init", "-q")
  git("add", "launch")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "launch")
  args = ("--dry-run", "--project=p", "--zone=z", "--bucket=gs://b", "--", *STT_ARGS)
  clean = _tpu(*args, cwd=tmp_path)
  assert clean.returncode == 0 and "uncommitted" not in clean.stderr
  (tmp_path / "launch" / "local.py").write_text("# edited\n")
  dirty = _tpu(*args, cwd=tmp_path)
  assert dirty.returncode == 0
  assert "uncommitted changes are NOT copied" in dirty.stderr
  assert "launch/local.py" in dirty.stderr
  assert (
      "uncommitted"
      not in _tpu(*args[:4], "--clone=https://x/y.git", *args[4:], cwd=tmp_path).stderr
  )


def test_tpu_missing_bucket_is_a_clear_error():
  result = _tpu("--dry-run", "--project=p", "--zone=z")
  assert result.returncode == 2
  assert "--project, --zone and --bucket are required" in result.stderr


def test_local_launcher_help_describes_every_option():
  result = subprocess.run(
      [sys.executable, "launch/local.py", "--help"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=30,
  )
  assert result.returncode == 0
  for text in (
      "--num_processes N",
      "(default: 2)",
      "--devices_per_process M",
      "(default: 1)",
      "--port PORT",
      "default: a free port",
      "STT_COORDINATOR_ADDRESS",
      "[options] -- COMMAND...",
  ):
    assert text in result.stdout, text
  no_command = subprocess.run(
      [sys.executable, "launch/local.py", "--num_processes=2"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=30,
  )
  assert no_command.returncode == 2 and "give the command to run after --" in no_command.stderr


def test_slurm_script_is_valid_bash_and_one_task_per_node():
  script = (REPO / "launch" / "slurm.sbatch").read_text()
  assert subprocess.run(["bash", "-n", "launch/slurm.sbatch"], cwd=REPO).returncode == 0
  for line in (
      "#SBATCH --ntasks-per-node=1",
      "#SBATCH --signal=B:USR1@120",
      "#SBATCH --requeue",
      "#SBATCH --open-mode=append",
  ):
    assert line in script, line
  assert "srun" in script and "python -m stt.main" in script


# A stand-in for srun: like the trainer, it saves and exits with 143 on SIGTERM.
FAKE_SRUN = """#!/usr/bin/env bash
echo "$@" > "$FAKE_DIR/started"
[[ -n "${FAKE_FINISH:-}" ]] && exit 0
trap 'echo saved >> "$FAKE_DIR/started"; exit 143' TERM
while :; do sleep 0.05; done
"""


@pytest.mark.parametrize(
    "signum, finish, requeued",
    [
        (signal.SIGUSR1, False, True),  # the time limit is near (--signal=B:USR1@120)
        (signal.SIGTERM, False, False),  # scancel: save, but stay cancelled
        (None, True, False),  # the run ended by itself
    ],
)
def test_slurm_script_requeues_only_at_the_time_limit(tmp_path, signum, finish, requeued):
  bin_dir, venv = tmp_path / "bin", tmp_path / "venv" / "bin"
  bin_dir.mkdir()
  venv.mkdir(parents=True)
  (venv / "activate").write_text("")
  (bin_dir / "srun").write_text(FAKE_SRUN)
  (bin_dir / "scontrol").write_text('#!/usr/bin/env bash\necho "$@" > "$FAKE_DIR/scontrol"\n')
  for tool in ("srun", "scontrol"):
    (bin_dir / tool).chmod(0o755)
  env = dict(
      os.environ,
      PATH=f"{bin_dir}:{os.environ['PATH']}",
      FAKE_DIR=str(tmp_path),
      STT_VENV=str(tmp_path / "venv"),
      SLURM_JOB_ID="4242",
      SLURM_SUBMIT_DIR=str(tmp_path),
      FAKE_FINISH="1" if finish else "",
  )
  job = subprocess.Popen(
      ["bash", str(REPO / "launch" / "slurm.sbatch"), "--config=c.py"],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  deadline = time.monotonic() + 20
  while not (tmp_path / "started").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
  if signum is not None:
    time.sleep(0.3)  # let the script install its traps
    job.send_signal(signum)
  output, _ = job.communicate(timeout=20)
  assert job.returncode == (0 if finish else 143), output
  assert "python -m stt.main --config=c.py" in (tmp_path / "started").read_text()
  if not finish:
    assert "saved" in (tmp_path / "started").read_text()
  assert (tmp_path / "scontrol").exists() == requeued, output
  if requeued:
    assert (tmp_path / "scontrol").read_text().split() == ["requeue", "4242"]
