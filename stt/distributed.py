"""Joining a multi-process JAX run: TPU pods, SLURM GPU clusters or explicit local processes.

`initialize` decides from the environment:
- explicit coordinator (flags, or STT_COORDINATOR_ADDRESS / STT_NUM_PROCESSES / STT_PROCESS_ID
  as set by `launch/local.py`): `jax.distributed.initialize(address, n, id)`;
- a SLURM job step with more than one task, or a Cloud TPU VM: `jax.distributed.initialize()`,
  which reads the cluster from the environment (`--distributed=on` forces this for any cluster
  jax knows, `--distributed=off` never joins);
- otherwise one process, nothing to do.
On CPU, cross-process collectives use gloo.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import jax


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None


def from_environment(environ=os.environ) -> ProcessSpec:
  """The explicit spec that `launch/local.py` passes through environment variables."""

  def _int(name):
    return int(environ[name]) if environ.get(name) else None

  return ProcessSpec(
      environ.get("STT_COORDINATOR_ADDRESS") or None,
      _int("STT_NUM_PROCESSES"),
      _int("STT_PROCESS_ID"),
  )


def _on_cloud_tpu_vm() -> bool:
  """Whether this is a Cloud TPU VM (jax's own check: TPU chips on the PCI bus)."""
  try:
    from jax._src.clusters import cloud_tpu_cluster  # pylint: disable=g-import-not-at-top

    return bool(cloud_tpu_cluster.running_in_cloud_tpu_vm)
  except (ImportError, AttributeError):  # a jax without it: rely on --distributed=on
    return False


def cluster_kind(environ=os.environ, on_cloud_tpu_vm=None) -> str | None:
  """'slurm' or 'tpu' when the environment describes a cluster job, else None.

  On a Cloud TPU VM jax.distributed.initialize() finds the slice (one or many hosts) itself.
  """
  if int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in environ:
    return "slurm"
  workers = environ.get("TPU_WORKER_HOSTNAMES", "")
  if len([w for w in workers.split(",") if w]) > 1:
    return "tpu"
  if _on_cloud_tpu_vm() if on_cloud_tpu_vm is None else on_cloud_tpu_vm:
    return "tpu"
  return None


def initialize(spec: ProcessSpec, environ=os.environ, mode: str = "auto") -> str:
  """Joins the run described by `spec` or the environment; returns how ('single', ...).

  mode: 'auto' (explicit spec, else detect SLURM / Cloud TPU) | 'on' (always call
  jax.distributed.initialize(), for clusters jax detects but we do not) | 'off'.
  """
  explicit = spec.coordinator_address is not None
  if explicit and (spec.num_processes is None or spec.process_id is None):
    raise ValueError("--coordinator_address needs --num_processes and --process_id")
  if mode == "off":
    return "single"
  kind = "explicit" if explicit else ("cluster" if mode == "on" else cluster_kind(environ))
  if kind is None:
    return "single"
  # Only affects the CPU backend (tests, CPU clusters); accelerators use their own collectives.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id)
  else:
    jax.distributed.initialize()
  logging.info(
      "Process %d of %d (%s), %d local / %d global devices",
      jax.process_index(),
      jax.process_count(),
      kind,
      jax.local_device_count(),
      jax.device_count(),
  )
  return kind
