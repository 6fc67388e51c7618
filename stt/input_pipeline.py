"""Grain input pipeline: TFDS array_record source → per-host batches → global jax.Arrays.

Train: MapDataset → seeded shuffle (a new order each epoch) → repeat → random flip → shard by
process (each process takes its rows of every global batch) → batch per host →
to_iter_dataset → mp_prefetch. Evaluation: the same without
shuffle, augmentation or repeat; every process yields the same number of batches, padded with
`valid=False` examples, so that multi-host evaluation stays in lockstep and counts each example
exactly once.

A batch is a dict of numpy arrays, per host::

    frames [b,T,F,S,S,3] uint8 · log_mel [b,T,96,64] f32 · segment_mask [b,T] bool
      feature datasets instead of frames / log_mel:
      visual_features [b,T,h,w,Cv] f16 or f32 · audio_features [b,T,Ca] f32
    label [b] int32 · segment_labels [b,T] int32 · valid [b] bool · index [b] int32
    boxes [b,T,K,4] f32 · box_mask [b,T,K] bool · frame_size [b,2] int32
    event_start [b] int32 · event_end [b] int32 · has_audio [b] bool
"""

from __future__ import annotations

import dataclasses
import math

import grain
import jax
from jax.experimental import multihost_utils
import numpy as np

NUMERIC_FEATURES = (
    "frames",
    "visual_features",
    "log_mel",
    "audio_features",
    "segment_mask",
    "label",
    "segment_labels",
    "boxes",
    "box_mask",
    "frame_size",
    "event_start",
    "event_end",
    "has_audio",
)


def to_numeric_example(record: dict, index: int) -> dict:
  """Keeps the NUMERIC_FEATURES the record has; adds `valid` and the `index` in its split."""
  example = {key: np.asarray(record[key]) for key in NUMERIC_FEATURES if key in record}
  example["valid"] = np.asarray(True)
  example["index"] = np.asarray(index, np.int32)
  return example


@dataclasses.dataclass(frozen=True)
class _ToNumeric(grain.transforms.MapWithIndex):
  """Adds the split index; grain counts indices across repeated epochs, hence the modulo."""

  num_examples: int

  def map_with_index(self, index, record):
    return to_numeric_example(record, index % self.num_examples)


@dataclasses.dataclass(frozen=True)
class _RandomFlip(grain.transforms.RandomMap):
  """Flips all frames of a video left-right with probability 1/2 (training augmentation).

  Precomputed feature maps are left alone: a CNN map of a flipped frame is not the flipped map.
  """

  def random_map(self, example, rng: np.random.Generator):
    if rng.random() < 0.5 and "frames" in example:
      example = dict(example, frames=example["frames"][..., ::-1, :].copy())
    return example


class _ProcessRowsOfGlobalBatches(grain.MapDataset):
  """Element j of process p = row p*b + j%b of global batch j//b (global batch G = P*b).

  Reading through this, each process fetches only its own rows, and the global batch is the
  same however many processes share it.
  """

  def __init__(
      self,
      parent: grain.MapDataset,
      per_host_batch_size: int,
      process_index: int,
      process_count: int,
  ):
    super().__init__(parent)
    self._per_host = per_host_batch_size
    self._offset = process_index * per_host_batch_size
    self._global = process_count * per_host_batch_size

  def __len__(self) -> int:
    return len(self._parent) // self._global * self._per_host

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    batch, row = divmod(index, self._per_host)
    return self._parent[batch * self._global + self._offset + row]


def train_dataset(
    source,
    *,
    per_host_batch_size: int,
    seed: int,
    random_flip: bool,
    num_workers: int,
    prefetch_buffer_size: int,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
  """An endless, shuffled, augmented stream of per-host batches; its iterator is checkpointable.

  The shuffled, augmented example stream is global (the same on every process); global batch i
  is its i-th run of P*b examples and process p reads rows [p*b, (p+1)*b) of it. So the data
  order does not depend on the number of processes, and within an epoch every example is read
  by exactly one process, once.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if len(source) < per_host_batch_size * process_count:
    raise ValueError(
        f"the train split has {len(source)} examples, fewer than one global batch of "
        f"{per_host_batch_size} x {process_count} host(s)"
    )
  dataset = grain.MapDataset.source(source).map_with_index(_ToNumeric(len(source)))
  dataset = dataset.shuffle(seed=seed).repeat(None)
  if random_flip:
    dataset = dataset.random_map(_RandomFlip(), seed=seed + 1)
  dataset = _ProcessRowsOfGlobalBatches(dataset, per_host_batch_size, process_index, process_count)
  dataset = dataset.batch(per_host_batch_size, drop_remainder=True)
  return _prefetched(
      dataset.to_iter_dataset(read_ahead(prefetch_buffer_size)), num_workers, prefetch_buffer_size
  )


def read_ahead(buffer_size: int) -> grain.ReadOptions:
  """Reads `buffer_size` batches ahead, each in its own thread (in the process or per worker).

  grain's default ReadOptions read 500 elements ahead in 16 threads, and an element here is a
  whole batch: that held GBs of batches per process and per worker (features at b=16: +4.2 GB
  in 12 s; raw at b=32 would be 28 GB) and ran 16 threads beside the training step.
  """
  if buffer_size < 1:
    raise ValueError(
        f"input.prefetch_buffer_size must be >= 1 (batches read ahead), got {buffer_size}"
    )
  return grain.ReadOptions(num_threads=buffer_size, prefetch_buffer_size=buffer_size)


def _prefetched(dataset: grain.IterDataset, num_workers: int, buffer_size: int):
  if num_workers <= 0:
    return dataset
  return dataset.mp_prefetch(
      grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=buffer_size)
  )


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
  """Batches every process yields so that all examples fit once: ceil(N / global batch)."""
  return max(1, math.ceil(num_examples / global_batch_size))


def eval_batches(source, *, per_host_batch_size: int):
  """Yields per-host batches covering this host's shard once, padded to a common batch count.

  Padding examples are copies of a real one with `valid=False`; metrics must weight by `valid`.
  """
  dataset = grain.MapDataset.source(source).map_with_index(_ToNumeric(len(source)))
  dataset = dataset[jax.process_index() :: jax.process_count()]
  num_batches = num_eval_batches(len(source), per_host_batch_size * jax.process_count())
  batched = dataset.batch(per_host_batch_size, drop_remainder=False)
  template = dataset[0] if len(dataset) else to_numeric_example(source[0], 0)
  for batch_index in range(num_batches):
    batch = batched[batch_index] if batch_index < len(batched) else None
    yield _pad_batch(batch, template, per_host_batch_size)


def _pad_batch(batch: dict | None, template: dict, batch_size: int) -> dict:
  """Pads a (possibly absent) short batch to `batch_size` rows of `template` with valid=False."""
  size = 0 if batch is None else len(batch["valid"])
  if size == batch_size:
    return batch
  padding = {
      key: np.repeat(value[None], batch_size - size, axis=0) for key, value in template.items()
  }
  padding["valid"][:] = False
  if batch is None:
    return padding
  return {key: np.concatenate([batch[key], padding[key]]) for key in batch}


# The batch schema: what the model reads, and the annotations the metrics read.
MODEL_INPUT_KEYS = ("frames", "visual_features", "log_mel", "audio_features", "segment_mask")
ANNOTATION_KEYS = (
    "valid",
    "index",
    "label",
    "segment_mask",
    "boxes",
    "box_mask",
    "frame_size",
    "event_start",
    "event_end",
)


def model_inputs(batch: dict) -> dict:
  """The subset of a batch the model reads."""
  return {key: batch[key] for key in MODEL_INPUT_KEYS if key in batch}


def make_global_batch(local_batch: dict, sharding: jax.sharding.Sharding) -> dict:
  """Per-host numpy batch → global jax.Arrays sharded along the batch axis."""
  return jax.tree.map(
      lambda array: jax.make_array_from_process_local_data(sharding, array), local_batch
  )


def global_batches(source, *, global_batch_size: int, batch_sharding):
  """Yields the global batches that cover every example of `source` once (`eval_batches` on
  each host, made global): the input of `gather_batches`. A list of them can be reused by
  several steps (as the sanity checks do) instead of reading and decoding the split again."""
  per_host = global_batch_size // jax.process_count()
  for local_batch in eval_batches(source, per_host_batch_size=per_host):
    yield make_global_batch(local_batch, batch_sharding)


def gather_batches(step, batches) -> dict:
  """Runs `step` over global `batches` (`global_batches`); returns {key: [N,...]} on every host.

  step(global batch) -> {key: [B,...]} (jitted, typically). Its outputs and the batch's
  ANNOTATION_KEYS are gathered from all processes; padding rows (valid=False) are dropped and
  rows are in split order, so row i is `source[i]`.
  """
  chunks = []
  for batch in batches:
    out = {**{key: batch[key] for key in ANNOTATION_KEYS}, **step(batch)}
    chunks.append(jax.device_get(multihost_utils.process_allgather(out, tiled=True)))
  outputs = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
  keep = outputs["valid"]
  order = np.argsort(outputs["index"][keep], kind="stable")
  return {key: value[keep][order] for key, value in outputs.items()}


def gather_split(step, source, *, global_batch_size: int, batch_sharding) -> dict:
  """`gather_batches` of `step` over `source`, read once: {key: [N,...]} in split order."""
  return gather_batches(
      step,
      global_batches(source, global_batch_size=global_batch_size, batch_sharding=batch_sharding),
  )
