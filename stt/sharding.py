"""The device mesh and the shardings of the training state and of batches.

Mesh axes `data` × `fsdp` over every device of every process (`config.mesh.fsdp` devices per
FSDP group, 1 by default). Batches are split over both axes. The state is replicated, except
that with fsdp > 1 every array of at least `config.mesh.fsdp_min_size` elements is split over
`fsdp` along its largest dimension that divides evenly (optimizer moments follow their
parameters, having the same shapes). Shardings are derived from the abstract state
(`nnx.eval_shape`), so nothing is materialised before it is placed.
"""

from __future__ import annotations

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """A (data, fsdp) mesh over all devices (global, across processes)."""
  fsdp = config.mesh.fsdp
  if fsdp < 1 or jax.device_count() % fsdp:
    raise ValueError(f"mesh.fsdp={fsdp} must divide the device count ({jax.device_count()})")
  return jax.make_mesh(
      (jax.device_count() // fsdp, fsdp),
      (DATA_AXIS, FSDP_AXIS),
      axis_types=(jax.sharding.AxisType.Auto,) * 2,
  )


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over every device; other axes whole."""
  return NamedSharding(mesh, P(BATCH_AXES))


def array_spec(shape: tuple[int, ...], fsdp: int, min_size: int) -> P:
  """Partition spec of one state array: split its largest evenly divisible dim over `fsdp`."""
  if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % fsdp == 0:
      spec = [None] * len(shape)
      spec[dim] = FSDP_AXIS
      return P(*spec)
  return P()


def state_shardings(abstract_state, mesh: jax.sharding.Mesh, config: ml_collections.ConfigDict):
  """Shardings for every array of an abstract (eval_shape'd) state, same tree structure."""
  fsdp = mesh.shape[FSDP_AXIS]
  return jax.tree.map(
      lambda leaf: NamedSharding(
          mesh, array_spec(tuple(leaf.shape), fsdp, config.mesh.fsdp_min_size)
      ),
      abstract_state,
  )
