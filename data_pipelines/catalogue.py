"""The datasets, one record each (data_pipelines/dataset_spec.py's DatasetSpec).

To add a dataset: write its builder module (a DatasetBuilder: where it is built, how) and add
one DatasetSpec to DATASETS; the build CLI, the trainer, the explained split, the explain suite
and the config checks find it here (docs/design.md §6).

The lookups below read DATASETS when called, so a test may extend it (monkeypatch) and see every
consumer pick the new record up.
"""

from __future__ import annotations

from typing import Any

from data_pipelines import ave_features
from data_pipelines import dataset_builds
from data_pipelines import flickr_soundnet_builder
from data_pipelines import synthetic
from data_pipelines import synthetic_hard_dataset
from data_pipelines import vggss_builder
from data_pipelines import vggss_format
from data_pipelines.dataset_spec import DECODE_FLAGS
from data_pipelines.dataset_spec import VIDEO_FLAGS
from data_pipelines.dataset_spec import DatasetSpec
from data_pipelines.dataset_spec import Decode

EZ_VSL = "https://github.com/stoneMo/EZ-VSL README"
SSL_ALIGNMENT = "https://github.com/kaistmm/SSLalignment README"


def _manifest_spec(name: str, title: str, summary: str, convert) -> DatasetSpec:
  return DatasetSpec(
      name=name,
      title=title,
      summary=summary,
      builder=dataset_builds.ManifestBuild(tag=name, convert=convert),
      manual_dir_hint=f"downloaded {name} dir",
      trained_as=(name, "raw"),
  )


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="ave_features",
            title="AVE features",
            summary="the AVE feature release (h5 files), see data_pipelines/ave_features.py",
            builder=dataset_builds.AveFeaturesBuild(),
            flags=("manual_dir", "visual_dtype"),
            option_flags=("visual_dtype",),
            config_options={"visual_dtype": "dataset.visual_dtype"},
            manual_dir_hint="AVE feature release dir",
            trained_as=("ave", "features"),
        ),
        DatasetSpec(
            name="ave",
            title="AVE",
            summary="an AVE-format directory of videos, decoded by data_pipelines/ave_builder.py",
            builder=dataset_builds.AveVideosBuild(),
            manual_dir_hint="AVE-format video dir",
            trained_as=("ave", "raw"),
        ),
        DatasetSpec(
            name="synthetic",
            title="the synthetic set",
            summary="generated here (no download), as `configs/synthetic.py:<synthetic_config>` "
            "needs",
            builder=dataset_builds.SyntheticBuild(),
            flags=("num_workers", "synthetic_config"),
            option_flags=("synthetic_config",),
            config_options={"settings": "synthetic"},
            cli_decode=(Decode(**synthetic.BUILD_SIZES), "configs/synthetic.py"),
            trained_as=("synthetic", "raw"),
            built_on_first_use=True,
            small_boxes=True,  # objects of 26-36 px on 128 px frames
        ),
        DatasetSpec(
            name="manifest",
            title="the manifest's clips",
            summary="the clips of a CSV manifest `path,label[,start,end][,split]` "
            "(DIR/manifest.csv or --manifest=CSV; a relative clip path is relative to the CSV's "
            "directory), see data_pipelines/manifest_format.py",
            builder=dataset_builds.ManifestBuild(),
            flags=(*VIDEO_FLAGS, "manifest", "tag"),
            option_flags=("manifest", "tag"),
            config_options={"tag": "dataset.tag"},
            manual_dir_hint="dir of manifest.csv",
            manual_dir_alternatives={
                "manifest": "--manual_dir=DIR means DIR/manifest.csv, and relative clip paths "
                "are read relative to the manifest's directory"
            },
            trained_as=("manifest", "raw"),
        ),
        _manifest_spec(
            "kinetics_sounds",
            "Kinetics-Sounds",
            "Kinetics-400 CSVs + clips → the classes of configs/kinetics_sounds.py",
            dataset_builds.kinetics_sounds_manifest,
        ),
        _manifest_spec(
            "vggsound",
            "VGGSound",
            "vggsound.csv + clips, see configs/vggsound.py",
            dataset_builds.vggsound_manifest,
        ),
        DatasetSpec(
            name="vggss",
            title="VGG-SS",
            summary="VGG-SS vggss.json (+ vggss_test.csv, vggsound.csv) + the VGGSound clips, a "
            "test split with boxes, see data_pipelines/vggss_builder.py",
            builder=dataset_builds.VggssBuild(),
            flags=(*VIDEO_FLAGS, "annotated_frame", "vggsound_dataset_dir"),
            option_flags=("annotated_frame", "vggsound_dataset_dir"),
            config_options={"annotated_frame": "explain.annotated_frame"},
            manual_dir_hint="dir of vggss.json, vggss_test.csv, vggsound.csv and the clips",
            ground_truth="union",
            annotated_frames=tuple(vggss_format.ANNOTATED_FRAMES),
            published_rows=(
                ("EZ-VSL", 39.34, 39.78, f"{EZ_VSL} (VGG-Sound full, VGG-SS test)"),
                ("SSL-alignment", 41.42, None, SSL_ALIGNMENT),
            ),
            defects_line=vggss_builder.defects_line,
        ),
        DatasetSpec(
            name="flickr_soundnet",
            title="Flickr-SoundNet",
            summary="flickr_test.csv + Annotations/<id>.xml + <id>.jpg/<id>.wav (or <id>.mp4), "
            "an unlabelled test split with boxes, see data_pipelines/"
            "flickr_soundnet_builder.py",
            builder=dataset_builds.FlickrSoundnetBuild(),
            manual_dir_hint="dir of flickr_test.csv, Annotations/, frames/, audio/",
            labelled=False,
            ground_truth="consensus",
            published_rows=(
                ("EZ-VSL", 83.94, 63.60, EZ_VSL),
                ("SSL-alignment", 86.00, None, SSL_ALIGNMENT),
            ),
            defects_line=flickr_soundnet_builder.defects_line,
        ),
        DatasetSpec(
            name="synthetic_hard",
            title="the harder synthetic set",
            summary="generated here (issue 27): --synthetic_config=hard1 (off-screen sources), "
            "hard2 (silent look-alikes; --frames_per_segment=4) or hard3 (noise and motion), "
            "see data_pipelines/synthetic_hard.py",
            builder=synthetic_hard_dataset.SyntheticHardBuild(),
            flags=("num_workers", "synthetic_config", *DECODE_FLAGS),
            option_flags=("synthetic_config",),
            config_options={"settings": "synthetic_hard"},
            trained_as=("synthetic_hard", "raw"),
            built_on_first_use=True,
        ),
    )
}
# The build CLI's defaults of the datasets' own flags.
OPTION_DEFAULTS = dict(
    visual_dtype=ave_features.VISUAL_DTYPES[0],
    synthetic_config="",
    tag="manifest",
    annotated_frame=vggss_format.DEFAULT_ANNOTATED_FRAME,
)


class UnknownDatasetError(ValueError):
  """A name that no record of DATASETS has."""


def spec(name: str) -> DatasetSpec:
  """The record of `name`; UnknownDatasetError naming the known ones."""
  if name not in DATASETS:
    raise UnknownDatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
  return DATASETS[name]


def trained(name: str, input_kind: str) -> DatasetSpec | None:
  """The record a run with config.dataset.name=name, input=input_kind reads, or None."""
  return next(
      (record for record in DATASETS.values() if record.trained_as == (name, input_kind)), None
  )


def trained_names() -> tuple[str, ...]:
  """The values of config.dataset.name."""
  return tuple(
      dict.fromkeys(r.trained_as[0] for r in DATASETS.values() if r.trained_as is not None)
  )


def inputs() -> dict[str, tuple[str, ...]]:
  """{config.dataset.input: the config.dataset.name values that have it}."""
  found: dict[str, list[str]] = {}
  for record in DATASETS.values():
    if record.trained_as is not None:
      found.setdefault(record.trained_as[1], []).append(record.trained_as[0])
  return {kind: tuple(names) for kind, names in found.items()}


def inputs_of(name: str) -> tuple[str, ...]:
  """The config.dataset.input values of config.dataset.name=name."""
  return tuple(kind for kind, names in inputs().items() if name in names)


def annotation_sets() -> tuple[str, ...]:
  """The values of config.explain.dataset besides '' (the run's own test split)."""
  return tuple(name for name, record in DATASETS.items() if record.ground_truth is not None)


def annotated_frames() -> tuple[str, ...]:
  """The values of config.explain.annotated_frame (any annotation set's)."""
  return tuple(dict.fromkeys(f for record in DATASETS.values() for f in record.annotated_frames))


class MissingOptionError(ValueError):
  """A run's config lacks a key its dataset is read with."""


def config_options(record: DatasetSpec, config) -> dict[str, Any]:
  """{option: value} of record.config_options read from a run's config (a ConfigDict)."""
  options = {}
  for option, key in record.config_options.items():
    value = config
    for part in key.split("."):
      value = value.get(part) if value is not None else None
    if value is None or value == "":
      raise MissingOptionError(
          f"{record.name!r} needs {key}, the --{option} it was built with (python -m "
          f"data_pipelines.build --dataset={record.name} ... --{option}=...)"
      )
    options[option] = value.to_dict() if hasattr(value, "to_dict") else value
  return options
