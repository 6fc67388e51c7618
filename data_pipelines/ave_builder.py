"""TFDS builder for AVE-format directories (real AVE and the synthetic set), written as array_record.

Each example (one annotation row) holds::

    video_id        str
    label           ClassLabel (C classes, order of first appearance in Annotations.txt)
    event_start     int32 seconds;  event_end int32 seconds (exclusive)
    segment_labels  [T] int32, background = C
    frames          [T,F,S,S,3] uint8
    log_mel         [T,96,64] float32 (VGGish recipe)
    segment_mask    [T] bool, False for segments past the end of the video
    has_audio       bool
    frame_size      [2] int32, (W, H) of the original video
    boxes           [T,K,4] float32 [x0,y0,x1,y1] in original pixels; box_mask [T,K] bool

Files that cannot be decoded are skipped and listed, with their reason, in `failures.jsonl` next
to the built dataset; a bad file never aborts a build.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import pathlib
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import ave_format
from data_pipelines import log_mel as log_mel_lib
from data_pipelines import media

MAX_BOXES_PER_SEGMENT = 4


@dataclasses.dataclass(eq=False)
class AveVideosConfig(tfds.core.BuilderConfig):
  """What to decode: T segments, F frames per segment at S×S pixels, for the given classes."""

  class_names: tuple[str, ...] = ()
  num_segments: int = 10
  frames_per_segment: int = 1
  frame_size: int = 224
  num_workers: int = 1


def config_name(tag: str, num_segments: int, frames_per_segment: int, frame_size: int) -> str:
  """A builder-config name that identifies the decode settings, e.g. `synthetic_t10_f1_s64`."""
  return f"{tag}_t{num_segments}_f{frames_per_segment}_s{frame_size}"


@dataclasses.dataclass(frozen=True)
class _DecodeTask:
  row_index: int
  row: ave_format.EventRow
  video_path: str
  boxes: dict  # {segment: SegmentBoxes}


class AveVideos(tfds.core.GeneratorBasedBuilder):
  """An AVE-format directory of MP4s decoded into frames and log-mel segments."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Pass the AVE-format directory as manual_dir. It holds AVE/<video_id>.mp4, Annotations.txt and
  trainSet.txt / valSet.txt / testSet.txt (and optionally boxes.jsonl). For the real AVE dataset,
  download AVE_Dataset.zip from https://github.com/YapengTian/AVE-ECCV18 and unzip it.
  """

  def __init__(self, *, on_row: Callable[[bool], None] | None = None, **kwargs):
    """on_row(failed): called once per row, after it is written or skipped as unreadable."""
    super().__init__(**kwargs)
    self.failures: list[dict] = []
    self._on_row = on_row or (lambda failed: None)

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

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    directory = pathlib.Path(dl_manager.manual_dir)
    boxes = ave_format.read_boxes(directory)
    return {
        split: self._generate_examples(directory, ave_format.read_split(directory, split), boxes)
        for split in ave_format.SPLIT_FILES
    }

  def _generate_examples(self, directory, rows, boxes):
    tasks = [
        _DecodeTask(i, row, str(directory / "AVE" / f"{row.video_id}.mp4"),
                    boxes.get(row.video_id, {}))
        for i, row in enumerate(rows)
    ]
    for task, result in self._decode_all(tasks):
      if isinstance(result, str):
        self.failures.append({"video_id": task.row.video_id, "path": task.video_path,
                              "reason": result})
        logging.warning("skipping %s: %s", task.video_path, result)
        self._on_row(True)
        continue
      yield f"{task.row_index:06d}_{task.row.video_id}", self._example(task, result)
      self._on_row(False)

  def _decode_all(self, tasks):
    """Yields (task, DecodedClip | failure reason) in task order, decoding in worker processes."""
    cfg = self.builder_config
    decode = _Decoder(cfg.num_segments, cfg.frames_per_segment, cfg.frame_size)
    if cfg.num_workers <= 1:
      yield from zip(tasks, map(decode, tasks))
      return
    with multiprocessing.get_context("spawn").Pool(cfg.num_workers) as pool:
      yield from zip(tasks, pool.imap(decode, tasks, chunksize=4))

  def _example(self, task: _DecodeTask, clip: media.DecodedClip) -> dict:
    cfg = self.builder_config
    class_names = list(cfg.class_names)
    if task.row.category not in class_names:
      raise ave_format.AnnotationError(
          f"class {task.row.category!r} of {task.row.video_id} is not in Annotations.txt")
    label = class_names.index(task.row.category)
    boxes, box_mask = _boxes_array(task.boxes, cfg.num_segments)
    return {
        "video_id": task.row.video_id,
        "label": label,
        "event_start": task.row.start,
        "event_end": task.row.end,
        "segment_labels": np.asarray(ave_format.segment_labels(
            task.row, label, cfg.num_segments, background=len(class_names)), np.int32),
        "frames": clip.frames,
        "log_mel": clip.log_mel.astype(np.float32),
        "segment_mask": clip.segment_mask.astype(np.bool_),
        "has_audio": bool(clip.has_audio),
        "frame_size": np.asarray(clip.frame_size, np.int32),
        "boxes": boxes,
        "box_mask": box_mask,
    }


@dataclasses.dataclass(frozen=True)
class _Decoder:
  """Picklable decode function: a `_DecodeTask` to a DecodedClip, or a failure reason string."""

  num_segments: int
  frames_per_segment: int
  frame_size: int

  def __call__(self, task: _DecodeTask):
    if not pathlib.Path(task.video_path).exists():
      return "file not found"
    try:
      return media.decode_clip(task.video_path, num_segments=self.num_segments,
                               frames_per_segment=self.frames_per_segment,
                               frame_size=self.frame_size)
    except Exception as error:  # A bad file must never abort the build: report and skip it.
      return f"{type(error).__name__}: {error}"


def _boxes_array(segment_boxes: dict, num_segments: int) -> tuple[np.ndarray, np.ndarray]:
  """{segment: SegmentBoxes} → boxes [T,K,4] float32 and box_mask [T,K] bool."""
  boxes = np.zeros((num_segments, MAX_BOXES_PER_SEGMENT, 4), np.float32)
  mask = np.zeros((num_segments, MAX_BOXES_PER_SEGMENT), np.bool_)
  for segment, record in segment_boxes.items():
    if 0 <= segment < num_segments:
      kept = record.boxes[:MAX_BOXES_PER_SEGMENT]
      boxes[segment, :len(kept)] = kept
      mask[segment, :len(kept)] = True
  return boxes, mask


@dataclasses.dataclass(frozen=True)
class BuildSummary:
  dataset_dir: pathlib.Path
  built: dict  # {split: num_examples} in the dataset
  failed: int
  reused: bool = False  # True: it was already built, nothing was written this time

  def __str__(self):
    counts = ", ".join(f"{split}={n}" for split, n in self.built.items())
    return f"built {counts}; failed {self.failed} (see {self.dataset_dir / 'failures.jsonl'})"


def build(manual_dir, data_dir, *, tag: str, num_segments: int = 10, frames_per_segment: int = 1,
          frame_size: int = 224, num_workers: int = 1,
          on_row: Callable[[bool], None] | None = None) -> BuildSummary:
  """Decodes the AVE-format directory `manual_dir` into an array_record dataset under `data_dir`.

  on_row(failed) is called once per annotation row as it is written or skipped as unreadable.
  """
  manual_dir = pathlib.Path(manual_dir)
  config = AveVideosConfig(
      name=config_name(tag, num_segments, frames_per_segment, frame_size),
      class_names=tuple(ave_format.read_class_names(manual_dir)),
      num_segments=num_segments, frames_per_segment=frames_per_segment, frame_size=frame_size,
      num_workers=num_workers)
  builder = AveVideos(config=config, data_dir=str(data_dir), on_row=on_row)
  dataset_dir = pathlib.Path(builder.data_dir)
  failures_path = dataset_dir / "failures.jsonl"
  reused = (dataset_dir / "dataset_info.json").exists()
  if not reused:  # Otherwise already built: keep it.
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    failures_path.write_text("".join(json.dumps(f) + "\n" for f in builder.failures))
  built = {split: info.num_examples for split, info in builder.info.splits.items()}
  failed = len(failures_path.read_text().splitlines()) if failures_path.exists() else 0
  return BuildSummary(dataset_dir, built, failed, reused)
