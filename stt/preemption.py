"""SIGTERM (preemption) as a flag the train loop polls, agreed on by every process.

Cloud TPU maintenance events, SLURM `--signal`/`scancel` and Kubernetes all send SIGTERM some
seconds before killing a job. The handler only records it; the train loop finishes its step,
saves a checkpoint and exits. In a multi-process run any one process receiving the signal stops
all of them at the same step, so that every host takes part in the (collective) save.
"""

from __future__ import annotations

import signal

import jax
from jax.experimental import multihost_utils
import numpy as np

# Exit status of a run stopped by SIGTERM after saving: 128 + 15, as if killed by the signal,
# so that the job counts as unfinished. Requeueing is the launcher's business (SLURM does not
# requeue a timed-out job by itself: launch/slurm.sbatch asks for it with `scontrol requeue`).
PREEMPTED_EXIT_CODE = 143


class Preempted(Exception):
  """Raised by the trainer after it saved a checkpoint because SIGTERM arrived."""


class PreemptionFlag:
  """Installs a SIGTERM handler; `requested()` tells whether any process has received it."""

  def __init__(self):
    self._received = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self._received = True

  def requested(self) -> bool:
    """Whether SIGTERM reached this or any other process (a collective when multi-process)."""
    if jax.process_count() == 1:
      return self._received
    flags = multihost_utils.process_allgather(np.asarray(self._received))
    return bool(np.any(flags))

  def restore(self):
    """Puts the previous SIGTERM handler back."""
    signal.signal(signal.SIGTERM, self._previous)
