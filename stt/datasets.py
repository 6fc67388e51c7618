"""Finding (and for the synthetic set, making) the built TFDS dataset a config asks for.

The synthetic set is generated and built on first use and cached under the data dir
(data_pipelines/synthetic_dataset.py):

    <data_dir>/downloads/manual/<tag>/        the AVE-format directory of MP4s
    <data_dir>/ave_videos/<tag>_t10_f1_s64/   the built array_record dataset

AVE is built once by the user (`python -m data_pipelines.build`, which names the download):

    <data_dir>/ave_features/visual_float16/   dataset.input='features' (the AVE feature release)
    <data_dir>/ave_videos/ave_t10_f1_s224/    dataset.input='raw' (decoded AVE videos)

Clip-manifest datasets are built the same way (`--dataset=kinetics_sounds|vggsound|manifest`):

    <data_dir>/manifest_videos/<tag>_t10_f1_s224/   tag = dataset.name, or dataset.tag for
                                                    dataset.name='manifest' (the build's --tag)
"""

from __future__ import annotations

import dataclasses
import math
import os

from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections
import tensorflow_datasets as tfds

from data_pipelines import ave_builder
from data_pipelines import ave_features
from data_pipelines import manifest_builder
from data_pipelines import synthetic_dataset
from stt.models import backbones

SPLITS = ("train", "val", "test")
MANIFEST_DATASETS = manifest_builder.MANIFEST_DATASETS
DATASETS = ("synthetic", "ave", *MANIFEST_DATASETS)
INPUTS = {"raw": DATASETS, "features": ("ave",)}  # dataset.input: the datasets that have it


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


def prepare_synthetic(config: ml_collections.ConfigDict, data_dir: epath.Path) -> epath.Path:
  """Generates and builds the config's synthetic set unless it is cached; returns its directory."""
  d = config.dataset
  return synthetic_dataset.prepare(
      data_dir,
      config.synthetic.to_dict(),
      num_segments=d.num_segments,
      frames_per_segment=d.frames_per_segment,
      frame_size=d.frame_size,
      num_workers=d.build_workers,
  )


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
  elif name == "ave" or name in MANIFEST_DATASETS:
    dataset_dir, build_command = (
        _ave_dataset_dir(config, data_dir)
        if name == "ave"
        else _manifest_dataset_dir(config, data_dir)
    )
    if not data_dir.is_dir():
      raise DatasetError(
          f"data dir {data_dir} does not exist; build the dataset into it with: " f"{build_command}"
      )
    if not (dataset_dir / "dataset_info.json").exists():
      raise DatasetError(f"no built dataset at {dataset_dir}; build it with: {build_command}")
  else:
    raise DatasetError(
        f"unknown dataset.name {name!r}; known: synthetic, ave, " f"{', '.join(MANIFEST_DATASETS)}"
    )
  if not (dataset_dir / "dataset_info.json").exists():
    raise DatasetError(
        f"no built dataset at {dataset_dir} (data dir {data_dir} holds none for "
        f"dataset.name={name!r} with these segment/frame settings); build it first"
    )
  builder = tfds.builder_from_directory(str(dataset_dir))
  missing = [split for split in SPLITS if split not in builder.info.splits]
  if missing:
    raise DatasetError(
        f"dataset at {dataset_dir} lacks splits {missing}: its source had no "
        "example for them (a manifest needs rows of every split)"
    )
  if config.dataset.input == "features":
    _take_feature_shapes(config, builder.info.features, dataset_dir)
  else:
    derive_grid_size(config)
  sources = {split: builder.as_data_source(split) for split in SPLITS}
  return Dataset(sources, list(builder.info.features["label"].names), dataset_dir)


def _ave_dataset_dir(
    config: ml_collections.ConfigDict, data_dir: epath.Path
) -> tuple[epath.Path, str]:
  """(built dataset directory, the command that builds it) for dataset.name='ave'."""
  if config.dataset.input == "features":
    return (
        ave_features.dataset_dir(data_dir, config.dataset.visual_dtype),
        "python -m data_pipelines.build --dataset=ave_features "
        f"--manual_dir=<AVE feature release dir> --data_dir={data_dir} "
        f"--visual_dtype={config.dataset.visual_dtype}",
    )
  d = config.dataset
  name = ave_builder.config_name("ave", d.num_segments, d.frames_per_segment, d.frame_size)
  return (
      data_dir / "ave_videos" / name / str(ave_builder.AveVideos.VERSION),
      "python -m data_pipelines.build --dataset=ave --manual_dir=<AVE-format video dir> "
      f"--data_dir={data_dir} --num_segments={d.num_segments} "
      f"--frames_per_segment={d.frames_per_segment} --frame_size={d.frame_size}",
  )


def _manifest_dataset_dir(
    config: ml_collections.ConfigDict, data_dir: epath.Path
) -> tuple[epath.Path, str]:
  """(built dataset directory, the command that builds it) for a clip-manifest dataset."""
  d = config.dataset
  if d.name == "manifest":
    tag = d.get("tag")
    if not tag:
      raise DatasetError(
          "dataset.name='manifest' needs dataset.tag, the --tag the manifest was "
          "built with (python -m data_pipelines.build --dataset=manifest "
          "--manual_dir=DIR --tag=NAME)"
      )
    source = f"--dataset=manifest --manual_dir=<dir of manifest.csv> --tag={tag}"
  else:
    tag = d.name
    source = f"--dataset={d.name} --manual_dir=<downloaded {d.name} dir>"
  return (
      manifest_builder.dataset_dir(
          data_dir, tag, d.num_segments, d.frames_per_segment, d.frame_size
      ),
      f"python -m data_pipelines.build {source} --data_dir={data_dir} "
      f"--num_segments={d.num_segments} --frames_per_segment={d.frames_per_segment} "
      f"--frame_size={d.frame_size}",
  )


def _take_feature_shapes(config: ml_collections.ConfigDict, features, dataset_dir: epath.Path):
  """Sets model.grid_size / visual_feature_dim / audio_feature_dim left None from the dataset.

  The shapes of precomputed features are a property of the built data, not of the config, so
  feature configs leave them None; values set anyway must agree with the data.
  visual_features [T,h,w,Cv], audio_features [T,Ca].
  """
  num_segments, height, width, visual_dim = features["visual_features"].shape
  audio_dim = features["audio_features"].shape[-1]
  if num_segments != config.dataset.num_segments:
    raise DatasetError(
        f"the dataset at {dataset_dir} has {num_segments} segments but "
        f"dataset.num_segments={config.dataset.num_segments}"
    )
  from_data = {
      "grid_size": (height, width),
      "visual_feature_dim": visual_dim,
      "audio_feature_dim": audio_dim,
  }
  for key, value in from_data.items():
    configured = config.model[key]
    if configured is None:
      config.model[key] = value
    elif (tuple(configured) if key == "grid_size" else configured) != value:
      raise DatasetError(
          f"model.{key}={configured} but the features at {dataset_dir} give "
          f"{value}; leave model.{key} unset to take it from the data"
      )


def derive_grid_size(config: ml_collections.ConfigDict):
  """Sets model.grid_size, left None, from the visual backbone's stride and dataset.frame_size.

  A value set anyway must agree (config_validation checks it before anything runs).
  """
  stride = backbones.VISUAL_BACKBONES[config.model.visual_backbone].stride
  side = math.ceil(config.dataset.frame_size / stride)
  if config.model.grid_size is None:
    config.model.grid_size = (side, side)
