"""TFDS builder `ave_features`: the AVE feature release (Tian et al., ECCV 2018) as array_record.

The release directory (the builder's manual_dir, its files listed in
data_pipelines/ave_features_release.py) is checked there first: every label file against
Annotations.txt (class, event start/end), before anything is written; a mismatch is an error
naming the row. Each example (one row) holds::

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
from typing import Callable

from etils import epath
import h5py
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import ave_builder
from data_pipelines import ave_features_release as release_lib

VISUAL_DTYPES = ("float16", "float32")
BOXES_PER_SEGMENT = 1  # placeholder boxes for the evaluator; all masked out


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
  MANUAL_DOWNLOAD_INSTRUCTIONS = release_lib.MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(
      self,
      *,
      release: release_lib.Release | None = None,
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
      raise release_lib.ReleaseError(
          "AveFeatures needs a checked release to build; use ave_features.build"
      )
    return {
        split: self._generate_examples(np.sort(order))
        for split, order in self._release.orders.items()
    }

  def _generate_examples(self, rows):
    release, cfg = self._release, self.builder_config
    dtype = np.dtype(cfg.visual_dtype)
    with (
        h5py.File(release.directory / release_lib.VISUAL_FILE, "r") as visual_file,
        h5py.File(release.directory / release_lib.AUDIO_FILE, "r") as audio_file,
    ):
      visual, audio = release_lib.h5_dataset(visual_file), release_lib.h5_dataset(audio_file)
      for row_index in rows.tolist():
        row = release.rows[row_index]
        visual_features = np.asarray(visual[row_index]).astype(dtype)  # [T,h,w,Cv]
        audio_features = np.asarray(audio[row_index]).astype(np.float32)  # [T,Ca]
        for name, values in (
            (release_lib.VISUAL_FILE, visual_features),
            (release_lib.AUDIO_FILE, audio_features),
        ):
          if not np.all(np.isfinite(values)):
            raise release_lib.ReleaseError(
                f"{name} {release_lib.describe_row(row_index, row)} has values that are not finite as "
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
    release = release_lib.check_release(manual_dir)
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
  built = {split: info.splits[split].num_examples for split in release_lib.ORDER_FILES}
  return ave_builder.BuildSummary(built_dir, built, failed=0, reused=reused)
