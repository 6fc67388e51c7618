"""The DatasetBuilder of each dataset of the catalogue: where it is built, what a build needs.

Each class answers data_pipelines/dataset_spec.py's DatasetBuilder protocol for one builder
module (ave_features.py, ave_builder.py, synthetic_dataset.py, manifest_builder.py,
vggss_builder.py, flickr_soundnet_builder.py); data_pipelines/catalogue.py names them. When the
downloaded files lack, `plan` raises an error that says where to download them.
"""

from __future__ import annotations

import sys

from etils import epath

from data_pipelines import ave_builder
from data_pipelines import ave_features
from data_pipelines import ave_features_release
from data_pipelines import ave_format
from data_pipelines import flickr_soundnet_builder
from data_pipelines import kinetics_sounds_classes
from data_pipelines import manifest_builder
from data_pipelines import manifest_converters
from data_pipelines import manifest_format
from data_pipelines import synthetic
from data_pipelines import synthetic_dataset
from data_pipelines import vggss_builder
from data_pipelines import vggss_from_built
from data_pipelines.dataset_spec import BuildInputError
from data_pipelines.dataset_spec import BuildRequest
from data_pipelines.dataset_spec import Decode

AVE_VIDEOS_INSTRUCTIONS = """\
Download AVE_Dataset.zip from https://drive.google.com/open?id=1FjKwe79e0u96vdjIVwfRQ1V6SoDHe7kK
(linked from https://github.com/YapengTian/AVE-ECCV18) and unzip it into {manual_dir}, so that it
holds AVE/<video_id>.mp4, Annotations.txt, trainSet.txt, valSet.txt and testSet.txt."""
MANIFEST_INSTRUCTIONS = """\
Write a CSV manifest with the header path,label[,start,end][,split] to {manifest} (or pass
--manifest=FILE): one row per clip, path relative to the manifest's directory or absolute, start
and end the event in seconds (empty: the whole clip), split train|val|test (empty: by a hash of
the path). See data_pipelines/manifest_format.py."""
KINETICS_SOUNDS_INSTRUCTIONS = """\
Download the Kinetics-400 annotations train.csv, validate.csv (or val.csv) and test.csv from
https://github.com/cvdfoundation/kinetics-dataset (k400 annotations; or the 2017 release
https://storage.googleapis.com/deepmind-media/Datasets/kinetics400.tar.gz) into {manual_dir}
(or {manual_dir}/annotations). Put the clips of the 31 classes of configs/kinetics_sounds.py
anywhere under {manual_dir}, named <youtube_id>_<time_start:06d>_<time_end:06d>.mp4: the
cvdfoundation k400 video archives use these names; to fetch only these classes from YouTube,
cut [time_start, time_end] of each row (e.g. yt-dlp --download-sections)."""
VGGSOUND_INSTRUCTIONS = """\
Download vggsound.csv from https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (also in
https://github.com/hche11/VGGSound, data/vggsound.csv) into {manual_dir}. Put the 10 s clips
anywhere under {manual_dir}, named <ytid>_<start:06d>.mp4: for each row, seconds
[start, start+10) of https://www.youtube.com/watch?v=<ytid> (e.g. yt-dlp --download-sections)."""
KINETICS_CSV_NAMES = ("train.csv", "validate.csv", "val.csv", "test.csv")


class AveFeaturesBuild:
  """The AVE feature release (h5 files), data_pipelines/ave_features.py; options: visual_dtype."""

  def dataset_dir(self, data_dir, decode: Decode, options) -> epath.Path:
    del decode  # the release's own shapes
    return ave_features.dataset_dir(data_dir, options["visual_dtype"])

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    release = ave_features_release.check_release(
        request.manual_dir
    )  # says what to download if needed
    return sum(len(order) for order in release.orders.values()), {}

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    del planned
    return ave_features.build(
        request.manual_dir,
        request.data_dir,
        visual_dtype=request.options["visual_dtype"],
        on_row=request.on_row,
    ).dataset_dir


class AveVideosBuild:
  """An AVE-format directory of videos, data_pipelines/ave_builder.py."""

  TAG = "ave"

  def dataset_dir(self, data_dir, decode: Decode, options) -> epath.Path:
    del options
    return ave_builder.dataset_dir(data_dir, self.TAG, decode)

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    manual_dir = epath.Path(request.manual_dir)
    needed = ["Annotations.txt", *ave_format.SPLIT_FILES.values(), "AVE"]
    missing = [name for name in needed if not (manual_dir / name).exists()]
    if missing:
      raise BuildInputError(
          f"{manual_dir} lacks {', '.join(missing)}.\n"
          + AVE_VIDEOS_INSTRUCTIONS.format(manual_dir=manual_dir)
      )
    rows = sum(len(ave_format.read_split(manual_dir, split)) for split in ave_format.SPLIT_FILES)
    return rows, {}

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    del planned
    return ave_builder.build(
        request.manual_dir, request.data_dir, tag=self.TAG, **request.video_kwargs()
    ).dataset_dir


class SyntheticBuild:
  """The embedded synthetic set, data_pipelines/synthetic_dataset.py: generated, then built.

  options: `settings` (a config's `synthetic` section) or, from the build CLI,
  `synthetic_config` (the argument of configs/synthetic.py)."""

  def settings(self, options) -> dict:
    if "settings" in options:
      return dict(options["settings"])
    presets = [a.strip() for a in options["synthetic_config"].split(",") if a.strip()]
    unknown = sorted(set(presets) - set(synthetic.PRESETS))
    if unknown:
      known = ", ".join(p for p in synthetic.PRESETS if p)
      raise BuildInputError(
          f"--synthetic_config={options['synthetic_config']}: configs/synthetic.py: "
          f"unknown arguments {unknown}; known: {known}"
      )
    return synthetic.default_settings("smoke" if "smoke" in presets else "")

  def dataset_dir(self, data_dir, decode: Decode, options) -> epath.Path:
    return synthetic_dataset.dataset_dir(data_dir, self.settings(options), decode)

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    settings = self.settings(request.options)
    return settings["num_train"] + settings["num_val"] + settings["num_test"], {}

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    """The trainer's own preparation step, so the result is exactly what a config looks for."""
    del planned
    return synthetic_dataset.prepare(
        request.data_dir,
        self.settings(request.options),
        request.decode,
        num_workers=request.num_workers,
        on_row=request.on_row,
    )


def _kinetics_csvs(manual_dir: epath.Path) -> list[epath.Path]:
  found = [
      directory / name
      for directory in (manual_dir, manual_dir / "annotations")
      for name in KINETICS_CSV_NAMES
      if (directory / name).exists()
  ]
  names = {path.name for path in found}
  if "train.csv" not in names or not names & {"validate.csv", "val.csv"}:
    raise BuildInputError(
        f"{manual_dir} lacks the Kinetics-400 train.csv and validate.csv.\n"
        + KINETICS_SOUNDS_INSTRUCTIONS.format(manual_dir=manual_dir)
    )
  return found


def kinetics_sounds_manifest(manual_dir: epath.Path, out_path: epath.Path):
  """(the manifest of the Kinetics-Sounds clips under manual_dir, the download instructions)."""
  conversion = manifest_converters.kinetics_sounds(
      _kinetics_csvs(manual_dir), manual_dir, out_path, kinetics_sounds_classes.CLASS_NAMES
  )
  return conversion, KINETICS_SOUNDS_INSTRUCTIONS


def vggsound_manifest(manual_dir: epath.Path, out_path: epath.Path):
  """(the manifest of the VGGSound clips under manual_dir, the download instructions)."""
  if not (manual_dir / "vggsound.csv").exists():
    raise BuildInputError(
        f"{manual_dir} lacks vggsound.csv.\n" + VGGSOUND_INSTRUCTIONS.format(manual_dir=manual_dir)
    )
  conversion = manifest_converters.vggsound(manual_dir / "vggsound.csv", manual_dir, out_path)
  return conversion, VGGSOUND_INSTRUCTIONS


class ManifestBuild:
  """The clips of a CSV manifest, data_pipelines/manifest_builder.py.

  tag None: the user's manifest (--manifest or manual_dir/manifest.csv), named by the `tag`
  option. Else a converted download (`convert(manual_dir, out_path)` writes the manifest and
  returns it with the download instructions), named `tag`."""

  def __init__(self, tag: str | None = None, convert=None):
    self._tag = tag
    self._convert = convert

  def tag(self, options) -> str:
    return self._tag or options["tag"]

  def dataset_dir(self, data_dir, decode: Decode, options) -> epath.Path:
    return manifest_builder.dataset_dir(data_dir, self.tag(options), decode)

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    if self._convert is None:
      path = epath.Path(
          request.options.get("manifest") or epath.Path(request.manual_dir) / "manifest.csv"
      )
      # Relative clip paths are read relative to the manifest's directory (manifest_format).
      if not path.exists():
        raise BuildInputError(
            f"no manifest at {path}.\n" + MANIFEST_INSTRUCTIONS.format(manifest=path)
        )
      class_names = None  # the sorted labels of the manifest
    else:
      manual_dir = epath.Path(request.manual_dir)
      out_path = request.data_dir / "downloads" / "manual" / self._tag / "manifest.csv"
      conversion, instructions = self._convert(manual_dir, out_path)
      if conversion.missing_clips == sum(conversion.rows.values()):
        raise BuildInputError(
            f"no clip of the {self._tag} annotations is under {manual_dir}.\n"
            + instructions.format(manual_dir=manual_dir)
        )
      print(f"{self._tag}: {conversion}", file=sys.stderr)
      path, class_names = conversion.manifest_path, conversion.class_names
    manifest = manifest_format.read(path)
    return manifest.num_lines, {"manifest": manifest, "class_names": class_names}

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    if not planned:  # already built
      return self.dataset_dir(request.data_dir, request.decode, request.options)
    return manifest_builder.build(
        planned["manifest"],
        request.data_dir,
        tag=self.tag(request.options),
        class_names=planned["class_names"],
        **request.video_kwargs(),
    ).dataset_dir


class VggssBuild:
  """VGG-SS, data_pipelines/vggss_builder.py (or vggss_from_built.py with the option
  `vggsound_dataset_dir`); options: annotated_frame."""

  def dataset_dir(self, data_dir, decode: Decode, options) -> epath.Path:
    return vggss_builder.dataset_dir(data_dir, options["annotated_frame"], decode)

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    annotations, _, classes_from = vggss_builder.read_manual_dir(request.manual_dir)
    if request.options.get("vggsound_dataset_dir"):
      classes_from = f"the built VGGSound {request.options['vggsound_dataset_dir']}"
    print(
        f"vggss: {len(annotations.entries)} entries ({annotations.summary()}); classes from "
        f"{classes_from}",
        file=sys.stderr,
    )
    return len(annotations.entries), {}

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    del planned
    frame = request.options["annotated_frame"]
    if request.options.get("vggsound_dataset_dir"):
      return vggss_from_built.build(
          request.manual_dir,
          request.data_dir,
          request.options["vggsound_dataset_dir"],
          annotated_frame=frame,
          num_segments=request.decode.num_segments,
          frames_per_segment=request.decode.frames_per_segment,
          frame_size=request.decode.frame_size,
          on_row=request.on_row,
      ).dataset_dir
    return vggss_builder.build(
        request.manual_dir, request.data_dir, annotated_frame=frame, **request.video_kwargs()
    ).dataset_dir


class FlickrSoundnetBuild:
  """The Flickr-SoundNet test set, data_pipelines/flickr_soundnet_builder.py."""

  def dataset_dir(self, data_dir, decode: Decode, options) -> epath.Path:
    del options
    return flickr_soundnet_builder.dataset_dir(data_dir, decode)

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    return flickr_soundnet_builder.read_manual_dir(request.manual_dir).counts["ids"], {}

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    del planned
    return flickr_soundnet_builder.build(
        request.manual_dir, request.data_dir, **request.video_kwargs()
    ).dataset_dir
