"""The cluster launch scripts: tpu.sh's dry run prints a complete, correct command sequence."""

import re
import subprocess

from tests.conftest import REPO


def _tpu_dry_run(*extra):
  result = subprocess.run(
      ["bash", "launch/tpu.sh", "--dry-run", "--project=proj", "--zone=us-west4-a",
       "--accelerator=v5litepod-32", "--bucket=gs://bkt", "--name=run1", *extra, "--",
       "--config=configs/ave.py:features", "--config.batch_size=256"],
      cwd=REPO, capture_output=True, text=True, timeout=30)
  assert result.returncode == 0, result.stderr
  return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


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
  assert any("git clone --depth=1 https://example.org/stt.git" in c.replace("\\", "")
             for c in commands)
  assert not any(c.startswith("git archive") for c in commands)


def test_tpu_missing_bucket_is_a_clear_error():
  result = subprocess.run(["bash", "launch/tpu.sh", "--dry-run", "--project=p", "--zone=z"],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
  assert result.returncode == 2
  assert "--project, --zone and --bucket are required" in result.stderr


def test_slurm_script_is_valid_bash_and_one_task_per_node():
  script = (REPO / "launch" / "slurm.sbatch").read_text()
  assert subprocess.run(["bash", "-n", "launch/slurm.sbatch"], cwd=REPO).returncode == 0
  assert "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --signal=B:TERM@120" in script
  assert "srun" in script and "python -m stt.main" in script
