"""Reading VGG-SS, the VGGSound Sound-Source annotations (Chen et al. 2021, "Localizing Visual
Sounds the Hard Way"; https://github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way).

`metadata/vggss.json`: a JSON list of 5,158 entries
`{"file": "<youtube_id>_<start_s:06d>", "class": "<VGGSound class>", "bbox": [[x0,y0,x1,y1],
...]}`, coordinates normalised to [0, 1] of the whole frame, 1-7 boxes per entry, 221 classes.
`metadata/vggss_test.csv`: one file id per line (CRLF line ends in the release); the id is the
line's first CSV field, as EZ-VSL reads it (csv.reader, item[0]). The file id is also the
VGGSound clip name (`<ytid>_<start:06d>.mp4`, data_pipelines/manifest_converters.py).

Known defects of the release, counted (never silently dropped):
- sentinel boxes: a coordinate holds a huge negative number (about -2.88e16); the reference
  loaders clamp it to 0 (`int(224 * max(v, 0))`), which leaves an empty box. Here every
  coordinate is clamped to [0, 1]; a box that is then empty is not usable.
- degenerate boxes: zero width or height as given.
- entries with no usable box left: not trials (the build lists them in failures.jsonl).

The annotated frame: which frame of the 10 s clip the boxes were drawn on is disputed: the
middle frame (`image_050.jpg` of frames extracted at 10 fps; LVS), or the 125th frame at 25 fps
(SSL-alignment's loaders). ANNOTATED_FRAMES gives the time of each in seconds; the annotated
segment is the one-second segment holding that time (`annotated_segment`).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import re

from etils import epath

SENTINEL_BELOW = -1e6  # a coordinate below this is the release's sentinel (about -2.88e16)
# Time (seconds from the clip start) of the annotated frame, by option.
ANNOTATED_FRAMES = {
    "middle": 5.0,  # the middle of the 10 s clip: image_050.jpg at 10 fps (LVS), the default
    "frame125": 124 / 25,  # the 125th frame (1-based) at 25 fps: 4.96 s
}
DEFAULT_ANNOTATED_FRAME = "middle"
FILE_PATTERN = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d{6})$")


class VggssError(ValueError):
  """vggss.json or the test list cannot be read. The message names the file and the entry."""


@dataclasses.dataclass(frozen=True)
class VggssEntry:
  """One annotated clip: boxes [(x0, y0, x1, y1)] normalised, clamped to [0, 1], usable only."""

  file: str  # <youtube_id>_<start:06d>, the VGGSound clip name
  youtube_id: str
  start_s: int
  class_name: str
  position: int  # the entry's index in vggss.json (before any test-list filter)
  boxes: tuple[tuple[float, float, float, float], ...]
  sentinel_boxes: int  # boxes with a sentinel coordinate (clamped; kept if still non-empty)
  degenerate_boxes: int  # boxes with zero width or height as given


@dataclasses.dataclass(frozen=True)
class VggssAnnotations:
  entries: list[VggssEntry]
  counts: dict  # sentinel_boxes, degenerate_boxes, entries_without_box, not_in_test_list,
  #               test_ids_without_entry

  def summary(self) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in self.counts.items())


def annotated_segment(frame: str = DEFAULT_ANNOTATED_FRAME) -> int:
  """The one-second segment that holds the annotated frame of option `frame`."""
  if frame not in ANNOTATED_FRAMES:
    raise VggssError(f"annotated frame {frame!r}; known: {', '.join(ANNOTATED_FRAMES)}")
  return int(math.floor(ANNOTATED_FRAMES[frame]))


def _clean_box(box, where: str) -> tuple[tuple[float, float, float, float] | None, bool, bool]:
  """(the clamped box or None when empty, had a sentinel, was degenerate as given)."""
  if not isinstance(box, (list, tuple)) or len(box) != 4:
    raise VggssError(f"{where}: a box must be [x0, y0, x1, y1], got {box!r}")
  try:
    values = [float(v) for v in box]
  except (TypeError, ValueError):
    raise VggssError(f"{where}: box coordinates must be numbers, got {box!r}") from None
  if not all(math.isfinite(v) for v in values):
    raise VggssError(f"{where}: box coordinates must be finite, got {box!r}")
  sentinel = any(v < SENTINEL_BELOW for v in values)
  x0, y0, x1, y1 = values
  degenerate = not sentinel and (x1 <= x0 or y1 <= y0)
  x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in values)
  usable = x1 > x0 and y1 > y0
  return ((x0, y0, x1, y1) if usable else None), sentinel, degenerate


def read_test_list(path: epath.PathLike) -> list[str]:
  """vggss_test.csv: the file id of each line, its first CSV field (CRLF or LF; blank lines
  skipped)."""
  text = epath.Path(path).read_text(encoding="utf-8-sig")
  rows = csv.reader(text.splitlines())
  return [row[0].strip() for row in rows if row and row[0].strip()]


def read(json_path: epath.PathLike, test_list: list[str] | None = None) -> VggssAnnotations:
  """vggss.json (and optionally the ids of vggss_test.csv) -> entries in file order.

  With a test list, entries whose file is not listed are counted and left out (and listed ids
  without an entry are counted). Entries keep only usable boxes; one without any is kept with
  boxes == () so that the build can list it as a failure."""
  json_path = epath.Path(json_path)
  try:
    records = json.loads(json_path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as error:
    raise VggssError(f"{json_path}: not JSON ({error})") from None
  if not isinstance(records, list):
    raise VggssError(f"{json_path}: expected a JSON list of entries, got {type(records).__name__}")
  listed = set(test_list) if test_list is not None else None
  counts = collections.Counter(
      sentinel_boxes=0,
      degenerate_boxes=0,
      entries_without_box=0,
      not_in_test_list=0,
      test_ids_without_entry=0,
  )
  entries, seen = [], set()
  for index, record in enumerate(records):
    where = f"{json_path}: entry {index}"
    if not isinstance(record, dict) or not {"file", "class", "bbox"} <= set(record):
      raise VggssError(f"{where}: expected {{file, class, bbox}}, got {str(record)[:80]!r}")
    file = str(record["file"]).strip()
    match = FILE_PATTERN.match(file)
    if not match:
      raise VggssError(f"{where}: file {file!r} is not <youtube_id>_<start:06d>")
    if listed is not None and file not in listed:
      counts["not_in_test_list"] += 1
      continue
    boxes, sentinels, degenerates = [], 0, 0
    for box in record["bbox"] or []:
      kept, sentinel, degenerate = _clean_box(box, f"{where} ({file})")
      sentinels += sentinel
      degenerates += degenerate
      if kept is not None:
        boxes.append(kept)
    counts["sentinel_boxes"] += sentinels
    counts["degenerate_boxes"] += degenerates
    counts["entries_without_box"] += not boxes
    seen.add(file)
    entries.append(
        VggssEntry(
            file,
            match["youtube_id"],
            int(match["start"]),
            str(record["class"]).strip(),
            index,
            tuple(boxes),
            sentinels,
            degenerates,
        )
    )
  if listed is not None:
    counts["test_ids_without_entry"] = len(listed - seen)
  return VggssAnnotations(entries, dict(counts))


def entry_name(entry: VggssEntry) -> str:
  """How failure messages name an entry: its position in vggss.json and its file id."""
  return f"vggss.json entry {entry.position} ({entry.file})"


def no_box_reason(entry: VggssEntry) -> str:
  """The failures.jsonl reason of an entry without a usable box."""
  return (
      f"no usable box ({entry.sentinel_boxes} with the sentinel coordinate, "
      f"{entry.degenerate_boxes} degenerate)"
  )
