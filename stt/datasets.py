"""Finding (and for the synthetic set, making) the built TFDS dataset a config asks for.

The record of `(config.dataset.name, config.dataset.input)` in data_pipelines/catalogue.py says
where its build is and how it is built. A set generated here (the synthetic one) is built on
first use and cached under the data dir (data_pipelines/synthetic_dataset.py):

    <data_dir>/downloads/manual/<tag>/        the AVE-format directory of MP4s
    <data_dir>/ave_videos/<tag>_t10_f1_s64/   the built array_record dataset

The others are built once by the user (`python -m data_pipelines.build`, whose command the
error names), e.g.

    <data_dir>/ave_features/visual_float16/   dataset.input='features' (the AVE feature release)
    <data_dir>/ave_videos/ave_t10_f1_s224/    dataset.input='raw' (decoded AVE videos)
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

from data_pipelines import catalogue
from data_pipelines import dataset_spec
from stt.models import backbones

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


def request_of(
    spec: dataset_spec.DatasetSpec, config: ml_collections.ConfigDict, data_dir: epath.Path
) -> dataset_spec.BuildRequest:
  """What `spec`'s builder is asked for the run of `config`: its decode settings and options."""
  try:
    options = catalogue.config_options(spec, config)
  except catalogue.MissingOptionError as error:
    raise DatasetError(str(error)) from None
  return dataset_spec.BuildRequest(
      data_dir=data_dir,
      decode=dataset_spec.Decode.of(config.dataset),
      options=options,
      num_workers=config.dataset.get("build_workers", 1),
  )


def built_dir(
    spec: dataset_spec.DatasetSpec, config: ml_collections.ConfigDict, data_dir: epath.Path
) -> epath.Path:
  """The build of `spec` for this run; DatasetError naming the build command when there is none
  (a set built on first use is built here)."""
  request = request_of(spec, config, data_dir)
  if spec.built_on_first_use:
    # Process 0 generates and builds; the others wait, then find it built (a shared data dir,
    # e.g. gs://, is assumed for multi-host runs).
    if jax.process_index() == 0:
      data_dir.mkdir(parents=True, exist_ok=True)
      spec.builder.build(request, {})
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"stt_prepare_{spec.name}")
    return spec.builder.build(request, {})
  directory = spec.builder.dataset_dir(data_dir, request.decode, request.options)
  build_command = spec.build_command(data_dir, request.decode, request.options)
  if not data_dir.is_dir():
    raise DatasetError(
        f"data dir {data_dir} does not exist; build the dataset into it with: {build_command}"
    )
  if not (directory / "dataset_info.json").exists():
    raise DatasetError(
        f"no built dataset at {directory} ({spec.title}); build it with: {build_command}"
    )
  return directory


def load(config: ml_collections.ConfigDict) -> Dataset:
  """Opens the configured dataset's splits, building a set built on first use."""
  data_dir = resolve_data_dir(config)
  name, input_kind = config.dataset.name, config.dataset.input
  spec = catalogue.trained(name, input_kind)
  if spec is None:
    raise DatasetError(
        f"no dataset for dataset.name={name!r} with dataset.input={input_kind!r}; known: "
        f"{catalogue.inputs()}"
    )
  dataset_dir = built_dir(spec, config, data_dir)
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
  if input_kind == "features":
    _take_feature_shapes(config, builder.info.features, dataset_dir)
  else:
    derive_grid_size(config)
  sources = {split: builder.as_data_source(split) for split in SPLITS}
  return Dataset(sources, list(builder.info.features["label"].names), dataset_dir)


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
