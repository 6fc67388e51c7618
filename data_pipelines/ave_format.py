"""Reading the AVE-format directory layout: annotations, split files and boxes.

An AVE-format directory holds::

    AVE/<video_id>.mp4
    Annotations.txt              Category&VideoID&Quality&StartTime&EndTime (header optional)
    trainSet.txt valSet.txt testSet.txt   same line format, no header
    boxes.jsonl                  optional: {"video_id", "segment", "frame_size": [W,H], "boxes": [[x0,y0,x1,y1]]}

The release zip's Annotations.txt has a header line and the GitHub copy has none; both are
accepted. One video may appear in several rows, so rows (not video ids) are the unit.
Files are read through etils.epath, so the directory may be local or on gs:// (Dataflow).
"""

from __future__ import annotations

import collections
import dataclasses
import json

from etils import epath

SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
HEADER_PREFIX = "Category&VideoID"


class AnnotationError(ValueError):
  """An annotation or split file is malformed."""


@dataclasses.dataclass(frozen=True)
class EventRow:
  """One annotated event: the video shows `category` from `start` to `end` (seconds, end exclusive)."""

  category: str
  video_id: str
  quality: str
  start: int
  end: int


def parse_annotation_lines(path: epath.PathLike) -> list[EventRow]:
  """Parses `Category&VideoID&Quality&StartTime&EndTime` lines; skips a header and blank lines."""
  rows = []
  for line_number, line in enumerate(epath.Path(path).read_text().splitlines(), start=1):
    line = line.strip()
    if not line or line.startswith(HEADER_PREFIX):
      continue
    fields = line.split("&")
    if len(fields) != 5:
      raise AnnotationError(
          f"{path}:{line_number}: expected 5 '&'-separated fields "
          f"(Category&VideoID&Quality&StartTime&EndTime), got {len(fields)}: {line!r}"
      )
    category, video_id, quality, start, end = fields
    try:
      start_s, end_s = int(start), int(end)
    except ValueError:
      raise AnnotationError(
          f"{path}:{line_number}: start/end must be integer seconds, got {start!r}, {end!r}"
      ) from None
    # start == end (an empty event) occurs in the real release (VWi2ENBuTbw, 0&0) and is kept.
    if not 0 <= start_s <= end_s:
      raise AnnotationError(f"{path}:{line_number}: need 0 <= start <= end, got {start_s}, {end_s}")
    rows.append(EventRow(category, video_id, quality, start_s, end_s))
  return rows


def class_names_in_order(rows: list[EventRow]) -> list[str]:
  """Class names in order of first appearance (AVE's convention: Church bell, Male speech, ...)."""
  return list(dict.fromkeys(row.category for row in rows))


def read_split(directory: epath.PathLike, split: str) -> list[EventRow]:
  """Rows of `split` ('train' | 'val' | 'test') from its split file."""
  path = epath.Path(directory) / SPLIT_FILES[split]
  if not path.exists():
    raise AnnotationError(f"missing split file {path}")
  return parse_annotation_lines(path)


def read_class_names(directory: epath.PathLike) -> list[str]:
  """Class names from Annotations.txt, in order of first appearance."""
  path = epath.Path(directory) / "Annotations.txt"
  if not path.exists():
    raise AnnotationError(f"missing {path}: not an AVE-format directory")
  return class_names_in_order(parse_annotation_lines(path))


@dataclasses.dataclass(frozen=True)
class SegmentBoxes:
  frame_size: tuple[int, int]  # (W, H) of the original frame
  boxes: tuple[tuple[float, float, float, float], ...]  # [x0, y0, x1, y1] in original pixels


def read_boxes(directory: epath.PathLike) -> dict[str, dict[int, SegmentBoxes]]:
  """`boxes.jsonl` as {video_id: {segment: SegmentBoxes}}; empty when the file is absent."""
  path = epath.Path(directory) / "boxes.jsonl"
  by_video: dict[str, dict[int, SegmentBoxes]] = collections.defaultdict(dict)
  if not path.exists():
    return {}
  for line_number, line in enumerate(path.read_text().splitlines(), start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      width, height = record["frame_size"]
      boxes = tuple(tuple(float(v) for v in box) for box in record["boxes"])
      if any(len(box) != 4 for box in boxes):
        raise ValueError("every box needs 4 numbers [x0,y0,x1,y1]")
      by_video[record["video_id"]][int(record["segment"])] = SegmentBoxes(
          (int(width), int(height)), boxes
      )
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as error:
      raise AnnotationError(f"{path}:{line_number}: bad boxes record ({error}): {line!r}") from None
  return dict(by_video)


def segment_labels(
    row: EventRow, class_index: int, num_segments: int, background: int
) -> list[int]:
  """Per-segment labels [T]: `class_index` inside [start, end), `background` elsewhere."""
  return [class_index if row.start <= t < row.end else background for t in range(num_segments)]
