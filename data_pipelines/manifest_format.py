"""The clip manifest: a CSV file `path,label[,start,end][,split]` with a header row.

    path,label,start,end,split
    clips/dog_001.mp4,dog barking,2.5,7,train
    /data/clips/cat_002.webm,cat meowing,,,          (whole clip, split by hash)

path        the clip: relative to the manifest's directory, or absolute (also gs://...).
label       its class name.
start, end  optional: the event inside the clip in seconds (decimals allowed); an empty start is
            0, an empty end the end of the clip. Segment t (second [t, t+1)) is labelled with the
            event when it overlaps [start, end), i.e. floor(start) <= t < ceil(end).
split       optional: train | val | test. Empty, or no such column: `default_split(path)`, a
            deterministic 80/10/10 split by a hash of the path as written, so a clip keeps its
            split when rows are added or removed.

Columns may come in any order; unknown columns are refused (a typo must not drop a field).
A row that cannot be used (wrong number of fields, empty path or label, bad seconds, unknown
split) is refused with its line number and reason, and never stops the others. A file-level
problem (no header, no path/label column) raises ManifestError.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import posixpath

from etils import epath

COLUMNS = ("path", "label", "start", "end", "split")
REQUIRED_COLUMNS = ("path", "label")
SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_PERCENT = (("train", 80), ("val", 10), ("test", 10))


class ManifestError(ValueError):
  """The manifest file as a whole cannot be read. The message says what to fix."""


@dataclasses.dataclass(frozen=True)
class ManifestRow:
  """One usable row. path is resolved (absolute); start/end None = not given."""

  line: int
  path: str
  label: str
  split: str
  start: float | None = None
  end: float | None = None

  @property
  def video_id(self) -> str:
    return posixpath.splitext(posixpath.basename(self.path))[0]

  @property
  def key(self) -> str:
    """The example key: unique within the manifest, ordered like its lines."""
    return f"{self.line:07d}_{self.video_id}"


@dataclasses.dataclass
class Manifest:
  path: epath.Path
  rows: list[ManifestRow]
  refused: list[dict]  # failures.jsonl records: split, key, video_id, path, reason

  @property
  def num_lines(self) -> int:
    """Data rows read (usable and refused)."""
    return len(self.rows) + len(self.refused)


def default_split(path_as_written: str) -> str:
  """train/val/test by the first 8 hex digits of sha1(path), mod 100: <80 train, <90 val, else
  test."""
  bucket = int(hashlib.sha1(path_as_written.encode("utf-8")).hexdigest()[:8], 16) % 100
  for split, percent in DEFAULT_SPLIT_PERCENT:
    if bucket < percent:
      return split
    bucket -= percent
  raise AssertionError("DEFAULT_SPLIT_PERCENT must sum to 100")


def _resolve(directory: epath.Path, path: str) -> str:
  if "://" in path or posixpath.isabs(path):
    return path
  return str(directory / path)


def _seconds(text: str, name: str) -> float | None:
  if not text:
    return None
  try:
    value = float(text)
  except ValueError:
    raise ValueError(f"{name} must be seconds, got {text!r}") from None
  if value != value or value in (float("inf"), float("-inf")):
    raise ValueError(f"{name} must be finite seconds, got {text!r}")
  return value


def _row(directory: epath.Path, line: int, fields: dict[str, str]) -> ManifestRow:
  """Raises ValueError with the reason when the row cannot be used."""
  path, label = fields["path"], fields["label"]
  if not path:
    raise ValueError("empty path")
  if not label:
    raise ValueError("empty label")
  start, end = _seconds(fields.get("start", ""), "start"), _seconds(fields.get("end", ""), "end")
  if start is not None and start < 0:
    raise ValueError(f"start must be >= 0, got {start:g}")
  if end is not None and end <= (start or 0.0):
    raise ValueError(f"end must be after start, got start={start or 0:g}, end={end:g}")
  split = fields.get("split", "") or default_split(path)
  if split not in SPLITS:
    raise ValueError(f"split must be one of {', '.join(SPLITS)} or empty, got {split!r}")
  return ManifestRow(line, _resolve(directory, path), label, split, start, end)


def read(path) -> Manifest:
  """Parses the manifest at `path` (local or gs://). Raises ManifestError for a file-level
  problem. A relative local path is made absolute, so the rows' clip paths are absolute too."""
  path = epath.Path(path)
  if "://" not in str(path):
    path = path.absolute()
  if not path.exists():
    raise ManifestError(f"no manifest at {path}")
  lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8").lstrip("\ufeff"))))
  header = [name.strip().lower() for name in lines[0]] if lines else []
  missing = [name for name in REQUIRED_COLUMNS if name not in header]
  unknown = [name for name in header if name not in COLUMNS]
  if missing or unknown or len(set(header)) != len(header):
    raise ManifestError(
        f"{path}: the first row must be the header path,label[,start,end][,split] (any order, "
        f"no repeats), got {','.join(lines[0]) if lines else 'an empty file'!r}"
    )
  rows, refused = [], []
  for line, values in enumerate(lines[1:], start=2):
    if not any(value.strip() for value in values):
      continue  # blank line
    values = [value.strip() for value in values]
    fields = dict(zip(header, values))
    try:
      if len(values) != len(header):
        raise ValueError(f"expected {len(header)} fields ({','.join(header)}), got {len(values)}")
      rows.append(_row(path.parent, line, fields))
    except ValueError as error:
      written = fields.get("path", "")
      video_id = posixpath.splitext(posixpath.basename(written))[0]
      refused.append(
          {
              "split": fields.get("split", ""),
              "key": f"{line:07d}_{video_id}",
              "video_id": video_id,
              "path": written,
              "reason": f"manifest line {line}: {error}",
          }
      )
  return Manifest(path, rows, refused)


def write(path, rows) -> epath.Path:
  """Writes rows (dicts with path, label, split and optionally start, end) as a manifest."""
  rows = list(rows)
  columns = [c for c in COLUMNS if c in REQUIRED_COLUMNS or any(c in row for row in rows)]
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text.getvalue(), encoding="utf-8")
  return path
