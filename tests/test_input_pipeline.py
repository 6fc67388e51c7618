"""The grain pipeline: epochs cover every example once, order is seeded, state resumes exactly."""

import threading
import time

from absl import flags
import jax
import numpy as np
import pytest

from stt import input_pipeline

T, K = 3, 4


def _frames(i):
  """Example i's frames: value i, with a bright left column so that a flip is visible."""
  frames = np.full((T, 1, 4, 4, 3), i, np.uint8)
  frames[..., :, 0, :] = 255
  return frames


def _source(num_examples):
  return [
      {
          "video_id": f"v{i}".encode(),
          "frames": _frames(i),
          "log_mel": np.zeros((T, 96, 64), np.float32),
          "segment_mask": np.ones((T,), bool),
          "label": np.int64(i % 3),
          "segment_labels": np.zeros((T,), np.int32),
          "boxes": np.zeros((T, K, 4), np.float32),
          "box_mask": np.zeros((T, K), bool),
          "frame_size": np.array([8, 8], np.int32),
          "event_start": np.int32(0),
          "event_end": np.int32(1),
          "has_audio": np.bool_(True),
      }
      for i in range(num_examples)
  ]


def _train(
    source, seed=0, flip=False, per_host_batch_size=4, process_index=None, process_count=None
):
  return input_pipeline.train_dataset(
      source,
      per_host_batch_size=per_host_batch_size,
      seed=seed,
      random_flip=flip,
      num_workers=0,
      prefetch_buffer_size=1,
      process_index=process_index,
      process_count=process_count,
  )


@pytest.mark.parametrize("num_examples", [12, 10])
def test_hosts_split_global_batches_and_read_each_example_once_per_epoch(num_examples):
  """3 hosts x 2 rows read exactly the global batches of 1 host x 6 rows, disjointly."""
  single = iter(
      _train(
          _source(num_examples), flip=True, per_host_batch_size=6, process_index=0, process_count=1
      )
  )
  hosts = [
      iter(
          _train(
              _source(num_examples),
              flip=True,
              per_host_batch_size=2,
              process_index=p,
              process_count=3,
          )
      )
      for p in range(3)
  ]
  stream = []
  for _ in range(4):
    expected = next(single)
    parts = [next(host) for host in hosts]
    for key in ("index", "frames"):  # same examples, same augmentation, same order
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), expected[key])
    stream.extend(expected["index"].tolist())
  flipped = np.concatenate([next(single)["frames"] for _ in range(4)])[:, 0, 0, 0, -1, 0] == 255
  assert 0 < flipped.sum() < len(flipped)  # the augmentation is on, and random
  # The global stream is a sequence of epochs, each a permutation of the split: every example
  # is read once per epoch, by exactly one host.
  for epoch in range(len(stream) // num_examples):
    assert sorted(stream[epoch * num_examples : (epoch + 1) * num_examples]) == list(
        range(num_examples)
    )


def test_each_epoch_covers_every_example_once_in_a_new_order():
  iterator = iter(_train(_source(12)))
  epochs = [np.concatenate([next(iterator)["index"] for _ in range(3)]) for _ in range(2)]
  for epoch in epochs:
    assert sorted(epoch.tolist()) == list(range(12))
  assert epochs[0].tolist() != epochs[1].tolist()
  assert epochs[0].tolist() != list(range(12))  # shuffled


def test_order_is_seeded():
  first = [next(iter(_train(_source(12), seed=s)))["index"].tolist() for s in (0, 0, 1)]
  assert first[0] == first[1] != first[2]


def test_batch_shapes_and_types():
  batch = next(iter(_train(_source(8), flip=True)))
  assert batch["frames"].shape == (4, T, 1, 4, 4, 3) and batch["frames"].dtype == np.uint8
  assert batch["log_mel"].shape == (4, T, 96, 64)
  assert batch["valid"].all() and "video_id" not in batch


def test_iterator_state_resumes_exactly():
  iterator = iter(_train(_source(10), flip=True))
  for _ in range(3):
    next(iterator)
  state = iterator.get_state()
  expected = [next(iterator)["frames"] for _ in range(4)]
  resumed = iter(_train(_source(10), flip=True))
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["frames"], want)


def test_eval_batches_pad_and_cover_every_example_once():
  batches = list(input_pipeline.eval_batches(_source(10), per_host_batch_size=4))
  assert len(batches) == 3
  valid = np.concatenate([b["valid"] for b in batches])
  index = np.concatenate([b["index"] for b in batches])
  assert valid.sum() == 10 and valid[-2:].tolist() == [False, False]
  assert sorted(index[valid].tolist()) == list(range(10))
  assert all(b["frames"].shape[0] == 4 for b in batches)


def test_too_small_train_split_is_a_clear_error():
  with pytest.raises(ValueError, match="fewer than one global batch"):
    _train(_source(3))


def test_global_batch_is_sharded_over_devices():
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  batch = input_pipeline.make_global_batch({"x": np.arange(8.0)}, sharding)
  np.testing.assert_array_equal(np.asarray(batch["x"]), np.arange(8.0))


def test_mp_prefetch_workers_yield_the_same_batches_and_resume():
  """With grain worker processes (mp_prefetch) the stream, and its checkpoint, are unchanged."""
  if not flags.FLAGS.is_parsed():  # grain reads its absl flags; stt.main parses them
    flags.FLAGS.mark_as_parsed()

  def make(num_workers):
    return input_pipeline.train_dataset(
        _source(10),
        per_host_batch_size=4,
        seed=0,
        random_flip=True,
        num_workers=num_workers,
        prefetch_buffer_size=2,
    )

  in_process = iter(make(0))
  expected = [next(in_process) for _ in range(6)]
  workers = iter(make(2))
  for want in expected[:3]:
    got = next(workers)
    for key in ("index", "frames"):
      np.testing.assert_array_equal(got[key], want[key])
  state = workers.get_state()
  resumed = iter(make(2))
  resumed.set_state(state)
  for want in expected[3:]:
    np.testing.assert_array_equal(next(resumed)["index"], want["index"])


class _CountingSource:
  """A list-like source that counts the examples read from it (from any thread)."""

  def __init__(self, examples):
    self._examples = examples
    self._lock = threading.Lock()
    self.reads = 0

  def __len__(self):
    return len(self._examples)

  def __getitem__(self, index):
    with self._lock:
      self.reads += 1
    return self._examples[index]


@pytest.mark.parametrize("buffer_size", [1, 3])
def test_the_pipeline_reads_only_its_buffer_of_batches_ahead(buffer_size):
  """grain's default read 500 batches ahead (GBs at real sizes); at most `buffer_size` now."""
  source = _CountingSource(_source(8))
  iterator = iter(
      input_pipeline.train_dataset(
          source,
          per_host_batch_size=2,
          seed=0,
          random_flip=False,
          num_workers=0,
          prefetch_buffer_size=buffer_size,
          process_index=0,
          process_count=1,
      )
  )
  next(iterator)
  time.sleep(0.5)  # the old read-ahead got through hundreds of these tiny batches in this time
  # The batch taken, `buffer_size` read ahead, and one more that a reader thread may have begun.
  assert 2 <= source.reads <= 2 * (2 + buffer_size)


def test_a_prefetch_buffer_below_one_batch_is_refused():
  with pytest.raises(ValueError, match="prefetch_buffer_size must be >= 1"):
    input_pipeline.train_dataset(
        _source(4),
        per_host_batch_size=2,
        seed=0,
        random_flip=False,
        num_workers=0,
        prefetch_buffer_size=0,
    )
