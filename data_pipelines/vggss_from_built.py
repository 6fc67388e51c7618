"""VGG-SS from an already built VGGSound dataset: the decoded examples taken by video id.

`python -m data_pipelines.build --dataset=vggss --manual_dir=DIR --vggsound_dataset_dir=PATH`:
DIR holds vggss.json (and vggss_test.csv) as for the clip path (data_pipelines/vggss_builder.py);
PATH is a built `vggsound` dataset (`<data_dir>/manifest_videos/vggsound_t<T>_f<F>_s<S>/1.0.0`,
from `--dataset=vggsound`), whose video_id is the clip name `<ytid>_<start:06d>`, the VGG-SS file
id. Each VGG-SS entry's example is that dataset's (any split) frames, log_mel, segment_mask,
has_audio, frame_size and damaged_segments, with the VGG-SS label (over the built dataset's class
list), the empty event and the boxes at the annotated segment, made by the same
`NormalisedBoxDecoder.example` as the clip path: with the same decode settings and class list
(vggsound.csv) the two paths give the same examples. Nothing is decoded again.

The built dataset must have the requested num_segments / frames_per_segment / frame_size (else
VggssInputError). An entry whose id is not in it (its clip was missing or failed when VGGSound
was built) goes to failures.jsonl with that reason. The local path only (no Beam).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import dataset_spec
from data_pipelines import media
from data_pipelines import vggss_builder
from data_pipelines import vggss_format
from data_pipelines import video_examples


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def open_built(
    vggsound_dir, num_segments: int, frames_per_segment: int, frame_size: int, wanted: set[str]
):
  """(builder, {video_id: (split, position)}) of a built VGGSound dataset, for the `wanted` ids
  found in it: the test split is read first (VGG-SS is drawn from VGGSound's test set), the
  others only for ids still missing. VggssInputError when it is not a built dataset or its
  decode settings differ."""
  vggsound_dir = epath.Path(vggsound_dir)
  if not (vggsound_dir / "dataset_info.json").exists():
    raise vggss_builder.VggssInputError(
        f"{vggsound_dir} is not a built dataset (no dataset_info.json); build VGGSound with "
        "python -m data_pipelines.build --dataset=vggsound and pass its directory "
        "<data_dir>/manifest_videos/vggsound_t<T>_f<F>_s<S>/1.0.0"
    )
  builder = tfds.builder_from_directory(str(vggsound_dir))
  features = builder.info.features
  shape = (num_segments, frames_per_segment, frame_size, frame_size, 3)
  if tuple(features["frames"].shape) != shape:
    raise vggss_builder.VggssInputError(
        f"{vggsound_dir} holds frames {tuple(features['frames'].shape)}, not the [T,F,S,S,3] = "
        f"{list(shape)} asked for; pass the --num_segments/--frames_per_segment/--frame_size "
        "it was built with"
    )
  index = {}
  splits = sorted(builder.info.splits, key=lambda split: split != "test")
  for split in splits:
    if wanted <= set(index):
      break
    source = builder.as_data_source(split)
    for position in range(len(source)):
      video_id = _text(source[position]["video_id"])
      if video_id in wanted:
        index.setdefault(video_id, (split, position))
  return builder, index


class VggssFromBuilt(vggss_builder.VggssVideos, skip_registration=True):
  """The VGG-SS examples of vggss_builder.VggssVideos, from a built VGGSound dataset."""

  name = "vggss_videos"  # the same dataset as the clip path's, in the same directory

  def __init__(self, *, vggsound_dir: str, built, index: dict, **kwargs):
    """built, index: of open_built(vggsound_dir, ...)."""
    super().__init__(clips={}, clips_dir=str(vggsound_dir), **kwargs)
    self._vggsound_dir = str(vggsound_dir)
    self._built, self._index = built, index

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    index = self._index
    found = []
    for task in self._tasks(dl_manager)["test"]:
      task = dataclasses.replace(task, video_path=self._vggsound_dir)
      if task.video_id in index:
        found.append(task)
      else:
        self.failures.append(
            task.failure(
                f"not in the built VGGSound dataset at {self._vggsound_dir} (its clip was missing "
                "or failed when VGGSound was built)"
            )
        )
        self._on_row(True)
    if not found:
      raise video_examples.BuildError(
          f"no usable example: all {len(self.failures)} rows failed (the first: "
          f"{self.failures[0]['reason'] if self.failures else 'none'})"
      )
    return {"test": self._examples_from(self._built, index, found)}

  def _examples_from(self, built, index: dict, tasks):
    decoder = self.decoder()
    sources = {split: built.as_data_source(split) for split in built.info.splits}
    for task in tasks:
      split, position = index[task.video_id]
      example = sources[split][position]
      clip = media.DecodedClip(
          frames=np.asarray(example["frames"]),
          log_mel=np.asarray(example["log_mel"]),
          segment_mask=np.asarray(example["segment_mask"], np.bool_),
          has_audio=bool(example["has_audio"]),
          frame_size=tuple(int(v) for v in example["frame_size"]),
          duration_s=0.0,
          damaged_segments=np.asarray(example["damaged_segments"], np.bool_),
      )
      self._on_row(False)
      yield task.key, decoder.example(task, clip)


def build(
    manual_dir,
    data_dir,
    vggsound_dir,
    *,
    annotated_frame: str = vggss_format.DEFAULT_ANNOTATED_FRAME,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
    on_row: Callable[[bool], None] | None = None,
) -> video_examples.BuildSummary:
  """The VGG-SS dataset of vggss_builder.build, from the built VGGSound at `vggsound_dir`; its
  class list is that dataset's. Written where vggss_builder.build writes (kept when built)."""
  decode = dataset_spec.Decode(num_segments, frames_per_segment, frame_size)
  built_dir = vggss_builder.dataset_dir(data_dir, annotated_frame, decode)
  if kept := video_examples.reused(built_dir):
    return kept
  annotations, _, _ = vggss_builder.read_manual_dir(manual_dir)
  built, index = open_built(
      vggsound_dir,
      num_segments,
      frames_per_segment,
      frame_size,
      {entry.file for entry in annotations.entries},
  )
  segment = vggss_builder.decoded_annotated_segment(annotated_frame, num_segments)
  summary = video_examples.build_video_dataset(
      VggssFromBuilt,
      data_dir,
      built_dir,
      decode,
      built.info.features["label"].names,
      on_row=on_row,
      annotations=annotations,
      vggsound_dir=str(vggsound_dir),
      built=built,
      index=index,
      segment=segment,
  )
  vggss_builder.write_defects(
      built_dir, annotated_frame, segment, annotations, source=str(vggsound_dir)
  )
  return summary
