"""TFDS builder for AVE-format directories (real AVE, the synthetic set), written as array_record.

Examples have the features of data_pipelines/video_examples.py; label is a ClassLabel over the
classes of Annotations.txt in order of first appearance, and boxes come from boxes.jsonl.
The video of row `<video_id>` is AVE/<video_id>.mp4, else AVE/<video_id>.<ext> for the first
`ext` of video_examples.VIDEO_EXTENSIONS that exists.

Files that cannot be decoded (also when the decoder crashes or runs past decode_timeout_s) are
skipped and listed, with their reason, in `failures.jsonl` next to the built dataset; a bad file
never aborts a build. Clips built despite decoder notes are listed in `warnings.jsonl`. A
split-file row whose class is not in Annotations.txt stops the build before anything is decoded
(AnnotationError). The directory may be local or on gs:// (ave_format reads through epath).
"""

from __future__ import annotations

import os
from typing import Callable

from etils import epath
import tensorflow_datasets as tfds

from data_pipelines import ave_format
from data_pipelines import clip_examples
from data_pipelines import dataset_spec
from data_pipelines import video_examples

MAX_BOXES_PER_SEGMENT = clip_examples.MAX_BOXES_PER_SEGMENT
AveVideosConfig = video_examples.VideoConfig
BuildSummary = video_examples.BuildSummary  # ave_features and the build CLI name it here


class AveVideos(video_examples.VideoBuilder):
  """An AVE-format directory of videos decoded into frames and log-mel segments."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.1.0": "frames and log_mel stored as raw bytes; damaged_segments",
      "1.0.0": "first version",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Pass the AVE-format directory as manual_dir. It holds AVE/<video_id>.mp4, Annotations.txt and
  trainSet.txt / valSet.txt / testSet.txt (and optionally boxes.jsonl). For the real AVE dataset,
  download AVE_Dataset.zip from https://github.com/YapengTian/AVE-ECCV18 and unzip it.
  """

  def _tasks(self, dl_manager: tfds.download.DownloadManager):
    directory = epath.Path(dl_manager.manual_dir)
    boxes = ave_format.read_boxes(directory)
    videos = _video_files(directory / "AVE")
    class_names = list(self.builder_config.class_names)
    tasks = {}
    for split in video_examples.SPLITS:
      tasks[split] = []
      for row_index, row in enumerate(ave_format.read_split(directory, split)):
        if row.category not in class_names:
          raise ave_format.AnnotationError(
              f"class {row.category!r} of {row.video_id} ({ave_format.SPLIT_FILES[split]}) is "
              "not in Annotations.txt"
          )
        file_name = videos.get(row.video_id, f"{row.video_id}.mp4")
        segment_boxes = tuple(
            (segment, record.boxes) for segment, record in boxes.get(row.video_id, {}).items()
        )
        tasks[split].append(
            clip_examples.ClipTask(
                split=split,
                key=f"{row_index:06d}_{row.video_id}",
                video_id=row.video_id,
                video_path=str(directory / "AVE" / file_name),
                label=class_names.index(row.category),
                event=(row.start, row.end),
                boxes=segment_boxes,
            )
        )
    return tasks


def _video_files(video_dir: epath.Path) -> dict[str, str]:
  """{video_id: file name} for the videos in `video_dir`, preferring the extension listed first
  in VIDEO_EXTENSIONS (.mp4) when a video exists in several containers."""
  rank = {f".{ext}": i for i, ext in enumerate(video_examples.VIDEO_EXTENSIONS)}
  found: dict[str, str] = {}
  found_rank: dict[str, int] = {}
  for name in sorted(path.name for path in video_dir.iterdir()) if video_dir.is_dir() else []:
    stem, ext = os.path.splitext(name)
    ext = ext.lower()
    if ext in rank and rank[ext] < found_rank.get(stem, len(rank)):
      found[stem], found_rank[stem] = name, rank[ext]
  return found


def dataset_dir(data_dir, tag: str, decode: dataset_spec.Decode) -> epath.Path:
  """Where `build` writes the AVE-format directory of `tag` decoded as `decode`."""
  return epath.Path(data_dir) / "ave_videos" / decode.name(tag) / str(AveVideos.VERSION)


def build(
    manual_dir,
    data_dir,
    *,
    tag: str,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
    num_workers: int = 1,
    decode_timeout_s: float = 300.0,
    on_row: Callable[[bool], None] | None = None,
    beam_options=None,
) -> BuildSummary:
  """Decodes the AVE-format directory `manual_dir` (a local path or gs://...) into an
  array_record dataset under `data_dir`.

  on_row(failed) is called once per annotation row as it is written or skipped as unreadable
  (not under Beam). decode_timeout_s: a clip still decoding after this long is a failure (local
  path). beam_options: apache_beam PipelineOptions to build on Beam instead of the local
  process pool (see data_pipelines/video_beam.py).
  """
  manual_dir = epath.Path(manual_dir)
  decode = dataset_spec.Decode(num_segments, frames_per_segment, frame_size)
  return video_examples.build_video_dataset(
      AveVideos,
      data_dir,
      dataset_dir(data_dir, tag, decode),
      decode,
      ave_format.read_class_names(manual_dir),
      num_workers=num_workers,
      decode_timeout_s=decode_timeout_s,
      on_row=on_row,
      beam_options=beam_options,
      manual_dir=manual_dir,
  )
