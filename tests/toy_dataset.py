"""A toy dataset's builder module: the example of docs/design.md §6 "Adding a dataset".

Its examples are generated here (no media files, no decoding): in each video of class `left`
or `right` a bright square sits in that half of the frame and a tone fills that class's mel
bands during one event of 2 segments; the square's box annotates the event segments. The
record that registers it (a DatasetSpec naming ToyBuild) is in tests/test_toy_dataset.py.
"""

from __future__ import annotations

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import dataset_spec
from data_pipelines import log_mel
from data_pipelines import video_examples

CLASS_NAMES = ("left", "right")
SPLIT_SIZES = {"train": 16, "val": 8, "test": 8}
EVENT_SEGMENTS = 2
BACKGROUND_LEVEL, SQUARE_LEVEL = 40, 220


def example(split: str, index: int, decode: dataset_spec.Decode, max_boxes: int) -> dict:
  """One toy video with the features of data_pipelines/video_examples.py: frames [T,F,S,S,3],
  log_mel [T,96,64], boxes [T,K,4] in frame pixels at the event segments."""
  t, f, s = decode.num_segments, decode.frames_per_segment, decode.frame_size
  rng = np.random.default_rng([list(SPLIT_SIZES).index(split), index])
  label = index % len(CLASS_NAMES)
  start = int(rng.integers(0, t - EVENT_SEGMENTS + 1))
  end = start + EVENT_SEGMENTS
  side = s // 4
  x0 = int(rng.integers(0, s // 2 - side + 1)) + label * (s // 2)
  y0 = int(rng.integers(0, s - side + 1))
  frames = np.full((t, f, s, s, 3), BACKGROUND_LEVEL, np.uint8)
  frames[start:end, :, y0 : y0 + side, x0 : x0 + side] = SQUARE_LEVEL
  mel = np.full((t, log_mel.FRAMES_PER_SEGMENT, log_mel.NUM_MEL_BINS), -4.0, np.float32)
  bands = slice(label * 16, label * 16 + 16)
  mel[start:end, :, bands] = 2.0
  boxes = np.zeros((t, max_boxes, 4), np.float32)
  box_mask = np.zeros((t, max_boxes), bool)
  boxes[start:end, 0] = (x0, y0, x0 + side, y0 + side)
  box_mask[start:end, 0] = True
  segments = np.arange(t)
  inside = (segments >= start) & (segments < end)
  return {
      "video_id": f"toy_{split}_{index:03d}",
      "label": label,
      "event_start": np.int32(start),
      "event_end": np.int32(end),
      "segment_labels": np.where(inside, label, len(CLASS_NAMES)).astype(np.int32),
      "frames": frames,
      "log_mel": mel,
      "segment_mask": np.ones(t, bool),
      "has_audio": True,
      "frame_size": np.array([s, s], np.int32),
      "boxes": boxes,
      "box_mask": box_mask,
      "damaged_segments": np.zeros(t, bool),
  }


class ToyVideos(video_examples.VideoBuilder, skip_registration=True):
  """The toy examples, written by the shared video builder body (no clips to decode)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "first version"}

  def _tasks(self, dl_manager):
    del dl_manager
    return {}

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._examples(split, size) for split, size in SPLIT_SIZES.items()}

  def _examples(self, split: str, size: int):
    decode = dataset_spec.Decode.of(self.builder_config)
    for index in range(size):
      self._on_row(False)
      yield f"{index:03d}", example(split, index, decode, self.MAX_BOXES)


class ToyBuild:
  """The toy set's DatasetBuilder: generated here, so `plan` needs no download."""

  def dataset_dir(self, data_dir, decode: dataset_spec.Decode, options) -> epath.Path:
    del options
    return epath.Path(data_dir) / "toy_videos" / decode.name("toy") / str(ToyVideos.VERSION)

  def plan(self, request: dataset_spec.BuildRequest) -> tuple[int, dict]:
    del request
    return sum(SPLIT_SIZES.values()), {}

  def build(self, request: dataset_spec.BuildRequest, planned: dict) -> epath.Path:
    del planned
    built_dir = self.dataset_dir(request.data_dir, request.decode, request.options)
    if video_examples.reused(built_dir) is None:
      video_examples.build_video_dataset(
          ToyVideos,
          request.data_dir,
          built_dir,
          request.decode,
          CLASS_NAMES,
          on_row=request.on_row,
      )
    return built_dir
