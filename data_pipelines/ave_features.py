"""TFDS builder `ave_features`: the AVE feature release (Tian et al., ECCV 2018) as array_record.

The release directory (the builder's manual_dir) holds h5 files, each with key `avadataset`
(order files: key `order`). Shapes are read from the files; the release's are in brackets::

    visual_feature.h5   [N,T,h,w,Cv]  VGG-19 pool5 maps            [4143,10,7,7,512] (7.7 GiB)
    audio_feature.h5    [N,T,Ca]      VGGish vectors                [4143,10,128]
    labels.h5           [N,T,C+1]     one-hot per segment, index C = background (C = 28)
    train_order.h5 val_order.h5 test_order.h5   [n] row indices    3339 / 402 / 402
    Annotations.txt     row i = line i (a header line, as in the release zip, is skipped)
    mil_labels.h5 [N,C+1], labels_closs.h5 [N,T]   optional; cross-checked when present

Every label file is checked against Annotations.txt (class, event start/end) before anything
is written; a mismatch is an error naming the row. Each example (one row) holds::

    video_id str · row int32 (0-based line of Annotations.txt, header skipped) · label ClassLabel
    event_start, event_end int32 seconds (end exclusive) · segment_labels [T] int32 (C: background)
    visual_features [T,h,w,Cv] float16 (or float32) · audio_features [T,Ca] float32
    segment_mask [T] bool (all True) · has_audio bool (False iff the audio vectors are all zero)
    frame_size [2] int32 = (0, 0): unknown, the release has no frames
    boxes [T,1,4] float32 zeros · box_mask [T,1] bool all False: no boxes, so no spatial pointing

Visual maps are stored as float16 raw bytes by default: 2.1 GB before array_record's own
compression, against 4.2 GB as float32 (the release's 7.7 GiB file is float64), so half the bytes
per training step, and float16 keeps more mantissa bits (10) than the bfloat16 compute (7).
Pool5 maps are non-negative ReLU outputs far below float16's 65504; a row that does not fit is
an error that names it and points to `visual_dtype='float32'`. The h5 files are read one row at a
time, in row order within each split (peak memory for the full release: 1.7 GB, mostly TFDS's
shuffle buffer).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

from etils import epath
import h5py
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import ave_builder
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
VISUAL_DTYPES = ("float16", "float32")
BOXES_PER_SEGMENT = 1  # placeholder boxes for the evaluator; all masked out

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


def _dataset(file: h5py.File, key: str = H5_KEY) -> h5py.Dataset:
  if key not in file:
    raise ReleaseError(f"{file.filename} has no dataset {key!r} (keys: {sorted(file.keys())})")
  return file[key]


def _dataset_shape(path: pathlib.Path) -> tuple[int, ...]:
  with h5py.File(path, "r") as file:
    return tuple(_dataset(file).shape)


def _read_all(path: pathlib.Path, key: str = H5_KEY) -> np.ndarray:
  """A small h5 dataset (labels, orders) read whole."""
  with h5py.File(path, "r") as file:
    return _dataset(file, key)[...]


def _describe(row_index: int, row: ave_format.EventRow) -> str:
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
        f"{LABELS_FILE} disagrees with {ANNOTATIONS_FILE} at {_describe(i, rows[i])}: segment "
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
          f"{_describe(i, rows[i])}: class {int(video[i].argmax())}, annotation "
          f"gives {int(class_indices[i])} ({bad.size} mismatching row(s) in all)"
      )
  if (directory / EVENT_MASK_FILE).exists():
    event_mask = _read_all(directory / EVENT_MASK_FILE)  # [N,T]
    want = expected != num_classes
    if event_mask.shape != want.shape:
      raise ReleaseError(
          f"{EVENT_MASK_FILE} has shape {list(event_mask.shape)}, expected " f"{list(want.shape)}"
      )
    bad = np.flatnonzero(np.any((event_mask == 1) != want, axis=-1))
    if bad.size:
      i = int(bad[0])
      raise ReleaseError(
          f"{EVENT_MASK_FILE} disagrees with {ANNOTATIONS_FILE} at "
          f"{_describe(i, rows[i])}: event segments {event_mask[i].tolist()} "
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


@dataclasses.dataclass(eq=False)
class AveFeaturesConfig(tfds.core.BuilderConfig):
  """Shapes (read from the release by `build`) and the storage dtype of the visual maps."""

  class_names: tuple[str, ...] = ()
  visual_shape: tuple[int, ...] = ()  # (T, h, w, Cv)
  audio_shape: tuple[int, ...] = ()  # (T, Ca)
  visual_dtype: str = "float16"


def config_name(visual_dtype: str) -> str:
  """The builder-config name, e.g. `visual_float16`."""
  return f"visual_{visual_dtype}"


class AveFeatures(tfds.core.GeneratorBasedBuilder):
  """The AVE feature release: one example per annotation row, splits from the order files."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(
      self,
      *,
      release: Release | None = None,
      on_row: Callable[[bool], None] | None = None,
      **kwargs,
  ):
    """release: the checked release (needed to build, not to read); on_row(failed) per row."""
    super().__init__(**kwargs)
    self._release = release
    self._on_row = on_row or (lambda failed: None)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    num_segments = cfg.visual_shape[0]
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                "video_id": tfds.features.Text(),
                "row": tfds.features.Scalar(dtype=np.int32),
                "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
                "event_start": tfds.features.Scalar(dtype=np.int32),
                "event_end": tfds.features.Scalar(dtype=np.int32),
                "segment_labels": tfds.features.Tensor(shape=(num_segments,), dtype=np.int32),
                # Raw bytes: the default (a tf.train.Example FloatList) stores float16 as 4 bytes
                # and serialises value by value, 20x slower.
                "visual_features": tfds.features.Tensor(
                    shape=cfg.visual_shape,
                    dtype=np.dtype(cfg.visual_dtype),
                    encoding=tfds.features.Encoding.BYTES,
                ),
                "audio_features": tfds.features.Tensor(shape=cfg.audio_shape, dtype=np.float32),
                "segment_mask": tfds.features.Tensor(shape=(num_segments,), dtype=np.bool_),
                "has_audio": tfds.features.Scalar(dtype=np.bool_),
                "frame_size": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                "boxes": tfds.features.Tensor(
                    shape=(num_segments, BOXES_PER_SEGMENT, 4), dtype=np.float32
                ),
                "box_mask": tfds.features.Tensor(
                    shape=(num_segments, BOXES_PER_SEGMENT), dtype=np.bool_
                ),
            }
        ),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    if self._release is None:
      raise ReleaseError("AveFeatures needs a checked release to build; use ave_features.build")
    return {
        split: self._generate_examples(np.sort(order))
        for split, order in self._release.orders.items()
    }

  def _generate_examples(self, rows):
    release, cfg = self._release, self.builder_config
    dtype = np.dtype(cfg.visual_dtype)
    with (
        h5py.File(release.directory / VISUAL_FILE, "r") as visual_file,
        h5py.File(release.directory / AUDIO_FILE, "r") as audio_file,
    ):
      visual, audio = _dataset(visual_file), _dataset(audio_file)
      for row_index in rows.tolist():
        row = release.rows[row_index]
        visual_features = np.asarray(visual[row_index]).astype(dtype)  # [T,h,w,Cv]
        audio_features = np.asarray(audio[row_index]).astype(np.float32)  # [T,Ca]
        for name, values in ((VISUAL_FILE, visual_features), (AUDIO_FILE, audio_features)):
          if not np.all(np.isfinite(values)):
            raise ReleaseError(
                f"{name} {_describe(row_index, row)} has values that are not finite as "
                f"{values.dtype}"
                + (" (build with visual_dtype='float32')" if values.dtype == np.float16 else "")
            )
        num_segments = visual_features.shape[0]
        yield f"{row_index:06d}", {
            "video_id": row.video_id,
            "row": row_index,
            "label": cfg.class_names.index(row.category),
            "event_start": row.start,
            "event_end": row.end,
            "segment_labels": release.segment_labels[row_index],
            "visual_features": visual_features,
            "audio_features": audio_features,
            "segment_mask": np.ones((num_segments,), np.bool_),
            "has_audio": bool(np.any(audio_features != 0)),
            "frame_size": np.zeros((2,), np.int32),
            "boxes": np.zeros((num_segments, BOXES_PER_SEGMENT, 4), np.float32),
            "box_mask": np.zeros((num_segments, BOXES_PER_SEGMENT), np.bool_),
        }
        self._on_row(False)


def dataset_dir(data_dir, visual_dtype: str = "float16") -> epath.Path:
  """Where `build` writes the dataset under `data_dir` (a local path or gs://...)."""
  return (
      epath.Path(data_dir) / "ave_features" / config_name(visual_dtype) / str(AveFeatures.VERSION)
  )


def build(
    manual_dir,
    data_dir,
    *,
    visual_dtype: str = "float16",
    on_row: Callable[[bool], None] | None = None,
) -> ave_builder.BuildSummary:
  """Checks the release in `manual_dir` and writes it as array_record under `data_dir`.

  An already built dataset is kept (the summary says `reused`). Raises ReleaseError.
  """
  if visual_dtype not in VISUAL_DTYPES:
    raise ValueError(f"visual_dtype={visual_dtype!r} is not one of {VISUAL_DTYPES}")
  built_dir = dataset_dir(data_dir, visual_dtype)
  reused = (built_dir / "dataset_info.json").exists()
  if not reused:
    release = check_release(manual_dir)
    config = AveFeaturesConfig(
        name=config_name(visual_dtype),
        class_names=tuple(release.class_names),
        visual_shape=release.visual_shape,
        audio_shape=release.audio_shape,
        visual_dtype=visual_dtype,
    )
    builder = AveFeatures(config=config, data_dir=str(data_dir), release=release, on_row=on_row)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)),
    )
    info = builder.info
  else:
    info = tfds.builder_from_directory(str(built_dir)).info
  built = {split: info.splits[split].num_examples for split in ORDER_FILES}
  return ave_builder.BuildSummary(built_dir, built, failed=0, reused=reused)
