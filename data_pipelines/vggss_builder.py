"""TFDS builder for VGG-SS: the annotated VGGSound clips, with their boxes, as a test split.

manual_dir holds `vggss.json` and optionally `vggss_test.csv` (directly or under metadata/, as
in the LVS repository), optionally `vggsound.csv`, and the VGGSound clips anywhere below it,
named `<ytid>_<start:06d>.<ext>` (the VGG-SS file id; data_pipelines/manifest_converters.py).

Examples have the features of data_pipelines/video_examples.py, all in split `test`: video_id is
the VGG-SS file id, label a ClassLabel over the sorted labels of vggsound.csv when it is there
(the class list of a VGGSound build, so a VGGSound-trained model's indices apply), else over the
sorted VGG-SS classes; the event is empty, event_start = event_end = 0 (VGG-SS has no temporal
annotation, so the temporal pointing game has no trial and segment_labels are background); boxes
[T,MAX_BOXES,4] hold the entry's usable boxes in original-frame pixels (the normalised boxes
times the decoded frame size) at the annotated segment only (`vggss_format.annotated_segment`
of the `annotated_frame` option), box_mask marks them. VGG-SS has up to 7 boxes per entry, so
MAX_BOXES is 8, not the 4 of the other video datasets.

Rows whose clip is missing or undecodable, rows without a usable box and rows whose class is not
in the class list go to failures.jsonl with the reason; the release's defects (sentinel and
degenerate boxes, entries without a box, test-list mismatches) are counted in
`annotation_defects.json` next to the dataset and in `summary_line`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import clip_examples
from data_pipelines import dataset_spec
from data_pipelines import manifest_converters
from data_pipelines import media
from data_pipelines import vggss_format
from data_pipelines import video_examples

MAX_BOXES = 8
NO_EVENT = (0, 0)  # VGG-SS has no temporal annotation: an empty event, no temporal trial
DEFECTS_FILE = "annotation_defects.json"
METADATA_DIRS = ("", "metadata")


class VggssInputError(ValueError):
  """manual_dir lacks vggss.json. The message says where to get it."""


INSTRUCTIONS = """\
Download metadata/vggss.json and metadata/vggss_test.csv from
https://github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way (the same files are in
stoneMo/EZ-VSL and kaistmm/SSLalignment) into {manual_dir}, and put the VGGSound clips of its
entries anywhere under {manual_dir}, named <ytid>_<start:06d>.mp4 (seconds [start, start+10) of
https://www.youtube.com/watch?v=<ytid>), e.g. those of a VGGSound download. Add vggsound.csv
(https://www.robots.ox.ac.uk/~vgg/data/vggsound/) so that labels use VGGSound's class list."""


def find_metadata(manual_dir: epath.Path, name: str) -> epath.Path | None:
  """manual_dir/<name> or manual_dir/metadata/<name>, whichever exists."""
  for directory in METADATA_DIRS:
    path = manual_dir / directory / name if directory else manual_dir / name
    if path.exists():
      return path
  return None


@dataclasses.dataclass(frozen=True)
class NormalisedBoxDecoder(clip_examples.ClipDecoder):
  """A ClipDecoder whose tasks carry boxes normalised to the frame: they are scaled to the
  decoded frame's pixels, up to MAX_BOXES per segment."""

  def example(self, task: clip_examples.ClipTask, clip: media.DecodedClip) -> dict:
    example = super().example(dataclasses.replace(task, boxes=()), clip)
    width, height = clip.frame_size
    boxes = np.zeros((self.num_segments, MAX_BOXES, 4), np.float32)
    box_mask = np.zeros((self.num_segments, MAX_BOXES), np.bool_)
    for segment, segment_boxes in task.boxes:
      kept = np.asarray(segment_boxes[:MAX_BOXES], np.float32).reshape(-1, 4)
      boxes[segment, : len(kept)] = kept * np.array([width, height, width, height], np.float32)
      box_mask[segment, : len(kept)] = True
    example["boxes"], example["box_mask"] = boxes, box_mask
    return example


class VggssVideos(video_examples.VideoBuilder):
  """The VGG-SS clips decoded into frames and log-mel segments, boxes at the annotated segment."""

  MAX_BOXES = MAX_BOXES  # the module's: more boxes per segment than the other datasets

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "first version"}

  def __init__(
      self,
      *,
      annotations: vggss_format.VggssAnnotations,
      clips: dict[str, str],
      clips_dir: str,
      segment: int,
      **kwargs,
  ):
    super().__init__(**kwargs)
    self._annotations = annotations
    self._clips = clips
    self._clips_dir = clips_dir
    self._segment = segment

  def decoder(self) -> clip_examples.ClipDecoder:
    cfg = self.builder_config
    return NormalisedBoxDecoder(
        cfg.num_segments, cfg.frames_per_segment, cfg.frame_size, num_classes=len(cfg.class_names)
    )

  def _tasks(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # the annotations and the clip index are given
    class_index = {name: i for i, name in enumerate(self.builder_config.class_names)}
    tasks = {split: [] for split in video_examples.SPLITS}
    for index, entry in enumerate(self._annotations.entries):
      path = self._clips.get(entry.file, str(epath.Path(self._clips_dir) / f"{entry.file}.mp4"))
      task = clip_examples.ClipTask(
          split="test",
          key=f"{index:05d}_{entry.file}",
          video_id=entry.file,
          video_path=path,
          label=class_index.get(entry.class_name, -1),
          event=NO_EVENT,
          boxes=((self._segment, entry.boxes),) if entry.boxes else (),
      )
      reason = None
      if not entry.boxes:
        reason = vggss_format.no_box_reason(entry)
      elif entry.class_name not in class_index:
        reason = f"class {entry.class_name!r} is not in the class list ({len(class_index)})"
      if reason is not None:
        self.failures.append(task.failure(f"{vggss_format.entry_name(entry)}: {reason}"))
        self._on_row(True)
      else:
        tasks["test"].append(task)
    return tasks


def dataset_dir(data_dir, annotated_frame: str, decode: dataset_spec.Decode) -> epath.Path:
  """Where `build` writes the dataset of boxes at `annotated_frame` under `data_dir`."""
  name = decode.name(f"vggss_{annotated_frame}")
  return epath.Path(data_dir) / "vggss_videos" / name / str(VggssVideos.VERSION)


def read_manual_dir(manual_dir) -> tuple[vggss_format.VggssAnnotations, tuple[str, ...], str]:
  """(annotations, class list, where the class list comes from). Raises VggssInputError."""
  manual_dir = epath.Path(manual_dir)
  json_path = find_metadata(manual_dir, "vggss.json")
  if json_path is None:
    raise VggssInputError(
        f"{manual_dir} lacks vggss.json.\n" + INSTRUCTIONS.format(manual_dir=manual_dir)
    )
  test_csv = find_metadata(manual_dir, "vggss_test.csv")
  annotations = vggss_format.read(
      json_path, vggss_format.read_test_list(test_csv) if test_csv else None
  )
  vggsound_csv = find_metadata(manual_dir, "vggsound.csv")
  if vggsound_csv is not None:
    rows = manifest_converters.read_vggsound_csv(vggsound_csv)
    return annotations, tuple(sorted({label for _, _, label, _ in rows})), str(vggsound_csv)
  return (
      annotations,
      tuple(sorted({entry.class_name for entry in annotations.entries})),
      "the VGG-SS classes (no vggsound.csv)",
  )


def decoded_annotated_segment(annotated_frame: str, num_segments: int) -> int:
  """The segment holding `annotated_frame`; VggssInputError when it is not among the
  `num_segments` decoded."""
  segment = vggss_format.annotated_segment(annotated_frame)
  if not 0 <= segment < num_segments:
    raise VggssInputError(
        f"the annotated frame {annotated_frame!r} is in segment {segment}, "
        f"past the {num_segments} segments decoded"
    )
  return segment


def build(
    manual_dir,
    data_dir,
    *,
    annotated_frame: str = vggss_format.DEFAULT_ANNOTATED_FRAME,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
    num_workers: int = 1,
    decode_timeout_s: float = 300.0,
    on_row: Callable[[bool], None] | None = None,
    beam_options=None,
) -> video_examples.BuildSummary:
  """Decodes the VGG-SS clips under `manual_dir` into `data_dir` (kept when already built)."""
  decode = dataset_spec.Decode(num_segments, frames_per_segment, frame_size)
  built_dir = dataset_dir(data_dir, annotated_frame, decode)
  if kept := video_examples.reused(built_dir):
    return kept
  annotations, class_names, _ = read_manual_dir(manual_dir)
  segment = decoded_annotated_segment(annotated_frame, num_segments)
  summary = video_examples.build_video_dataset(
      VggssVideos,
      data_dir,
      built_dir,
      decode,
      class_names,
      num_workers=num_workers,
      decode_timeout_s=decode_timeout_s,
      on_row=on_row,
      beam_options=beam_options,
      annotations=annotations,
      clips=manifest_converters.index_clips(manual_dir),
      clips_dir=str(manual_dir),
      segment=segment,
  )
  write_defects(built_dir, annotated_frame, segment, annotations)
  return summary


def write_defects(
    built_dir: epath.Path,
    annotated_frame: str,
    segment: int,
    annotations: vggss_format.VggssAnnotations,
    source: str = "",
):
  """annotation_defects.json of a build; source: the built VGGSound dataset read, if one."""
  (built_dir / DEFECTS_FILE).write_text(
      json.dumps(
          {
              "annotated_frame": annotated_frame,
              "annotated_segment": segment,
              "entries": len(annotations.entries),
              **annotations.counts,
              **({"source": source} if source else {}),
          },
          indent=2,
      )
      + "\n"
  )


def defects_line(built_dir) -> str:
  """`vggss.json: N entries, sentinel boxes S, ...` from the built dataset's defects file."""
  path = epath.Path(built_dir) / DEFECTS_FILE
  if not path.exists():
    return ""
  counts = json.loads(path.read_text())
  details = ", ".join(
      f"{key.replace('_', ' ')} {value}"
      for key, value in counts.items()
      if key not in ("entries", "annotated_frame", "annotated_segment", "source")
  )
  source = f"; examples from the built VGGSound {counts['source']}" if "source" in counts else ""
  return (
      f"vggss.json: {counts['entries']} entries ({details}); boxes at segment "
      f"{counts['annotated_segment']} (annotated_frame={counts['annotated_frame']}){source}"
  )
