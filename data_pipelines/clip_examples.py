"""One clip, from its task to its example: the decode step every video build runs.

`ClipTask` names a clip and its annotation; `ClipDecoder(task)` decodes the file with
media.decode_clip and returns `Decoded`: the example (the features listed in
data_pipelines/video_examples.py), plus a warnings.jsonl record when the decoder had notes; or
a failures.jsonl record with the reason. It never raises for a bad file. The local build runs
it in child processes (decode_pool), the Beam build in its workers (video_beam).

This module does not import TensorFlow Datasets, so decode_pool's children start quickly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import posixpath
import tempfile

from etils import epath
import numpy as np

from data_pipelines import media

MAX_BOXES_PER_SEGMENT = 4


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
    """Its failures.jsonl record."""
    return {**self._identity(), "reason": reason}

  def warning(self, warnings: list[str]) -> dict:
    """Its warnings.jsonl record."""
    return {**self._identity(), "warnings": list(warnings)}

  def _identity(self) -> dict:
    return {
        "split": self.split,
        "key": self.key,
        "video_id": self.video_id,
        "path": self.video_path,
    }


@dataclasses.dataclass(frozen=True)
class Decoded:
  """What ClipDecoder returns: (key, example) and, when the decoder had notes, warning (a
  warnings.jsonl record); or failure (a failures.jsonl record)."""

  key: str
  example: dict | None = None
  failure: dict | None = None
  warning: dict | None = None


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
      clip = _decode_file(
          task.video_path,
          num_segments=self.num_segments,
          frames_per_segment=self.frames_per_segment,
          frame_size=self.frame_size,
      )
    except media.MediaError as error:
      return Decoded(task.key, failure=task.failure(f"MediaError: {error.reason}"))
    except Exception as error:  # A bad file must never abort the build: report and skip it.
      return Decoded(task.key, failure=task.failure(f"{type(error).__name__}: {error}"))
    return Decoded(
        task.key,
        example=self.example(task, clip),
        warning=task.warning(clip.warnings) if clip.warnings else None,
    )

  def example(self, task: ClipTask, clip: media.DecodedClip) -> dict:
    t = self.num_segments
    start, end = task.event if task.event is not None else (0, None)
    if end is None:
      end = int(clip.segment_mask.sum())  # segment_mask is True for a prefix of the segments
    boxes, box_mask = boxes_array(task.boxes, t)
    damaged = clip.damaged_segments if clip.damaged_segments is not None else np.zeros(t)
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
        "damaged_segments": np.asarray(damaged, np.bool_),
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


def segment_labels(
    label: int, start: int, end: int, num_segments: int, background: int
) -> np.ndarray:
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
        boxes[segment, : len(kept)] = kept
        mask[segment, : len(kept)] = True
  return boxes, mask
