"""stt/resident_input.py: the device-resident train split gives the host pipeline's batches."""

import jax
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from stt import config_validation
from stt import input_pipeline
from stt import resident_input
from stt import sharding


class _FeatureSource:
  """Features-like examples whose values name their example."""

  def __init__(self, num_examples: int):
    self.num_examples = num_examples

  def __len__(self):
    return self.num_examples

  def __getitem__(self, i):
    return {
        "visual_features": np.full((3, 2, 2, 4), i, np.float16),
        "audio_features": np.full((3, 5), -i, np.float32),
        "segment_mask": np.arange(3) <= i % 3,
        "label": np.int64(i % 4),
    }


def _pipeline(source, seed=7):
  return input_pipeline.train_dataset(
      source,
      per_host_batch_size=4,
      seed=seed,
      random_flip=False,
      num_workers=0,
      prefetch_buffer_size=2,
  )


def _resident(source):
  config = synthetic_config.get_config("smoke")
  mesh = sharding.make_mesh(config)
  return resident_input.ResidentSplit(source, mesh)


def test_batches_equal_the_host_pipelines_over_epochs():
  source = _FeatureSource(10)  # 2.5 batches an epoch: batches straddle epochs
  resident = _resident(source)
  # On each device: visual f16, audio f32, segment_mask, label (int32), valid, index (int32).
  assert resident.nbytes == 10 * (3 * 2 * 2 * 4 * 2 + 3 * 5 * 4 + 3 + 4 + 1 + 4)
  host, device = iter(_pipeline(source)), iter(_pipeline(resident.index_source()))
  seen = []
  for _ in range(6):
    # What the trainer's host path gives: the numpy batch made a global jax.Array batch.
    expected = jax.device_get(input_pipeline.make_global_batch(next(host), resident.sharding))
    got = jax.device_get(resident.batch(next(device)))
    assert got.keys() == expected.keys()
    for key in expected:
      assert got[key].dtype == expected[key].dtype, key
      np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    seen.extend(expected["index"])
  assert sorted(seen[:10]) == list(range(10))  # the first epoch: every example once
  # A different seed: a different order (the index stream carries the shuffle).
  other = next(iter(_pipeline(resident.index_source(), seed=8)))
  assert not np.array_equal(other["index"], _first_indices(resident))


def _first_indices(resident):
  return next(iter(_pipeline(resident.index_source())))["index"]


def test_the_index_iterator_resumes_from_its_state():
  resident = _resident(_FeatureSource(10))
  iterator = iter(_pipeline(resident.index_source()))
  for _ in range(3):
    next(iterator)
  state = iterator.get_state()
  expected = [next(iterator)["index"] for _ in range(2)]
  resumed = iter(_pipeline(resident.index_source()))
  resumed.set_state(state)
  for indices in expected:
    np.testing.assert_array_equal(next(resumed)["index"], indices)


def test_an_empty_split_and_host_augmentation_are_refused():
  with pytest.raises(ValueError, match="the split is empty"):
    resident_input.read_split(_FeatureSource(0))
  config = synthetic_config.get_config("smoke")
  config.input.device_resident = True
  with pytest.raises(ValueError, match="set input.random_flip=False"):
    config_validation.validate(config, device_count=1)
  config.input.random_flip = False
  config_validation.validate(config, device_count=1)
