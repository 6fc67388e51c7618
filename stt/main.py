r"""Entry point: `python -m stt.main --config=configs/synthetic.py --workdir=DIR`.

Configs are ml_collections files with `get_config(arg)`; override any key on the command line,
e.g. `--config.batch_size=64 --config.data_dir=/data/tfds`.
"""

import logging as std_logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (used by TFDS/clu) start-up noise.

from absl import app
from absl import flags
from absl import logging
import jax  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags

from stt import checkpoint
from stt import config_validation
from stt import datasets
from stt import distributed
from stt import evaluation_modes
from stt import preemption
from stt import train
from stt import trained_run
from stt.models import pretrained

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/synthetic.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.json.")
MODES = ("train", "explain", "sanity")
_MODE = flags.DEFINE_list(
    "mode",
    ["train"],
    "train: train (or resume), then evaluate. explain: evaluate every configured explainer on "
    "the best checkpoint (pointing, localisation, perturbation AUCs, tables and curves). "
    "sanity: the parameter randomisation test of the explainers (Adebayo et al. 2018). "
    "Several, comma-separated, run in that order in one process (train,explain,sanity is what "
    "stt.reproduce runs: one start-up instead of three).",
)
flags.register_validator(
    "mode",
    lambda modes: bool(modes) and set(modes) <= set(MODES) and len(set(modes)) == len(modes),
    message=f"--mode must be one or more of {', '.join(MODES)}, comma-separated, each once",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0, for an explicit multi-process run "
    "(default $STT_COORDINATOR_ADDRESS). TPU pods and SLURM are detected without it.",
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "default $STT_NUM_PROCESSES")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "default $STT_PROCESS_ID")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed",
    "auto",
    ["auto", "on", "off"],
    "auto: join a multi-process run when flags/env, SLURM or a Cloud TPU VM say so; on: always "
    "call jax.distributed.initialize(); off: one process.",
)
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
    # ml_collections reports an unknown `--config.key` as AttributeError(KeyError(message)) and
    # bad config arguments (`configs/x.py:unknown`) as ValueError.
    cause = error.args[0] if isinstance(error, AttributeError) and error.args else error
    if isinstance(cause, KeyError) and cause.args:
      lines = [line.strip() for line in str(cause.args[0]).splitlines() if line.strip()]
      key = lines[0].strip("'\"") if lines else "?"
      fail(f"bad --config: unknown key {key!r}" + (f"; {' '.join(lines[1:])}" if lines[1:] else ""))
    fail(f"bad --config: {' '.join(str(error).split())}")
  except SyntaxError as error:
    fail(f"--config {error.filename}:{error.lineno} is not a Python config file: {error.msg}")
  except OSError as error:  # the config file could not be read (overrides touch it)
    fail_to_load_config(error)


def fail_to_load_config(error: OSError):
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  fail(
      f"cannot load --config: {lines[-1]} (a relative path is taken from the current "
      "directory: run from the repository root, or give an absolute path)"
  )


def load_config():
  """The --config ConfigDict; a config file that cannot be loaded is a one-line error."""
  config = _CONFIG.value
  try:
    config.get("seed")  # ml_collections defers a load failure to the first access
  except OSError as error:
    fail_to_load_config(error)
  return config


class _LibraryInfoFilter(std_logging.Filter):
  """Drops INFO records of checkpoint internals (Orbax logs ~40 lines per save and restore);
  their warnings and errors, and every record of stt, still show."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  del argv
  logging.get_absl_handler().addFilter(_LibraryInfoFilter())
  config = load_config()
  from_env = distributed.from_environment()
  try:
    distributed.initialize(
        distributed.ProcessSpec(
            _COORDINATOR.value or from_env.coordinator_address,
            _NUM_PROCESSES.value if _NUM_PROCESSES.value is not None else from_env.num_processes,
            _PROCESS_ID.value if _PROCESS_ID.value is not None else from_env.process_id,
        ),
        mode=_DISTRIBUTED.value,
    )
  except ValueError as error:
    fail(str(error))
  if jax.process_index() != 0:  # Process 0 logs progress; the others only warnings and errors.
    logging.set_verbosity(logging.WARNING)
  for flag, path in (("--workdir", _WORKDIR.value), ("--config.data_dir", config.data_dir)):
    if path and "://" not in str(path) and os.path.exists(path) and not os.path.isdir(path):
      fail(f"{flag}={path} is a file; it must be a directory (created if absent)")
  try:
    config_validation.validate(
        config, device_count=jax.device_count(), process_count=jax.process_count()
    )
    for mode in _MODE.value:
      if mode == "train":
        train.train_and_evaluate(config, _WORKDIR.value)
      elif mode == "explain":
        evaluation_modes.explain_best(config, _WORKDIR.value)
      else:
        evaluation_modes.sanity_best(config, _WORKDIR.value)
  except (
      config_validation.ConfigError,
      datasets.DatasetError,
      trained_run.RunInfoError,
      checkpoint.NoUsableCheckpointError,
      pretrained.WeightsError,
  ) as error:
    fail(str(error))
  except train.NonFiniteLossError as error:
    fail(str(error), code=3)
  except preemption.Preempted as error:
    logging.warning("%s", error)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  logging.info("Done. Results in %s/results.json", _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
