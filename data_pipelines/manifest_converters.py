"""Kinetics-Sounds and VGGSound annotations plus a directory of downloaded clips → a manifest.

Clips are found by file name anywhere under the clips directory (any of
video_examples.VIDEO_EXTENSIONS, .mp4 preferred), so the usual downloader layouts all work:
flat, per split (`train/`, `val/`) or per class. A clip that is not there is still written to
the manifest, at `<clips_dir>/<name>.mp4`: the build then lists it in failures.jsonl as
"file not found" and counts it as failed, so the summary shows how much of the dataset is
missing (YouTube videos disappear; 10-20 % missing is common).

Carved validation split: when the annotations have no labelled validation split of their own,
ours is carved from train deterministically: a train row goes to val when the first 8 hex digits
of sha1(youtube_id), mod 100, are < VAL_PERCENT. It depends on the YouTube id alone, so it does
not change with the set of clips downloaded, and all clips of one YouTube video stay together.

Kinetics-Sounds (configs/kinetics_sounds.py): rows of the Kinetics-400 CSVs
(`label,youtube_id,time_start,time_end,split`, header row; extra columns ignored) whose label is
one of the class names. Kinetics train / val (or `validate`) / test → train / val / test, as in
the paper (15k / 1.9k / 1.9k clips). When no test row carries a label (the 2017 release withheld
them), Kinetics val → test and val is carved from train. Clip file:
`<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`.

VGGSound (configs/vggsound.py): `vggsound.csv`, rows `ytid,start,label,split` without a header,
split train | test. Clip file: `<ytid>_<start:06d>.<ext>`. Class list: the sorted labels of the
whole CSV (309), whichever clips were downloaded.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import posixpath

from etils import epath

from data_pipelines import manifest_format
from data_pipelines import video_examples

VAL_PERCENT = 5
KINETICS_SPLITS = {
    "train": "train",
    "val": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
}
# Required columns; `label` may be absent (the 2017 test.csv has none): such rows are not used.
KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end", "split")


class ConversionError(ValueError):
  """An annotation file cannot be read. The message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Conversion:
  """What a converter wrote: the manifest, its class list and counts."""

  manifest_path: epath.Path
  class_names: tuple[str, ...]
  rows: dict  # {split: manifest rows}
  missing_clips: int  # rows whose clip was not found under the clips directory
  skipped: int  # annotation rows not used (other classes, unknown splits)
  val_carved: bool  # True: val was carved from train (see the module doc)

  def __str__(self):
    splits = ", ".join(f"{split}={n}" for split, n in self.rows.items())
    val = f"val carved from train ({VAL_PERCENT}%)" if self.val_carved else "val as published"
    return (
        f"manifest {self.manifest_path}: {sum(self.rows.values())} clips ({splits}; {val}) "
        f"of {len(self.class_names)} classes, {self.missing_clips} not downloaded (they "
        f"will be counted as failed), {self.skipped} annotation rows not used"
    )


def carved_split(split: str, youtube_id: str) -> str:
  """`train` → `val` for VAL_PERCENT % of YouTube ids (by sha1), other splits unchanged."""
  if split != "train":
    return split
  bucket = int(hashlib.sha1(youtube_id.encode("utf-8")).hexdigest()[:8], 16) % 100
  return "val" if bucket < VAL_PERCENT else "train"


def index_clips(clips_dir) -> dict[str, str]:
  """{file name without extension: path} for every video file under `clips_dir` (recursive)."""
  rank = {f".{ext}": i for i, ext in enumerate(video_examples.VIDEO_EXTENSIONS)}
  found: dict[str, tuple[int, str]] = {}
  clips_dir = epath.Path(clips_dir)
  if "://" in str(clips_dir):
    paths = (str(path) for path in clips_dir.rglob("*"))
  else:
    paths = (os.path.join(root, name) for root, _, names in os.walk(clips_dir) for name in names)
  for path in paths:
    stem, ext = posixpath.splitext(posixpath.basename(path))
    ext = ext.lower()
    if ext in rank and (stem not in found or rank[ext] < found[stem][0]):
      found[stem] = (rank[ext], path)
  return {stem: path for stem, (_, path) in found.items()}


def _seconds(text: str, what: str, where: str) -> int:
  try:
    return int(float(text))
  except ValueError:
    raise ConversionError(f"{where}: {what} must be seconds, got {text!r}") from None


def _write(
    out_path, entries, clips, clips_dir, class_names, skipped, val_carved: bool
) -> Conversion:
  """entries: (clip name, label, split). Writes the manifest; counts rows and missing clips."""
  rows, missing = [], 0
  counts = {split: 0 for split in manifest_format.SPLITS}
  for name, label, split in entries:
    path = clips.get(name)
    if path is None:
      missing += 1
      path = str(epath.Path(clips_dir) / f"{name}.mp4")
    rows.append({"path": path, "label": label, "split": split})
    counts[split] += 1
  return Conversion(
      manifest_format.write(out_path, rows),
      tuple(class_names),
      counts,
      missing,
      skipped,
      val_carved,
  )


def kinetics_sounds(annotation_csvs, clips_dir, out_path, class_names) -> Conversion:
  """Kinetics-400 CSVs + clips → manifest of the `class_names` rows (see the module doc)."""
  wanted = set(class_names)
  entries, skipped = [], 0
  for csv_path in map(epath.Path, annotation_csvs):
    reader = csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8")))
    missing_columns = [c for c in KINETICS_COLUMNS if c not in (reader.fieldnames or ())]
    if missing_columns:
      raise ConversionError(
          f"{csv_path}: not a Kinetics CSV, it lacks the columns "
          f"{', '.join(missing_columns)} (header {reader.fieldnames})"
      )
    for line, record in enumerate(reader, start=2):
      split = KINETICS_SPLITS.get((record["split"] or "").strip())
      label = (record.get("label") or "").strip()
      if label not in wanted or split is None:
        skipped += 1
        continue
      where = f"{csv_path}:{line}"
      youtube_id = record["youtube_id"].strip()
      start = _seconds(record["time_start"], "time_start", where)
      end = _seconds(record["time_end"], "time_end", where)
      entries.append((f"{youtube_id}_{start:06d}_{end:06d}", label, split, youtube_id))
  val_carved = not any(split == "test" for _, _, split, _ in entries)
  if val_carved:  # no labelled test rows: Kinetics val is our test, val comes from train
    entries = [
        (name, label, "test" if split == "val" else carved_split(split, youtube_id), youtube_id)
        for name, label, split, youtube_id in entries
    ]
  return _write(
      out_path,
      [entry[:3] for entry in entries],
      index_clips(clips_dir),
      clips_dir,
      sorted(wanted),
      skipped,
      val_carved,
  )


def read_vggsound_csv(csv_path) -> list[tuple[str, int, str, str]]:
  """vggsound.csv → [(ytid, start, label, split)]. Raises ConversionError for a bad row."""
  csv_path = epath.Path(csv_path)
  rows = []
  for line, record in enumerate(
      csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))), start=1
  ):
    if not record:
      continue
    if len(record) != 4 or record[3].strip() not in ("train", "test"):
      raise ConversionError(
          f"{csv_path}:{line}: expected ytid,start,label,split with split "
          f"train or test, got {','.join(record)!r}"
      )
    ytid, start, label, split = (field.strip() for field in record)
    rows.append((ytid, _seconds(start, "start", f"{csv_path}:{line}"), label, split))
  return rows


def vggsound(vggsound_csv, clips_dir, out_path) -> Conversion:
  """vggsound.csv + clips → manifest of every row (see the module doc)."""
  records = read_vggsound_csv(vggsound_csv)
  class_names = sorted({label for _, _, label, _ in records})
  entries = [
      (f"{ytid}_{start:06d}", label, carved_split(split, ytid))
      for ytid, start, label, split in records
  ]
  return _write(
      out_path, entries, index_clips(clips_dir), clips_dir, class_names, skipped=0, val_carved=True
  )
