"""What one dataset is, as one record: `DatasetSpec`, and the values its builder is asked with.

A dataset is a `DatasetSpec` in data_pipelines/catalogue.py plus the `DatasetBuilder` it names
(its `builder`). The build CLI (data_pipelines/build.py), the trainer's loader (stt/datasets.py),
the explained split (stt/explain/explained_split.py), the explain suite and the config checks
(stt/config_validation.py) read these records; none of them branches on a dataset's name.

`Decode` is how a video dataset is decoded (T segments of F frames of S x S pixels): the three
numbers that name a built dataset's directory together with its tag.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Protocol

from etils import epath

# The build CLI's flags that say how a video is decoded, and those of a local decode.
DECODE_FLAGS = ("num_segments", "frames_per_segment", "frame_size")
VIDEO_FLAGS = ("manual_dir", *DECODE_FLAGS, "num_workers", "decode_timeout_s", "beam_runner")
GROUND_TRUTHS = ("union", "consensus")  # the boxes' union, or the annotators' consensus map
INPUTS = ("raw", "features")  # config.dataset.input: decoded videos, or precomputed features


class BuildInputError(ValueError):
  """manual_dir lacks files or holds inconsistent ones. The message says what to do."""


@dataclasses.dataclass(frozen=True)
class Decode:
  """T = num_segments segments of F = frames_per_segment frames of S x S = frame_size pixels."""

  num_segments: int = 10
  frames_per_segment: int = 1
  frame_size: int = 224

  @classmethod
  def of(cls, settings) -> Decode:
    """The Decode of anything with these three attributes (the CLI's args, config.dataset)."""
    return cls(settings.num_segments, settings.frames_per_segment, settings.frame_size)

  def name(self, tag: str) -> str:
    """A builder-config name that identifies the decode settings, e.g. `synthetic_t10_f1_s64`."""
    return f"{tag}_t{self.num_segments}_f{self.frames_per_segment}_s{self.frame_size}"

  def flags(self) -> str:
    """`--num_segments=T --frames_per_segment=F --frame_size=S`, as the build CLI reads them."""
    return " ".join(f"--{flag}={getattr(self, flag)}" for flag in DECODE_FLAGS)


@dataclasses.dataclass(frozen=True)
class BuildRequest:
  """Everything a builder is asked with; `options` are the dataset's own settings (its flags
  other than the video ones, e.g. {'tag': ...}, {'annotated_frame': ...})."""

  data_dir: epath.Path
  decode: Decode
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  manual_dir: str | None = None
  num_workers: int = 1
  decode_timeout_s: float = 300.0
  on_row: Callable[[bool], None] | None = None  # called once per row written (failed: True)
  beam_options: Any = None  # apache_beam PipelineOptions, or None for the local processes

  def video_kwargs(self) -> dict:
    """The keyword arguments of a video builder's `build`."""
    return dict(
        num_segments=self.decode.num_segments,
        frames_per_segment=self.decode.frames_per_segment,
        frame_size=self.decode.frame_size,
        num_workers=self.num_workers,
        decode_timeout_s=self.decode_timeout_s,
        on_row=self.on_row,
        beam_options=self.beam_options,
    )


class DatasetBuilder(Protocol):
  """How one dataset is found and built; the `builder` of a DatasetSpec."""

  def dataset_dir(
      self, data_dir: epath.Path, decode: Decode, options: Mapping[str, Any]
  ) -> epath.Path:
    """Where the built dataset of these settings is (or will be)."""

  def plan(self, request: BuildRequest) -> tuple[int, dict]:
    """(rows the build will write or refuse, what `build` needs); called when not yet built.
    Raises an error naming the download when files lack."""

  def build(self, request: BuildRequest, planned: dict) -> epath.Path:
    """Builds the dataset (kept when already built); returns its directory."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset: its builder, the flags and config keys it reads, and what it annotates.

  name: the build CLI's --dataset (and config.explain.dataset for an annotation set).
  title: the dataset's name in messages, e.g. 'VGG-SS'.
  summary: the build CLI's help line for it.
  builder: its DatasetBuilder.
  flags: the build CLI flags it reads (VIDEO_FLAGS for a video dataset, plus its own); any
    other flag given for it is an error.
  option_flags: those of `flags` passed to the builder as BuildRequest.options.
  config_options: {option: config key} of the same options when a run reads the dataset, e.g.
    {'annotated_frame': 'explain.annotated_frame'}.
  manual_dir_hint: what --manual_dir holds, for the build command a message shows.
  manual_dir_alternatives: {flag: why not both} of flags that may stand in for --manual_dir.
  cli_decode: the decode the CLI builds at when it does not read the decode flags (the set's
    config's), with the config file named by the error of a decode flag.
  trained_as: (config.dataset.name, config.dataset.input) of a run trained on it, or None.
  built_on_first_use: a run builds it when missing (generated here, no download).
  labelled: its labels are class names a run knows; False: one label for all (no classes).
  ground_truth: one of GROUND_TRUTHS for an annotation set a run can be explained on
    (config.explain.dataset), None otherwise.
  annotated_frames: the values of config.explain.annotated_frame it can be built with.
  published_rows: (method, cIoU@0.5 %, AUC % or None, source) of sound-localization methods on
    it, printed beside ours.
  small_boxes: every box covers under a quarter of the frame (the synthetic set's objects are
    26-36 px on 128 px). A median-binarised map keeps half the frame, so its cIoU is at most
    2 x box area / frame area < 0.5 and LVS's `ciou` (the share with cIoU >= 0.5) is 0 by
    construction: the explain suite reports it as not applicable ("—"); ciou_mean is kept.
  defects_line: what a build says about its annotations (one line), or None.
  """

  name: str
  title: str
  summary: str
  builder: DatasetBuilder
  flags: tuple[str, ...] = VIDEO_FLAGS
  option_flags: tuple[str, ...] = ()
  config_options: Mapping[str, str] = dataclasses.field(default_factory=dict)
  manual_dir_hint: str = "downloaded dir"
  manual_dir_alternatives: Mapping[str, str] = dataclasses.field(default_factory=dict)
  cli_decode: tuple[Decode, str] | None = None
  trained_as: tuple[str, str] | None = None
  built_on_first_use: bool = False
  labelled: bool = True
  ground_truth: str | None = None
  annotated_frames: tuple[str, ...] = ()
  published_rows: tuple[tuple[str, float, float | None, str], ...] = ()
  small_boxes: bool = False
  defects_line: Callable[[epath.Path], str] | None = None

  def __post_init__(self):
    if self.ground_truth not in (None, *GROUND_TRUTHS):
      raise ValueError(f"{self.name}: ground_truth={self.ground_truth!r}; one of {GROUND_TRUTHS}")
    if self.trained_as is not None and self.trained_as[1] not in INPUTS:
      raise ValueError(f"{self.name}: trained_as input {self.trained_as[1]!r}; one of {INPUTS}")
    unread = sorted(set(self.option_flags) - set(self.flags))
    if unread:
      raise ValueError(f"{self.name}: option_flags {unread} are not among its flags")

  def reads_decode_flags(self) -> bool:
    return all(flag in self.flags for flag in DECODE_FLAGS)

  def build_command(self, data_dir, decode: Decode, options: Mapping[str, Any]) -> str:
    """The `python -m data_pipelines.build` command that builds it with these settings."""
    parts = [f"python -m data_pipelines.build --dataset={self.name}"]
    if "manual_dir" in self.flags:
      parts.append(f"--manual_dir=<{self.manual_dir_hint}>")
    parts += [f"--{key}={value}" for key, value in options.items() if key in self.option_flags]
    parts.append(f"--data_dir={data_dir}")
    if self.reads_decode_flags():
      parts.append(decode.flags())
    return " ".join(parts)
