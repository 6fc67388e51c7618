"""TFDS builder for a clip manifest (data_pipelines/manifest_format.py), written as array_record.

Examples have the features of data_pipelines/video_examples.py: video_id is the clip's file name
without extension, label a ClassLabel over the class list (the sorted labels of the manifest,
unless the caller gives the list, e.g. a dataset config), event_start/event_end the event's
whole seconds (floor(start), ceil(end) clipped to T; the whole clip when the manifest gives
none), boxes and box_mask empty (a manifest has no boxes).

Built under `<data_dir>/manifest_videos/<tag>_t<T>_f<F>_s<S>/1.1.0/`. Rows the manifest refuses,
rows whose label is not in the class list, rows whose event starts after the T decoded seconds,
and clips that cannot be decoded (including a decoder that crashes or runs past
decode_timeout_s) are all listed, with their reason, in failures.jsonl next to the dataset and
counted in the summary; none of them stops the build. Clips built despite decoder notes (skipped
corrupt data) are listed in warnings.jsonl.
"""

from __future__ import annotations

from typing import Callable, Sequence

from etils import epath
import tensorflow_datasets as tfds

from data_pipelines import clip_examples
from data_pipelines import dataset_spec
from data_pipelines import manifest_format
from data_pipelines import video_examples


class ManifestVideos(video_examples.VideoBuilder):
  """The clips of a manifest decoded into frames and log-mel segments."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.1.0": "frames and log_mel stored as raw bytes; damaged_segments",
      "1.0.0": "first version",
  }

  def __init__(self, *, manifest: manifest_format.Manifest, **kwargs):
    super().__init__(**kwargs)
    self._manifest = manifest

  def _tasks(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # the manifest names its clips
    cfg = self.builder_config
    class_index = {name: i for i, name in enumerate(cfg.class_names)}
    tasks = {split: [] for split in video_examples.SPLITS}
    self.failures.extend(self._manifest.refused)
    for _ in self._manifest.refused:
      self._on_row(True)
    for row in self._manifest.rows:
      reason = None
      if row.label not in class_index:
        reason = f"label {row.label!r} is not in the class list ({len(class_index)} classes)"
      elif row.start is not None and row.start >= cfg.num_segments:
        reason = (
            f"event starts at {row.start:g} s, after the {cfg.num_segments} seconds "
            "decoded (num_segments)"
        )
      task = clip_examples.ClipTask(
          split=row.split,
          key=row.key,
          video_id=row.video_id,
          video_path=row.path,
          label=class_index.get(row.label, -1),
          event=_event(row, cfg.num_segments),
      )
      if reason is not None:
        self.failures.append(task.failure(f"manifest line {row.line}: {reason}"))
        self._on_row(True)
      else:
        tasks[row.split].append(task)
    return tasks


def _event(row: manifest_format.ManifestRow, num_segments: int):
  """ClipTask.event: None for the whole clip, else (start, end) whole seconds; end None = the
  end of the clip."""
  if row.start is None and row.end is None:
    return None
  start, end = clip_examples.event_seconds(row.start or 0.0, row.end or 0.0, num_segments)
  return start, (end if row.end is not None else None)


def dataset_dir(data_dir, tag: str, decode: dataset_spec.Decode) -> epath.Path:
  """Where `build` writes the dataset of `tag` under `data_dir` (a local path or gs://...)."""
  return epath.Path(data_dir) / "manifest_videos" / decode.name(tag) / str(ManifestVideos.VERSION)


def build(
    manifest,
    data_dir,
    *,
    tag: str,
    class_names: Sequence[str] | None = None,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
    num_workers: int = 1,
    decode_timeout_s: float = 300.0,
    on_row: Callable[[bool], None] | None = None,
    beam_options=None,
) -> video_examples.BuildSummary:
  """Decodes the clips of `manifest` (a path or a parsed Manifest) into `data_dir`.

  An already built dataset of this tag and these decode settings is kept. class_names: the label
  space (default: the sorted labels of the manifest's usable rows). on_row(failed) is called
  once per manifest row as it is written or refused (for refused rows and, without Beam, for
  every row). decode_timeout_s: a clip still decoding after this long is a failure (local
  path). beam_options: apache_beam PipelineOptions to build on Beam (video_beam.py).
  Raises ManifestError when the manifest file cannot be read or has no usable row.
  """
  decode = dataset_spec.Decode(num_segments, frames_per_segment, frame_size)
  built_dir = dataset_dir(data_dir, tag, decode)
  if kept := video_examples.reused(built_dir):
    return kept
  if not isinstance(manifest, manifest_format.Manifest):
    manifest = manifest_format.read(manifest)
  if class_names is None:
    class_names = sorted({row.label for row in manifest.rows})
  if not class_names:
    raise manifest_format.ManifestError(
        f"{manifest.path}: no usable row ({len(manifest.refused)} refused, see the first: "
        f"{manifest.refused[0]['reason'] if manifest.refused else 'the file has no rows'})"
    )
  return video_examples.build_video_dataset(
      ManifestVideos,
      data_dir,
      built_dir,
      decode,
      class_names,
      num_workers=num_workers,
      decode_timeout_s=decode_timeout_s,
      on_row=on_row,
      beam_options=beam_options,
      manifest=manifest,
  )
