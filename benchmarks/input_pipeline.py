r"""Input pipeline throughput: examples/s from array_record through grain, against the model.

  python benchmarks/input_pipeline.py --quick              # < 2 min on 2 CPU cores
  python benchmarks/input_pipeline.py --workers=0,1,2,4,8 --examples=512

For both sizes it writes a dataset with the real builders' TFDS features (so the storage
format is the one training reads):
  features: the AVE feature release, visual [10,7,7,512] float16 (raw bytes) + audio [10,128];
  raw:      decoded videos, frames [10,1,224,224,3] uint8 + log-mel [10,96,64] float32,
then reads it with the trainer's own pipeline (`stt.input_pipeline.train_dataset`: shuffle,
augmentation, batching, `mp_prefetch` with 0..N worker processes) and reports examples/s.
The row `workers: "resident"` is `input.device_resident=True` (stt/resident_input.py): the split
read once into device memory, each batch's indices from the same pipeline, the rows gathered on
the device (its rate includes the gather, finished on the device; the host rows stop at numpy).
Beside it, the model's consumption rate: examples/s of the training step on this machine
(benchmarks/train_throughput.py). input/model > 1 means training is not input-bound.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

from absl import flags
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import ave_builder
from data_pipelines import ave_features
from data_pipelines import video_examples
from stt import input_pipeline
from stt import resident_input
from stt import sharding

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train_throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

CLASS_NAMES = tuple(f"class_{i}" for i in range(28))


def real_features(size: str, directory: pathlib.Path) -> tfds.features.FeaturesDict:
  """The FeaturesDict the project's builder for `size` writes."""
  if size == "features":
    config = ave_features.AveFeaturesConfig(
        name="bench",
        class_names=CLASS_NAMES,
        visual_shape=(10, 7, 7, 512),
        audio_shape=(10, 128),
        visual_dtype="float16",
    )
    return ave_features.AveFeatures(config=config, data_dir=str(directory)).info.features
  config = video_examples.VideoConfig(
      name="bench", class_names=CLASS_NAMES, num_segments=10, frames_per_segment=1, frame_size=224
  )
  return ave_builder.AveVideos(config=config, data_dir=str(directory)).info.features


def random_example(features: tfds.features.FeaturesDict, rng: np.random.Generator) -> dict:
  """An example with random values of every feature's shape and dtype."""
  example = {}
  for key, info in features.get_tensor_info().items():
    if key == "video_id":
      example[key] = f"v{rng.integers(1 << 30)}"
    elif key == "label":
      example[key] = int(rng.integers(len(CLASS_NAMES)))
    elif np.dtype(info.np_dtype) == np.bool_:
      example[key] = rng.random(info.shape) < 0.9
    elif np.issubdtype(np.dtype(info.np_dtype), np.integer):
      example[key] = rng.integers(0, 200, info.shape).astype(info.np_dtype)
    else:
      example[key] = rng.standard_normal(info.shape).astype(info.np_dtype)
  return example


class _BenchmarkSet(tfds.core.GeneratorBasedBuilder):
  """Random examples in a given FeaturesDict, written as array_record (train split only)."""

  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, features, num_examples: int, **kwargs):
    self._features, self._num_examples = features, num_examples
    super().__init__(**kwargs)

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=self._features)

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i in range(self._num_examples):
      yield i, random_example(self._features, rng)


def write_dataset(size: str, num_examples: int, directory: pathlib.Path):
  """(array_record train source, MB per example on disk)."""
  features = real_features(size, directory / "spec")
  builder = _BenchmarkSet(
      features=features, num_examples=num_examples, data_dir=str(directory / size)
  )
  builder.download_and_prepare(file_format="array_record")
  on_disk = sum(p.stat().st_size for p in pathlib.Path(builder.data_dir).glob("*array_record*"))
  # Read back as training does, through a read-only builder (picklable for grain's workers).
  source = tfds.builder_from_directory(builder.data_dir).as_data_source("train")
  return source, on_disk / num_examples / 1e6


def examples_per_second(source, batch_size: int, num_workers: int, num_batches: int) -> float:
  """Examples/s of the trainer's pipeline; each worker's first batch (its start-up) excluded."""
  dataset = input_pipeline.train_dataset(
      source,
      per_host_batch_size=batch_size,
      seed=0,
      random_flip=True,
      num_workers=num_workers,
      prefetch_buffer_size=2,
      process_index=0,
      process_count=1,
  )
  iterator = iter(dataset)
  for _ in range(max(1, num_workers)):  # each worker process's first batch carries its start-up
    next(iterator)
  start = time.perf_counter()
  for _ in range(num_batches):
    batch = next(iterator)
  elapsed = time.perf_counter() - start
  assert batch["label"].shape == (batch_size,)
  return num_batches * batch_size / elapsed


def resident_examples_per_second(source, batch_size: int, num_batches: int) -> float:
  """Examples/s of the device-resident split: index pipeline + on-device gather (the split's
  one-time read excluded, as the host rows exclude their workers' start-up)."""
  mesh = sharding.make_mesh(ml_collections.ConfigDict({"mesh": {"fsdp": 1}}))
  resident = resident_input.ResidentSplit(source, mesh)
  indices = iter(
      input_pipeline.train_dataset(
          resident.index_source(),
          per_host_batch_size=batch_size,
          seed=0,
          random_flip=False,
          num_workers=0,
          prefetch_buffer_size=2,
          process_index=0,
          process_count=1,
      )
  )
  jax.block_until_ready(resident.batch(next(indices)))  # compiles the gather
  start = time.perf_counter()
  batches = [resident.batch(next(indices)) for _ in range(num_batches)]
  jax.block_until_ready(batches)
  elapsed = time.perf_counter() - start
  assert batches[-1]["label"].shape == (batch_size,)
  return num_batches * batch_size / elapsed


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--sizes", default="features,raw")
  parser.add_argument("--workers", default=None, help="comma-separated worker counts")
  parser.add_argument("--examples", type=int, default=None)
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--no_model", action="store_true", help="skip the model's rate")
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags (defaults here)
  workers = [int(w) for w in (args.workers or ("0,2" if args.quick else "0,1,2,4")).split(",")]
  num_examples = args.examples or (64 if args.quick else 512)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for size in args.sizes.split(","):
      batch_size = args.batch_size or (16 if size == "raw" else 32)
      num_batches = max(2, (3 * num_examples) // batch_size)  # ~3 epochs
      source, megabytes = write_dataset(size, num_examples, pathlib.Path(tmp))
      model_rate = None
      if not args.no_model:
        model_batch = (
            (1 if args.quick else 2)
            if (size == "raw" and jax.default_backend() == "cpu")
            else batch_size
        )
        row = train_throughput.measure(size, "float32", model_batch, steps=1 if args.quick else 5)
        model_rate = row["examples_per_s"]
      for num_workers in [*workers, "resident"]:
        rate = (
            resident_examples_per_second(source, batch_size, num_batches)
            if num_workers == "resident"
            else examples_per_second(source, batch_size, num_workers, num_batches)
        )
        rows.append(
            {
                "size": size,
                "workers": num_workers,
                "batch_size": batch_size,
                "examples_per_s": rate,
                "mb_per_example": megabytes,
                "model_examples_per_s": model_rate,
                "input_over_model": rate / model_rate if model_rate else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
  print(
      json.dumps(
          {
              "benchmark": "input_pipeline",
              "device": jax.devices()[0].device_kind,
              "backend": jax.default_backend(),
              "examples": num_examples,
              "rows": rows,
          }
      )
  )


if __name__ == "__main__":
  main()
