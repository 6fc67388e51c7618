"""A training split held in device memory: batches are gathered on the device, not read.

`config.input.device_resident=True` (precomputed features, or raw input without random flip).
The host pipeline (stt/input_pipeline.py) decodes every example of every batch and copies it to
the device: at the features size that is 0.47 MB an example, and on an H200 it read 3,412
examples/s against the model's 153,898 (benchmarks/RESULTS.md). Here the split is read once,
stacked and put on every device; each step the grain pipeline yields only the batch's example
indices (the same shuffled, repeated, per-process order as `input_pipeline.train_dataset`, so
the batches are the same and the iterator is checkpointed as before) and one jitted gather
takes the rows from the device copy into the batch sharding.

Memory: the whole split on every device, e.g. AVE's features, 3,339 train videos x 0.51 MB =
1.7 GB; `ResidentSplit.nbytes` says what it took. For splits that do not fit, keep the default
host pipeline.

    table    {key: [N,...]} replicated, N = examples in the split (input_pipeline's schema)
    indices  [B] int32 global batch of example indices (sharded like a batch)
    batch    {key: [B,...]} sharded along the batch axis, `valid` all True
"""

from __future__ import annotations

import jax
import numpy as np

from stt import input_pipeline
from stt import sharding


class IndexOnlySource:
  """A source of the same length as the split whose examples carry nothing: through
  `input_pipeline.train_dataset` it yields batches of just `index` and `valid`."""

  def __init__(self, num_examples: int):
    self.num_examples = num_examples

  def __len__(self) -> int:
    return self.num_examples

  def __getitem__(self, index: int) -> dict:
    if not 0 <= index < self.num_examples:
      raise IndexError(index)
    return {}


def read_split(source) -> dict[str, np.ndarray]:
  """{key: [N,...]} numpy: every example of `source` in order, as the host pipeline has it."""
  examples = [input_pipeline.to_numeric_example(source[i], i) for i in range(len(source))]
  if not examples:
    raise ValueError("the split is empty: nothing to hold on the device")
  return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


class ResidentSplit:
  """A split in device memory (replicated over `mesh`) and the gather of its batches, which
  come out sharded along the batch axis as the host pipeline's (`sharding.batch_sharding`)."""

  def __init__(self, source, mesh: jax.sharding.Mesh):
    batch_sharding = sharding.batch_sharding(mesh)
    replicated = sharding.replicated(mesh)
    host = read_split(source)
    self.num_examples = len(source)
    self.table = {
        key: jax.make_array_from_callback(array.shape, replicated, lambda i, a=array: a[i])
        for key, array in host.items()
    }
    self.nbytes = sum(array.nbytes for array in self.table.values())  # on each device
    self.sharding = batch_sharding
    self._gather = jax.jit(
        lambda table, indices: jax.tree.map(lambda column: column[indices], table),
        out_shardings=batch_sharding,
    )

  def index_source(self) -> IndexOnlySource:
    return IndexOnlySource(self.num_examples)

  def batch(self, local_indices: dict) -> dict:
    """A per-host batch of the index pipeline ({index [b], valid [b]}) -> the global batch."""
    indices = input_pipeline.make_global_batch(
        {"index": np.asarray(local_indices["index"], np.int32)}, self.sharding
    )["index"]
    return self._gather(self.table, indices)
