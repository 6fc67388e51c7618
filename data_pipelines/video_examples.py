"""Video clips decoded into examples: the part the AVE-videos and manifest builders share.

Each example (one annotated clip) holds, for T segments, F frames per segment at S×S pixels,
C classes and K = MAX_BOXES_PER_SEGMENT::

    video_id        str
    label           ClassLabel (C classes, the builder config's class_names)
    event_start     int32 seconds;  event_end int32 seconds (exclusive)
    segment_labels  [T] int32: label inside [event_start, event_end), background = C elsewhere
    frames          [T,F,S,S,3] uint8
    log_mel         [T,96,64] float32 (VGGish recipe)
    segment_mask    [T] bool, False for segments past the end of the video
    has_audio       bool
    frame_size      [2] int32, (W, H) of the original video
    boxes           [T,K,4] float32 [x0,y0,x1,y1] in original pixels; box_mask [T,K] bool

A builder turns its annotations into `ClipTask`s (one per example); `ClipDecoder` turns one task
into its example or a failure record. Both ways of running a build call exactly that function:

  local  `VideoBuilder._generate_examples` maps it over the tasks in a process pool;
  beam   `video_beam.DecodeClips`: the tasks as a text file | decode in Beam workers, failures as
         a tagged output written next to the dataset (see data_pipelines/video_beam.py).

`prepare` runs the build and writes `failures.jsonl` (one record per clip that was not written:
split, key, video_id, path, reason) next to the built dataset; a bad file never aborts a build.
TFDS cannot write an empty split, so a split without any decodable clip is left out of the
dataset: the local path decodes until the first success before it starts writing a split; the
Beam path leaves out a split none of whose files exists, and a split whose every existing file
fails to decode stops the build with BuildError (the reasons known to the launcher are written
one directory up; the runner's log has the others).
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import json
import logging
import math
import multiprocessing
import posixpath
import tempfile
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_pipelines import log_mel as log_mel_lib
from data_pipelines import media

MAX_BOXES_PER_SEGMENT = 4
VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "avi", "mov", "mpg", "mpeg", "ts")
SPLITS = ("train", "val", "test")
FAILURES_FILE = "failures.jsonl"


class BuildError(RuntimeError):
  """The dataset cannot be written (no usable example at all, or none in a split)."""


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
  """What to decode: T segments, F frames per segment at S×S pixels, for the given classes."""

  class_names: tuple[str, ...] = ()
  num_segments: int = 10
  frames_per_segment: int = 1
  frame_size: int = 224
  num_workers: int = 1  # local decode processes (the Beam runner has its own workers)


def config_name(tag: str, num_segments: int, frames_per_segment: int, frame_size: int) -> str:
  """A builder-config name that identifies the decode settings, e.g. `synthetic_t10_f1_s64`."""
  return f"{tag}_t{num_segments}_f{frames_per_segment}_s{frame_size}"


@dataclasses.dataclass(frozen=True)
class ClipTask:
  """One example to decode. JSON-serialisable, so Beam can read the tasks from a text file.

  event: (start, end) whole seconds, end exclusive; end None = to the end of the clip (its last
    valid segment); event None = the whole clip.
  boxes: ((segment, ((x0, y0, x1, y1), ...)), ...) in original pixels; empty when unknown.
  """

  split: str
  key: str  # unique within the split
  video_id: str
  video_path: str
  label: int
  event: tuple[int, int | None] | None = None
  boxes: tuple = ()

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, line: str) -> "ClipTask":
    fields = json.loads(line)
    event = fields.pop("event")
    event = tuple(event) if event is not None else None
    boxes = tuple((segment, tuple(map(tuple, boxes))) for segment, boxes in fields.pop("boxes"))
    return cls(event=event, boxes=boxes, **fields)

  def failure(self, reason: str) -> dict:
    return {"split": self.split, "key": self.key, "video_id": self.video_id,
            "path": self.video_path, "reason": reason}


@dataclasses.dataclass(frozen=True)
class Decoded:
  """What ClipDecoder returns: (key, example), or failure (a failures.jsonl record)."""

  key: str
  example: dict | None = None
  failure: dict | None = None


@dataclasses.dataclass(frozen=True)
class ClipDecoder:
  """Picklable: a ClipTask → Decoded. Never raises for a bad file; it returns the reason."""

  num_segments: int
  frames_per_segment: int
  frame_size: int
  num_classes: int

  def __call__(self, task: ClipTask) -> Decoded:
    if not epath.Path(task.video_path).exists():
      return Decoded(task.key, failure=task.failure("file not found"))
    try:
      clip = _decode_file(task.video_path, num_segments=self.num_segments,
                          frames_per_segment=self.frames_per_segment, frame_size=self.frame_size)
    except media.MediaError as error:
      return Decoded(task.key, failure=task.failure(f"MediaError: {error.reason}"))
    except Exception as error:  # A bad file must never abort the build: report and skip it.
      return Decoded(task.key, failure=task.failure(f"{type(error).__name__}: {error}"))
    return Decoded(task.key, example=self.example(task, clip))

  def example(self, task: ClipTask, clip: media.DecodedClip) -> dict:
    t = self.num_segments
    start, end = task.event if task.event is not None else (0, None)
    if end is None:
      end = int(clip.segment_mask.sum())  # segment_mask is True for a prefix of the segments
    boxes, box_mask = boxes_array(task.boxes, t)
    return {
        "video_id": task.video_id,
        "label": task.label,
        "event_start": start,
        "event_end": end,
        "segment_labels": segment_labels(task.label, start, end, t, background=self.num_classes),
        "frames": clip.frames,
        "log_mel": clip.log_mel.astype(np.float32),
        "segment_mask": clip.segment_mask.astype(np.bool_),
        "has_audio": bool(clip.has_audio),
        "frame_size": np.asarray(clip.frame_size, np.int32),
        "boxes": boxes,
        "box_mask": box_mask,
    }


def _decode_file(path: str, **settings) -> media.DecodedClip:
  """media.decode_clip on a local path; a remote one (gs://...) is copied to a temp file first."""
  if "://" not in path:
    return media.decode_clip(path, **settings)
  with tempfile.NamedTemporaryFile(suffix=posixpath.splitext(path)[1]) as local:
    local.write(epath.Path(path).read_bytes())
    local.flush()
    return media.decode_clip(local.name, **settings)


def event_seconds(start: float, end: float, num_segments: int) -> tuple[int, int]:
  """Event [start, end) in seconds → the whole segments it touches, (floor(start), ceil(end)),
  the end clipped to T."""
  return math.floor(start), min(math.ceil(end), num_segments)


def segment_labels(label: int, start: int, end: int, num_segments: int,
                   background: int) -> np.ndarray:
  """[T] int32: `label` for start <= t < end, `background` elsewhere."""
  t = np.arange(num_segments)
  return np.where((start <= t) & (t < end), label, background).astype(np.int32)


def boxes_array(segment_boxes, num_segments: int) -> tuple[np.ndarray, np.ndarray]:
  """((segment, boxes), ...) → boxes [T,K,4] float32 and box_mask [T,K] bool."""
  boxes = np.zeros((num_segments, MAX_BOXES_PER_SEGMENT, 4), np.float32)
  mask = np.zeros((num_segments, MAX_BOXES_PER_SEGMENT), np.bool_)
  for segment, segment_boxes_xyxy in segment_boxes:
    if 0 <= segment < num_segments:
      kept = segment_boxes_xyxy[:MAX_BOXES_PER_SEGMENT]
      if kept:
        boxes[segment, :len(kept)] = kept
        mask[segment, :len(kept)] = True
  return boxes, mask


class VideoBuilder(tfds.core.GeneratorBasedBuilder):
  """Decodes ClipTasks into the features above; subclasses say what the tasks are."""

  def __init__(self, *, on_row: Callable[[bool], None] | None = None, use_beam: bool = False,
               **kwargs):
    """on_row(failed): called once per task, after it is written or skipped (local path only).
    use_beam: build with the Beam pipeline of the DownloadConfig's beam_options."""
    super().__init__(**kwargs)
    # Failure records known to this process: rows refused while reading the annotations, and,
    # on the local path, clips that could not be decoded. Beam workers write theirs to files.
    self.failures: list[dict] = []
    self._on_row = on_row or (lambda failed: None)
    self._use_beam = use_beam

  @abc.abstractmethod
  def _tasks(self, dl_manager: tfds.download.DownloadManager) -> dict[str, list[ClipTask]]:
    """{split: tasks} for the splits in SPLITS; may append refused rows to self.failures."""

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    t, f, s, k = cfg.num_segments, cfg.frames_per_segment, cfg.frame_size, MAX_BOXES_PER_SEGMENT
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video_id": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
            "event_start": tfds.features.Scalar(dtype=np.int32),
            "event_end": tfds.features.Scalar(dtype=np.int32),
            "segment_labels": tfds.features.Tensor(shape=(t,), dtype=np.int32),
            "frames": tfds.features.Tensor(shape=(t, f, s, s, 3), dtype=np.uint8),
            "log_mel": tfds.features.Tensor(
                shape=(t, log_mel_lib.FRAMES_PER_SEGMENT, log_mel_lib.NUM_MEL_BINS),
                dtype=np.float32),
            "segment_mask": tfds.features.Tensor(shape=(t,), dtype=np.bool_),
            "has_audio": tfds.features.Scalar(dtype=np.bool_),
            "frame_size": tfds.features.Tensor(shape=(2,), dtype=np.int32),
            "boxes": tfds.features.Tensor(shape=(t, k, 4), dtype=np.float32),
            "box_mask": tfds.features.Tensor(shape=(t, k), dtype=np.bool_),
        }),
        supervised_keys=None,
    )

  def decoder(self) -> ClipDecoder:
    cfg = self.builder_config
    return ClipDecoder(cfg.num_segments, cfg.frames_per_segment, cfg.frame_size,
                       num_classes=len(cfg.class_names))

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    tasks = {split: split_tasks for split, split_tasks in self._tasks(dl_manager).items()
             if split_tasks}
    if self._use_beam:
      from data_pipelines import video_beam  # pylint: disable=g-import-not-at-top
      generators = {}
      for split, split_tasks in tasks.items():
        if not any(epath.Path(task.video_path).exists() for task in split_tasks):
          for task in split_tasks:  # what the workers would say, and TFDS needs examples
            self._record(Decoded(task.key, failure=task.failure("file not found")))
          continue
        # self.data_dir is the dataset's temporary directory while it is being built.
        generators[split] = video_beam.DecodeClips(split, split_tasks, self.decoder(),
                                                   epath.Path(self.data_dir))
    else:
      generators = {}
      for split, split_tasks in tasks.items():
        first, rest = self._first_decodable(split_tasks)
        if first is not None:
          generators[split] = self._generate_examples(first, rest)
    if not generators:
      raise BuildError(f"no usable example: all {len(self.failures)} rows failed (the first: "
                       f"{self.failures[0]['reason'] if self.failures else 'none'})")
    return generators

  def _record(self, result: Decoded):
    """Reports a result to on_row; keeps a failure's record."""
    if result.failure is not None:
      self.failures.append(result.failure)
      logging.warning("skipping %s: %s", result.failure["path"], result.failure["reason"])
    self._on_row(result.failure is not None)

  def _first_decodable(self, tasks: list[ClipTask]) -> tuple[Decoded | None, list[ClipTask]]:
    """Decodes in this process up to the first clip that works: (its result, the tasks after
    it), or (None, []) when none does."""
    decode = self.decoder()
    for index, task in enumerate(tasks):
      result = decode(task)
      if result.failure is None:
        return result, tasks[index + 1:]
      self._record(result)
    return None, []

  def _generate_examples(self, first: Decoded, tasks: list[ClipTask]):
    """Local path: yields `first`, then decodes `tasks` in `num_workers` processes, in order."""
    for result in itertools.chain([first], self._decode_all(tasks)):
      self._record(result)
      if result.failure is None:
        yield result.key, result.example

  def _decode_all(self, tasks: list[ClipTask]):
    decode = self.decoder()
    num_workers = self.builder_config.num_workers
    if num_workers <= 1 or len(tasks) <= 1:
      yield from map(decode, tasks)
      return
    with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
      yield from pool.imap(decode, tasks, chunksize=4)


@dataclasses.dataclass(frozen=True)
class BuildSummary:
  dataset_dir: epath.Path
  built: dict  # {split: num_examples} in the dataset
  failed: int
  reused: bool = False  # True: it was already built, nothing was written this time

  def __str__(self):
    counts = ", ".join(f"{split}={n}" for split, n in self.built.items())
    return f"built {counts}; failed {self.failed} (see {self.dataset_dir / FAILURES_FILE})"


def prepare(builder: VideoBuilder, *, manual_dir=None, beam_options=None) -> BuildSummary:
  """Builds `builder`'s dataset unless it exists, then writes failures.jsonl; returns the summary.

  beam_options: apache_beam PipelineOptions, when the builder was made with use_beam=True.
  """
  dataset_dir = epath.Path(builder.data_dir)
  failures_path = dataset_dir / FAILURES_FILE
  reused = (dataset_dir / "dataset_info.json").exists()
  if not reused:
    try:
      builder.download_and_prepare(
          file_format="array_record",
          download_config=tfds.download.DownloadConfig(
              manual_dir=str(manual_dir) if manual_dir is not None else None,
              beam_options=beam_options))
    except Exception as error:  # TFDS's local and Beam writers refuse an empty split
      if not any(text in str(error) for text in ("No examples were yielded",
                                                 "number of generated examples is 0")):
        raise
      # TFDS removed the half-built directory; keep the reasons one level up.
      failures_path = dataset_dir.parent / FAILURES_FILE
      _write_failures(failures_path, builder.failures)
      split = next((s for s in SPLITS if f"split {s}" in str(error)
                    or f'split "{s}"' in str(error)), "?")
      raise BuildError(f"every clip of split {split!r} failed to decode, and TFDS cannot write an "
                       f"empty split; the reasons known to this process are in {failures_path}, "
                       "the others in the Beam workers' log") from None
    _write_failures(failures_path, builder.failures + _collect_beam_files(dataset_dir))
  return summary_of_built(dataset_dir, reused)


def _write_failures(path: epath.Path, failures: list[dict]):
  """failures.jsonl, ordered by split (train, val, test) then example key."""
  order = {split: i for i, split in enumerate(SPLITS)}
  failures = sorted(failures, key=lambda f: (order.get(f["split"], len(order)), f["key"]))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(f) + "\n" for f in failures))


def summary_of_built(dataset_dir, reused: bool) -> BuildSummary:
  """The summary of a built dataset directory: split sizes and the lines of failures.jsonl."""
  dataset_dir = epath.Path(dataset_dir)
  info = tfds.builder_from_directory(str(dataset_dir)).info
  failures_path = dataset_dir / FAILURES_FILE
  failed = len(failures_path.read_text().splitlines()) if failures_path.exists() else 0
  built = {split: info.splits[split].num_examples if split in info.splits else 0
           for split in SPLITS}
  return BuildSummary(dataset_dir, built, failed, reused)


def _collect_beam_files(dataset_dir: epath.Path) -> list[dict]:
  """Reads and removes what a Beam build left next to the dataset: the failure shards written by
  its workers and the task lists it read (see video_beam)."""
  failures = []
  for path in sorted(dataset_dir.glob("failures-*")):
    failures += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.unlink()
  for path in dataset_dir.glob("tasks-*"):
    path.unlink()
  return failures
