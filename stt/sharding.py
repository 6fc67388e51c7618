"""The device mesh and the shardings of state and batches.

One mesh axis, `data`, over every device of every process: batches are split along it and the
training state is replicated. (FSDP sharding of large kernels extends this module.)
"""

from __future__ import annotations

import jax
import ml_collections
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(config: ml_collections.ConfigDict | None = None) -> jax.sharding.Mesh:
  """A 1-D `data` mesh over all devices (global, across processes)."""
  del config  # The mesh shape will come from config once FSDP exists.
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`; other axes whole."""
  return NamedSharding(mesh, P(DATA_AXIS))
