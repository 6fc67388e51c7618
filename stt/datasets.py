"""Finding (and for the synthetic set, making) the built TFDS dataset a config asks for.

The synthetic set is generated and built on first use and cached under the data dir:

    <data_dir>/downloads/manual/<tag>/        the AVE-format directory of MP4s
    <data_dir>/ave_videos/<tag>_t10_f1_s64/   the built array_record dataset
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os

import jax
import ml_collections
from etils import epath
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from data_pipelines import ave_builder
from data_pipelines import synthetic

SPLITS = ("train", "val", "test")


class DatasetError(RuntimeError):
  """The configured dataset cannot be found or used. The message says what to do."""


@dataclasses.dataclass
class Dataset:
  """Random-access sources per split, plus what the model needs to know about the data."""

  sources: dict  # {split: TFDS array_record data source}
  class_names: list[str]
  dataset_dir: epath.Path

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def resolve_data_dir(config: ml_collections.ConfigDict) -> epath.Path:
  """`config.data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  data_dir = config.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  return epath.Path(data_dir).expanduser()  # a local path or gs://...


def synthetic_tag(config: ml_collections.ConfigDict) -> str:
  """A name that changes whenever the synthetic generator settings change."""
  spec = json.dumps(config.synthetic.to_dict(), sort_keys=True)
  return "synthetic_" + hashlib.sha1(spec.encode()).hexdigest()[:8]


def _dataset_dir(data_dir: epath.Path, tag: str, config) -> epath.Path:
  name = ave_builder.config_name(tag, config.dataset.num_segments,
                                 config.dataset.frames_per_segment, config.dataset.frame_size)
  return data_dir / "ave_videos" / name / str(ave_builder.AveVideos.VERSION)


def prepare_synthetic(config: ml_collections.ConfigDict, data_dir: epath.Path) -> epath.Path:
  """Generates and builds the synthetic set unless it is already cached; returns its directory."""
  tag = synthetic_tag(config)
  dataset_dir = _dataset_dir(data_dir, tag, config)
  if (dataset_dir / "dataset_info.json").exists():
    return dataset_dir
  raw_dir = data_dir / "downloads" / "manual" / tag
  if not (raw_dir / synthetic.COMPLETE_MARKER).exists():
    logging.info("Generating the synthetic AV-event set in %s", raw_dir)
    synthetic.generate(raw_dir, synthetic.SyntheticSpec(**config.synthetic.to_dict()),
                       num_workers=config.dataset.build_workers)
  logging.info("Building the TFDS dataset from %s", raw_dir)
  summary = ave_builder.build(
      raw_dir, data_dir, tag=tag, num_segments=config.dataset.num_segments,
      frames_per_segment=config.dataset.frames_per_segment,
      frame_size=config.dataset.frame_size, num_workers=config.dataset.build_workers)
  logging.info("Synthetic set: %s", summary)
  return dataset_dir


def load(config: ml_collections.ConfigDict) -> Dataset:
  """Opens the configured dataset's splits, preparing the synthetic set on first use."""
  data_dir = resolve_data_dir(config)
  name = config.dataset.name
  if name == "synthetic":
    # Process 0 generates and builds; the others wait, then find it built (a shared data dir,
    # e.g. gs://, is assumed for multi-host runs).
    if jax.process_index() == 0:
      data_dir.mkdir(parents=True, exist_ok=True)
      prepare_synthetic(config, data_dir)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("stt_prepare_synthetic")
    dataset_dir = prepare_synthetic(config, data_dir)
  elif name == "ave":
    if not data_dir.is_dir():
      raise DatasetError(f"data dir {data_dir} does not exist; build AVE into it first")
    dataset_dir = _dataset_dir(data_dir, "ave", config)
  else:
    raise DatasetError(f"unknown dataset.name {name!r}; known: synthetic, ave")
  if not (dataset_dir / "dataset_info.json").exists():
    raise DatasetError(
        f"no built dataset at {dataset_dir} (data dir {data_dir} holds none for "
        f"dataset.name={name!r} with these segment/frame settings); build it first")
  builder = tfds.builder_from_directory(str(dataset_dir))
  missing = [split for split in SPLITS if split not in builder.info.splits]
  if missing:
    raise DatasetError(f"dataset at {dataset_dir} lacks splits {missing}")
  sources = {split: builder.as_data_source(split) for split in SPLITS}
  return Dataset(sources, list(builder.info.features["label"].names), dataset_dir)
