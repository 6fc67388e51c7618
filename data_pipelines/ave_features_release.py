"""The AVE feature release (Tian et al., ECCV 2018): its files, and the checks a build runs first.

The release directory (the builder's manual_dir) holds h5 files, each with key `avadataset`
(order files: key `order`). Shapes are read from the files; the release's are in brackets::

    visual_feature.h5   [N,T,h,w,Cv]  VGG-19 pool5 maps            [4143,10,7,7,512] (7.7 GiB)
    audio_feature.h5    [N,T,Ca]      VGGish vectors                [4143,10,128]
    labels.h5           [N,T,C+1]     one-hot per segment, index C = background (C = 28)
    train_order.h5 val_order.h5 test_order.h5   [n] row indices    3339 / 402 / 402
    Annotations.txt     row i = line i (a header line, as in the release zip, is skipped)
    mil_labels.h5 [N,C+1], labels_closs.h5 [N,T]   optional; cross-checked when present

`check_release` reads the shapes, orders and labels and checks every label file against
Annotations.txt (class, event start/end) before anything is written; a mismatch is a
ReleaseError naming the file and row. data_pipelines/ave_features.py builds the checked release.
"""

from __future__ import annotations

import dataclasses
import pathlib

import h5py
import numpy as np

from data_pipelines import ave_format

H5_KEY = "avadataset"
ORDER_KEY = "order"
VISUAL_FILE = "visual_feature.h5"
AUDIO_FILE = "audio_feature.h5"
LABELS_FILE = "labels.h5"
VIDEO_LABELS_FILE = "mil_labels.h5"  # optional [N,C+1]
EVENT_MASK_FILE = "labels_closs.h5"  # optional [N,T], 1 inside the event
ORDER_FILES = {"train": "train_order.h5", "val": "val_order.h5", "test": "test_order.h5"}
ANNOTATIONS_FILE = "Annotations.txt"
REQUIRED_FILES = (VISUAL_FILE, AUDIO_FILE, LABELS_FILE, *ORDER_FILES.values(), ANNOTATIONS_FILE)
MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The AVE feature release, all files in one directory (the manual_dir):
  audio_feature.h5   https://drive.google.com/file/d/1F6p4BAOY-i0fDXUOhG7xHuw_fnO5exBS
  visual_feature.h5  https://drive.google.com/file/d/1hQwbhutA3fQturduRnHMyfRqdrRHgmC9 (7.7 GB)
  Annotations.txt, train_order.h5, val_order.h5, test_order.h5 (optionally mil_labels.h5,
    labels_closs.h5): the data/ folder of https://github.com/YapengTian/AVE-ECCV18
  labels.h5: with the AVE-ECCV18 features; also in the Google Drive folder linked from the
    README of https://github.com/jasongief/PSP_CVPR_2021
The Drive links are those of the AVE-ECCV18 README, section 'AVE Dataset & Features'."""


class ReleaseError(ValueError):
  """The feature release is missing files or is inconsistent. The message names file and row."""


@dataclasses.dataclass(frozen=True)
class Release:
  """What the checks found: annotation rows, split row indices and the feature shapes."""

  directory: pathlib.Path
  rows: list[ave_format.EventRow]
  class_names: list[str]
  orders: dict  # {split: np.ndarray [n] int64}
  segment_labels: np.ndarray  # [N,T] int32, C = background; equal to labels.h5 (checked)
  visual_shape: tuple[int, ...]  # (T, h, w, Cv)
  audio_shape: tuple[int, ...]  # (T, Ca)


def missing_files(directory: pathlib.Path) -> list[str]:
  """Required release files absent from `directory`."""
  return [name for name in REQUIRED_FILES if not (pathlib.Path(directory) / name).exists()]


def h5_dataset(file: h5py.File, key: str = H5_KEY) -> h5py.Dataset:
  if key not in file:
    raise ReleaseError(f"{file.filename} has no dataset {key!r} (keys: {sorted(file.keys())})")
  return file[key]


def _dataset_shape(path: pathlib.Path) -> tuple[int, ...]:
  with h5py.File(path, "r") as file:
    return tuple(h5_dataset(file).shape)


def _read_all(path: pathlib.Path, key: str = H5_KEY) -> np.ndarray:
  """A small h5 dataset (labels, orders) read whole."""
  with h5py.File(path, "r") as file:
    return h5_dataset(file, key)[...]


def describe_row(row_index: int, row: ave_format.EventRow) -> str:
  return (
      f"row {row_index} (counting from 0; Annotations.txt: "
      f"{row.category}&{row.video_id}&{row.quality}&{row.start}&{row.end})"
  )


def check_release(directory) -> Release:
  """Reads shapes, orders and labels, and checks them against Annotations.txt.

  Raises ReleaseError (missing files, shape or row-count mismatches, bad order indices, a label
  that disagrees with its annotation row).
  """
  directory = pathlib.Path(directory)
  missing = missing_files(directory)
  if missing:
    raise ReleaseError(
        f"{directory} lacks {', '.join(missing)}; download them into "
        f"{directory}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  rows = ave_format.parse_annotation_lines(directory / ANNOTATIONS_FILE)
  class_names = ave_format.class_names_in_order(rows)
  num_rows = len(rows)

  visual_shape = _dataset_shape(directory / VISUAL_FILE)
  audio_shape = _dataset_shape(directory / AUDIO_FILE)
  labels = _read_all(directory / LABELS_FILE)  # [N,T,C+1]
  if len(visual_shape) != 5 or len(audio_shape) != 3 or labels.ndim != 3:
    raise ReleaseError(
        f"expected {VISUAL_FILE} [N,T,h,w,Cv], {AUDIO_FILE} [N,T,Ca], {LABELS_FILE} [N,T,C+1]; "
        f"got {list(visual_shape)}, {list(audio_shape)}, {list(labels.shape)}"
    )
  for name, shape in (
      (VISUAL_FILE, visual_shape),
      (AUDIO_FILE, audio_shape),
      (LABELS_FILE, labels.shape),
  ):
    if shape[0] != num_rows:
      raise ReleaseError(f"{name} has {shape[0]} rows but {ANNOTATIONS_FILE} has {num_rows}")
  num_segments = labels.shape[1]
  if visual_shape[1] != num_segments or audio_shape[1] != num_segments:
    raise ReleaseError(
        f"segment counts differ: {VISUAL_FILE} {visual_shape[1]}, "
        f"{AUDIO_FILE} {audio_shape[1]}, {LABELS_FILE} {num_segments}"
    )
  if labels.shape[2] != len(class_names) + 1:
    raise ReleaseError(
        f"{LABELS_FILE} has {labels.shape[2]} label columns; {ANNOTATIONS_FILE} "
        f"has {len(class_names)} classes, so {len(class_names) + 1} are expected "
        "(the last one is background)"
    )

  class_indices = [class_names.index(row.category) for row in rows]  # [N]
  expected = np.asarray(
      [
          ave_format.segment_labels(row, label, num_segments, background=len(class_names))
          for row, label in zip(rows, class_indices)
      ],
      np.int64,
  )  # [N,T]
  _check_segment_labels(labels, expected, rows)
  _check_optional_labels(directory, np.asarray(class_indices), expected, rows, len(class_names))
  orders = _check_orders(directory, num_rows)
  return Release(
      directory,
      rows,
      class_names,
      orders,
      expected.astype(np.int32),
      visual_shape[1:],
      audio_shape[1:],
  )


def _check_segment_labels(labels: np.ndarray, expected: np.ndarray, rows):
  """labels [N,T,C+1] must be one-hot per segment and equal `expected` [N,T]."""
  one_hot = np.all((labels == 0) | (labels == 1), axis=-1) & (labels.sum(-1) == 1)  # [N,T]
  got = labels.argmax(-1)
  bad = np.flatnonzero(~one_hot.all(-1) | np.any(got != expected, axis=-1))
  if bad.size:
    i = int(bad[0])
    got_text = got[i].tolist() if one_hot[i].all() else f"non-one-hot rows {labels[i].tolist()}"
    raise ReleaseError(
        f"{LABELS_FILE} disagrees with {ANNOTATIONS_FILE} at {describe_row(i, rows[i])}: segment "
        f"labels {got_text}, annotation gives {expected[i].tolist()} "
        f"({bad.size} mismatching row(s) in all)"
    )


def _check_optional_labels(
    directory: pathlib.Path, class_indices: np.ndarray, expected: np.ndarray, rows, num_classes: int
):
  """mil_labels.h5 (video class) and labels_closs.h5 (event segments), when present.

  class_indices [N] and expected [N,T] segment labels come from Annotations.txt.
  """
  if (directory / VIDEO_LABELS_FILE).exists():
    video = _read_all(directory / VIDEO_LABELS_FILE)  # [N,C+1]
    if video.shape != (len(rows), num_classes + 1):
      raise ReleaseError(
          f"{VIDEO_LABELS_FILE} has shape {list(video.shape)}, expected "
          f"{[len(rows), num_classes + 1]}"
      )
    bad = np.flatnonzero(video.argmax(-1) != class_indices)
    if bad.size:
      i = int(bad[0])
      raise ReleaseError(
          f"{VIDEO_LABELS_FILE} disagrees with {ANNOTATIONS_FILE} at "
          f"{describe_row(i, rows[i])}: class {int(video[i].argmax())}, annotation "
          f"gives {int(class_indices[i])} ({bad.size} mismatching row(s) in all)"
      )
  if (directory / EVENT_MASK_FILE).exists():
    event_mask = _read_all(directory / EVENT_MASK_FILE)  # [N,T]
    want = expected != num_classes
    if event_mask.shape != want.shape:
      raise ReleaseError(
          f"{EVENT_MASK_FILE} has shape {list(event_mask.shape)}, expected {list(want.shape)}"
      )
    bad = np.flatnonzero(np.any((event_mask == 1) != want, axis=-1))
    if bad.size:
      i = int(bad[0])
      raise ReleaseError(
          f"{EVENT_MASK_FILE} disagrees with {ANNOTATIONS_FILE} at "
          f"{describe_row(i, rows[i])}: event segments {event_mask[i].tolist()} "
          f"({bad.size} mismatching row(s) in all)"
      )


def _check_orders(directory: pathlib.Path, num_rows: int) -> dict:
  """{split: row indices [n]}; each index in [0, N), no row in two splits or twice in one."""
  orders, seen = {}, {}
  for split, name in ORDER_FILES.items():
    order = _read_all(directory / name, ORDER_KEY).astype(np.int64).reshape(-1)
    out_of_range = order[(order < 0) | (order >= num_rows)]
    if out_of_range.size:
      raise ReleaseError(f"{name} holds row {int(out_of_range[0])}, outside [0, {num_rows})")
    for row in order.tolist():
      if row in seen:
        raise ReleaseError(
            f"row {row} is listed in both {seen[row]} and {name}"
            if seen[row] != name
            else f"{name} lists row {row} twice"
        )
      seen[row] = name
    orders[split] = order
  return orders
