r"""Entry point: `python -m stt.main --config=configs/synthetic.py --workdir=DIR`.

Configs are ml_collections files with `get_config(arg)`; override any key on the command line,
e.g. `--config.batch_size=64 --config.data_dir=/data/tfds`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (used by TFDS/clu) start-up noise.

import jax  # pylint: disable=g-import-not-at-top
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from stt import checkpoint
from stt import config_validation
from stt import datasets
from stt import distributed
from stt import preemption
from stt import train
from stt.models import pretrained

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/synthetic.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.json.")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "explain"],
    "train: train (or resume), then evaluate. explain: evaluate every configured explainer on "
    "the best checkpoint (pointing, localisation, perturbation AUCs, tables and curves).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for an explicit multi-process run "
    "(default $STT_COORDINATOR_ADDRESS). TPU pods and SLURM are detected without it.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "default $STT_NUM_PROCESSES")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "default $STT_PROCESS_ID")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "auto: join a multi-process run when flags/env, SLURM or a Cloud TPU VM say so; on: always "
    "call jax.distributed.initialize(); off: one process.")
flags.mark_flags_as_required(["config", "workdir"])


def fail(message: str, code: int = 2):
  """Prints one line to stderr and exits: bad user input gets no traceback."""
  print(f"stt: error: {message}", file=sys.stderr)
  sys.exit(code)


def parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    # The first line names the flag; the last one is the underlying reason.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    fail(lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}")
  except (AttributeError, KeyError, ValueError, TypeError) as error:
    # ml_collections reports unknown `--config.key` overrides and bad config arguments this way.
    text = " ".join(str(error).replace("\\n", " ").split()).strip("'\"")
    fail(f"bad --config: {text}")


def main(argv):
  del argv
  config = _CONFIG.value
  from_env = distributed.from_environment()
  try:
    distributed.initialize(distributed.ProcessSpec(
        _COORDINATOR.value or from_env.coordinator_address,
        _NUM_PROCESSES.value if _NUM_PROCESSES.value is not None else from_env.num_processes,
        _PROCESS_ID.value if _PROCESS_ID.value is not None else from_env.process_id),
        mode=_DISTRIBUTED.value)
  except ValueError as error:
    fail(str(error))
  if jax.process_index() != 0:  # Process 0 logs progress; the others only warnings and errors.
    logging.set_verbosity(logging.WARNING)
  try:
    config_validation.validate(config, device_count=jax.device_count(),
                               process_count=jax.process_count())
    if _MODE.value == "train":
      train.train_and_evaluate(config, _WORKDIR.value)
    else:
      train.explain_best(config, _WORKDIR.value)
  except (config_validation.ConfigError, datasets.DatasetError,
          checkpoint.NoUsableCheckpointError, pretrained.WeightsError) as error:
    fail(str(error))
  except train.NonFiniteLossError as error:
    fail(str(error), code=3)
  except preemption.Preempted as error:
    logging.warning("%s", error)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  logging.info("Done. Results in %s/results.json", _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
