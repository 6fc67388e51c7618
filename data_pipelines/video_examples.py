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
    damaged_segments [T] bool, True for segments the decoder saw corrupt data in (media.py)

A builder turns its annotations into `ClipTask`s (one per example); `ClipDecoder`
(data_pipelines/clip_examples.py) turns one task into its example or a failure record. Both ways
of running a build call exactly that function:

  local  `VideoBuilder._generate_examples` maps it over the tasks in `num_workers` child
         processes (decode_pool.IsolatedPool; at least one, never in the launcher): a clip whose
         decoder crashes the process, or runs past `decode_timeout_s`, becomes a failure
         ("decoder crashed (killed by SIGSEGV)", "timed out after 300 s") and the build goes on;
  beam   `video_beam.DecodeClips`: the tasks as a text file | decode in Beam workers, failures and
         warnings as tagged outputs written next to the dataset (see data_pipelines/video_beam.py;
         there a crash or hang is the runner's business: it retries the bundle).

`prepare` runs the build and writes, next to the built dataset, `failures.jsonl` (one record per
clip that was not written: split, key, video_id, path, reason) and `warnings.jsonl` (one record
per written clip the decoder had notes about, e.g. skipped corrupt packets: split, key, video_id,
path, warnings: [str]); a bad file never aborts a build.
TFDS cannot write an empty split, so a split without any decodable clip is left out of the
dataset: the local path decodes until the first success before it starts writing a split; the
Beam path leaves out a split none of whose files exists, and a split whose every existing file
fails to decode stops the build with BuildError (the reasons known to the launcher are written
one directory up; the runner's log has the others).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import itertools
import json
import logging
from typing import Callable

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import clip_examples
from data_pipelines import dataset_spec
from data_pipelines import decode_pool
from data_pipelines import log_mel as log_mel_lib

MAX_BOXES_PER_SEGMENT = clip_examples.MAX_BOXES_PER_SEGMENT
VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "avi", "mov", "mpg", "mpeg", "ts")
SPLITS = ("train", "val", "test")
FAILURES_FILE = "failures.jsonl"
WARNINGS_FILE = "warnings.jsonl"


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
  decode_timeout_s: float = 300.0  # local: a clip still decoding after this long is a failure


class VideoBuilder(tfds.core.GeneratorBasedBuilder):
  """Decodes ClipTasks into the features above; subclasses say what the tasks are."""

  # K of the boxes [T,K,4] / box_mask [T,K] features; a subclass whose annotations hold more
  # boxes per segment sets its own.
  MAX_BOXES = MAX_BOXES_PER_SEGMENT

  def __init__(
      self, *, on_row: Callable[[bool], None] | None = None, use_beam: bool = False, **kwargs
  ):
    """on_row(failed): called once per task, after it is written or skipped (local path only).
    use_beam: build with the Beam pipeline of the DownloadConfig's beam_options."""
    super().__init__(**kwargs)
    # Failure records known to this process: rows refused while reading the annotations, and,
    # on the local path, clips that could not be decoded; warning records of the local path.
    # Beam workers write theirs to files.
    self.failures: list[dict] = []
    self.warnings: list[dict] = []
    self._on_row = on_row or (lambda failed: None)
    self._use_beam = use_beam
    self._decode_processes: decode_pool.IsolatedPool | None = None  # local path, while building
    self._splits_to_write = 0

  @abc.abstractmethod
  def _tasks(
      self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, list[clip_examples.ClipTask]]:
    """{split: tasks} for the splits in SPLITS; may append refused rows to self.failures."""

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    t, f, s, k = cfg.num_segments, cfg.frames_per_segment, cfg.frame_size, self.MAX_BOXES
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                "video_id": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
                "event_start": tfds.features.Scalar(dtype=np.int32),
                "event_end": tfds.features.Scalar(dtype=np.int32),
                "segment_labels": tfds.features.Tensor(shape=(t,), dtype=np.int32),
                # Raw bytes: by default tf.train.Example stores uint8 as an int64 list, whose parsing
                # was 70 % of reading an example (benchmarks/RESULTS.md, input pipeline): 8x faster.
                "frames": tfds.features.Tensor(
                    shape=(t, f, s, s, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
                ),
                "log_mel": tfds.features.Tensor(
                    shape=(t, log_mel_lib.FRAMES_PER_SEGMENT, log_mel_lib.NUM_MEL_BINS),
                    dtype=np.float32,
                    encoding=tfds.features.Encoding.BYTES,
                ),
                "segment_mask": tfds.features.Tensor(shape=(t,), dtype=np.bool_),
                "has_audio": tfds.features.Scalar(dtype=np.bool_),
                "frame_size": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                "boxes": tfds.features.Tensor(shape=(t, k, 4), dtype=np.float32),
                "box_mask": tfds.features.Tensor(shape=(t, k), dtype=np.bool_),
                "damaged_segments": tfds.features.Tensor(shape=(t,), dtype=np.bool_),
            }
        ),
        supervised_keys=None,
    )

  def decoder(self) -> clip_examples.ClipDecoder:
    cfg = self.builder_config
    return clip_examples.ClipDecoder(
        cfg.num_segments, cfg.frames_per_segment, cfg.frame_size, num_classes=len(cfg.class_names)
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    tasks = {
        split: split_tasks for split, split_tasks in self._tasks(dl_manager).items() if split_tasks
    }
    if self._use_beam:
      from data_pipelines import video_beam  # pylint: disable=g-import-not-at-top

      generators = {}
      for split, split_tasks in tasks.items():
        if not any(epath.Path(task.video_path).exists() for task in split_tasks):
          for task in split_tasks:  # what the workers would say, and TFDS needs examples
            self._record(clip_examples.Decoded(task.key, failure=task.failure("file not found")))
          continue
        # self.data_dir is the dataset's temporary directory while it is being built.
        generators[split] = video_beam.DecodeClips(
            split, split_tasks, self.decoder(), epath.Path(self.data_dir)
        )
    else:
      cfg = self.builder_config
      self._decode_processes = decode_pool.IsolatedPool(
          self.decoder(),
          num_workers=cfg.num_workers,
          timeout_s=cfg.decode_timeout_s,
          lost=lambda task, reason: clip_examples.Decoded(task.key, failure=task.failure(reason)),
      )
      generators = {}
      for split, split_tasks in tasks.items():
        first, rest = self._first_decodable(split_tasks)
        if first is not None:
          generators[split] = self._generate_examples(first, rest)
      self._splits_to_write = len(generators)
    if not generators:
      self.close_decode_processes()
      raise BuildError(
          f"no usable example: all {len(self.failures)} rows failed (the first: "
          f"{self.failures[0]['reason'] if self.failures else 'none'})"
      )
    return generators

  def _record(self, result: clip_examples.Decoded):
    """Reports a result to on_row; keeps its failure or warning record."""
    if result.failure is not None:
      self.failures.append(result.failure)
      logging.warning("skipping %s: %s", result.failure["path"], result.failure["reason"])
    if result.warning is not None:
      self.warnings.append(result.warning)
    self._on_row(result.failure is not None)

  def _first_decodable(
      self, tasks: list[clip_examples.ClipTask]
  ) -> tuple[clip_examples.Decoded | None, list[clip_examples.ClipTask]]:
    """Decodes one clip at a time up to the first that works: (its result, the tasks after
    it), or (None, []) when none does."""
    results = self._decode_processes.map(tasks, max_ahead=1)
    with contextlib.closing(results):
      for index, result in enumerate(results):
        if result.failure is None:
          return result, tasks[index + 1 :]
        self._record(result)
    return None, []

  def _generate_examples(self, first: clip_examples.Decoded, tasks: list[clip_examples.ClipTask]):
    """Local path: yields `first`, then decodes `tasks` in `num_workers` processes, in order."""
    try:
      for result in itertools.chain([first], self._decode_processes.map(tasks)):
        self._record(result)
        if result.failure is None:
          yield result.key, result.example
    finally:
      self._splits_to_write -= 1
      if self._splits_to_write == 0:
        self.close_decode_processes()

  def close_decode_processes(self):
    """Ends the local path's decode processes (after the last split; prepare makes sure)."""
    if self._decode_processes is not None:
      self._decode_processes.close()


@dataclasses.dataclass(frozen=True)
class BuildSummary:
  dataset_dir: epath.Path
  built: dict  # {split: num_examples} in the dataset
  failed: int  # records in failures.jsonl
  reused: bool = False  # True: it was already built, nothing was written this time
  warned: int = 0  # records in warnings.jsonl: clips built despite decoder notes

  def __str__(self):
    counts = ", ".join(f"{split}={n}" for split, n in self.built.items())
    return (
        f"built {counts}; failed {self.failed} (see {self.dataset_dir / FAILURES_FILE}); "
        f"warned {self.warned} (see {self.dataset_dir / WARNINGS_FILE})"
    )


def prepare(builder: VideoBuilder, *, manual_dir=None, beam_options=None) -> BuildSummary:
  """Builds `builder`'s dataset unless it exists, then writes failures.jsonl and warnings.jsonl;
  returns the summary.

  beam_options: apache_beam PipelineOptions, when the builder was made with use_beam=True.
  """
  dataset_dir = epath.Path(builder.data_dir)
  reused = (dataset_dir / "dataset_info.json").exists()
  if not reused:
    try:
      builder.download_and_prepare(
          file_format="array_record",
          download_config=tfds.download.DownloadConfig(
              manual_dir=str(manual_dir) if manual_dir is not None else None,
              beam_options=beam_options,
          ),
      )
    except FileExistsError:
      # Another process (a parallel run, `stt.reproduce --jobs`) finished the same build first:
      # TFDS cannot move our copy over its complete one. Use that one; it wrote the records.
      if not (dataset_dir / "dataset_info.json").exists():
        raise
      builder.close_decode_processes()
      return summary_of_built(dataset_dir, reused=True)
    except Exception as error:  # TFDS's local and Beam writers refuse an empty split
      if not any(
          text in str(error)
          for text in ("No examples were yielded", "number of generated examples is 0")
      ):
        raise
      # TFDS removed the half-built directory; keep the reasons one level up.
      failures_path = dataset_dir.parent / FAILURES_FILE
      _write_records(failures_path, builder.failures)
      _write_records(dataset_dir.parent / WARNINGS_FILE, builder.warnings)
      split = next(
          (s for s in SPLITS if f"split {s}" in str(error) or f'split "{s}"' in str(error)), "?"
      )
      raise BuildError(
          f"every clip of split {split!r} failed to decode, and TFDS cannot write an "
          f"empty split; the reasons known to this process are in {failures_path}, "
          "the others in the Beam workers' log"
      ) from None
    finally:
      builder.close_decode_processes()  # also when TFDS stopped before the last split
    _write_records(
        dataset_dir / FAILURES_FILE, builder.failures + _collect_beam_files(dataset_dir, "failures")
    )
    _write_records(
        dataset_dir / WARNINGS_FILE, builder.warnings + _collect_beam_files(dataset_dir, "warnings")
    )
    for path in dataset_dir.glob("tasks-*"):  # the task lists a Beam build read
      path.unlink()
  return summary_of_built(dataset_dir, reused)


def reused(built_dir: epath.Path) -> BuildSummary | None:
  """The summary of the dataset already built at `built_dir` (kept), or None."""
  if (epath.Path(built_dir) / "dataset_info.json").exists():
    return summary_of_built(built_dir, reused=True)
  return None


def build_video_dataset(
    builder_class: type[VideoBuilder],
    data_dir,
    built_dir: epath.Path,
    decode: dataset_spec.Decode,
    class_names,
    *,
    num_workers: int = 1,
    decode_timeout_s: float = 300.0,
    on_row: Callable[[bool], None] | None = None,
    beam_options=None,
    manual_dir=None,
    **builder_kwargs,
) -> BuildSummary:
  """The one body of every video builder's `build`: a VideoConfig named after `built_dir` (the
  builder's `<tag>_t<T>_f<F>_s<S>`), the builder with its own `builder_kwargs`, `prepare`."""
  config = VideoConfig(
      name=epath.Path(built_dir).parent.name,
      class_names=tuple(class_names),
      num_segments=decode.num_segments,
      frames_per_segment=decode.frames_per_segment,
      frame_size=decode.frame_size,
      num_workers=num_workers,
      decode_timeout_s=decode_timeout_s,
  )
  builder = builder_class(
      config=config,
      data_dir=str(data_dir),
      on_row=on_row,
      use_beam=beam_options is not None,
      **builder_kwargs,
  )
  return prepare(builder, manual_dir=manual_dir, beam_options=beam_options)


def _write_records(path: epath.Path, records: list[dict]):
  """failures.jsonl or warnings.jsonl, ordered by split (train, val, test) then example key."""
  order = {split: i for i, split in enumerate(SPLITS)}
  records = sorted(records, key=lambda r: (order.get(r["split"], len(order)), r["key"]))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _count_lines(path: epath.Path) -> int:
  return len(path.read_text().splitlines()) if path.exists() else 0


def summary_of_built(dataset_dir, reused: bool) -> BuildSummary:
  """The summary of a built dataset directory: split sizes and the lines of failures.jsonl and
  warnings.jsonl."""
  dataset_dir = epath.Path(dataset_dir)
  info = tfds.builder_from_directory(str(dataset_dir)).info
  built = {
      split: info.splits[split].num_examples if split in info.splits else 0 for split in SPLITS
  }
  return BuildSummary(
      dataset_dir,
      built,
      _count_lines(dataset_dir / FAILURES_FILE),
      reused,
      warned=_count_lines(dataset_dir / WARNINGS_FILE),
  )


def _collect_beam_files(dataset_dir: epath.Path, kind: str) -> list[dict]:
  """Reads and removes the `<kind>-*` shards ("failures" or "warnings") that the workers of a
  Beam build wrote next to the dataset (see video_beam)."""
  records = []
  for path in sorted(dataset_dir.glob(f"{kind}-*")):
    records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.unlink()
  return records
