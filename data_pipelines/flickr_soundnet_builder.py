"""TFDS builder for the Flickr-SoundNet sound-source test set (Senocak et al. 2018, as LVS,
EZ-VSL and SSL-alignment score it), with its annotators' boxes, as a test split.

manual_dir holds `flickr_test.csv` (directly or under metadata/), `Annotations/<id>.xml`, and per
id, anywhere below it, a frame image `<id>.jpg` (.jpeg, .png) and an audio file `<id>.wav`
(.flac, .mp3, .ogg, .m4a) -- LVS's `frames/<id>.jpg`, `audio/<id>.wav` -- or a video `<id>.mp4`
(any of video_examples.VIDEO_EXTENSIONS), used when the image or the audio is missing.

Examples have the features of data_pipelines/video_examples.py, all in split `test`, with
boxes [T,MAX_BOXES,4] (MAX_BOXES of the VGG-SS build: 8, not 4, so that no annotator's box is
cut). video_id is the Flickr id; Flickr-SoundNet has no classes: label is 0 of the one-name
ClassLabel (UNLABELLED), the event is empty (no temporal trial).

An image with its audio: the image is the frame of every valid segment; the audio is cut to the
T seconds centred on its middle (the image is the frame at the middle of its sound, as the
references pair them), padded when shorter; segments past its end are padded (segment_mask
False); the annotated segment is the one holding the audio's middle (T // 2 for an audio of at
least T s). A video: media.decode_clip from t = 0; the annotated segment holds the middle of
min(duration, T). The boxes sit at the annotated segment only, in pixels of the frame as stored
(frame_size W, H): an annotation coordinate v on the 256-px scale becomes v * W / 256 (x) or
v * H / 256 (y); the references squash the image to 256 x 256 to annotate and to 224 x 224 to
score, so this is the same place on the frame.

Rows whose annotation, image or audio is missing or unreadable, and rows with more boxes than
MAX_BOXES, go to failures.jsonl with the reason; the counts (and degenerate boxes) are written
to `annotation_defects.json` next to the dataset and printed by `defects_line`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import posixpath
from typing import Callable

import av
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import clip_examples
from data_pipelines import dataset_spec
from data_pipelines import flickr_soundnet_format
from data_pipelines import log_mel
from data_pipelines import media
from data_pipelines import media_audio
from data_pipelines import media_streams
from data_pipelines import vggss_builder
from data_pipelines import video_examples

MAX_BOXES = vggss_builder.MAX_BOXES
UNLABELLED = "unlabelled"  # the one class name: Flickr-SoundNet has no class labels
NO_EVENT = (0, 0)
DEFECTS_FILE = "annotation_defects.json"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg", "m4a")

INSTRUCTIONS = """\
Download metadata/flickr_test.csv from https://github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way
(stoneMo/EZ-VSL has one with 250 ids) and the Flickr-SoundNet test set it links (Annotations/,
frames/, audio/) into {manual_dir}, so that it holds flickr_test.csv (or metadata/flickr_test.csv),
Annotations/<id>.xml and, per id, <id>.jpg and <id>.wav anywhere below it (or a video <id>.mp4)."""


class FlickrInputError(ValueError):
  """manual_dir lacks flickr_test.csv or Annotations/. The message says where to get them."""


def _segment_of(time_s: float, num_valid: int) -> int:
  """The segment holding `time_s`, at most the last valid one."""
  return max(0, min(int(math.floor(time_s)), num_valid - 1))


def _decode_still(
    image_path: str, audio_path: str, num_segments: int, frames_per_segment: int, frame_size: int
) -> tuple[media.DecodedClip, int]:
  """(the clip of an image and its audio, the annotated segment); see the module doc."""
  with media_streams.open_container(image_path) as container:
    frame = next(container.decode(video=0), None) if container.streams.video else None
    if frame is None:
      raise media.MediaError(image_path, "no decodable image")
    rgb = media.resize_and_centre_crop(frame, frame_size)
    size = (frame.width, frame.height)
  with media_streams.open_container(audio_path) as container:
    declared = container.duration
  seconds = float(declared) / av.time_base if declared else float(num_segments)
  waveform, has_audio = media_audio.read_audio_16k_mono(audio_path, seconds)
  start_s = max(0.0, seconds / 2 - num_segments / 2)
  start = int(round(start_s * log_mel.SAMPLE_RATE))
  window = waveform[start : start + num_segments * log_mel.SAMPLES_PER_SEGMENT]
  valid = max(1, min(num_segments, math.ceil(seconds - start_s)))
  segment_mask = np.arange(num_segments) < valid
  frames = np.zeros((num_segments, frames_per_segment, frame_size, frame_size, 3), np.uint8)
  frames[segment_mask] = rgb
  clip = media.DecodedClip(
      frames=frames,
      log_mel=log_mel.segment_log_mel(window, num_segments),
      segment_mask=segment_mask,
      has_audio=has_audio,
      frame_size=size,
      duration_s=seconds,
      warnings=[] if has_audio else [f"{audio_path}: no audio samples; log-mel of silence"],
      damaged_segments=np.zeros(num_segments, np.bool_),
  )
  return clip, _segment_of(seconds / 2 - start_s, valid)


@dataclasses.dataclass(frozen=True)
class FlickrDecoder(clip_examples.ClipDecoder):
  """task.video_path: the frame image (audio_paths[task.key] its audio) or a video (no entry in
  audio_paths). task.boxes: ((0, boxes on the 256-px scale),); they are placed, in the frame's
  pixels, at the annotated segment."""

  audio_paths: dict = dataclasses.field(default_factory=dict)

  def __call__(self, task: clip_examples.ClipTask) -> clip_examples.Decoded:
    audio_path = self.audio_paths.get(task.key)
    if audio_path is None:  # a video: decoded as every clip, then placed here
      return super().__call__(task)
    for path in (task.video_path, audio_path):
      if not epath.Path(path).exists():
        return clip_examples.Decoded(task.key, failure=task.failure(f"file not found: {path}"))
    try:
      clip, segment = _decode_still(
          task.video_path, audio_path, self.num_segments, self.frames_per_segment, self.frame_size
      )
    except media.MediaError as error:
      return clip_examples.Decoded(task.key, failure=task.failure(f"MediaError: {error.reason}"))
    except Exception as error:  # A bad file must never abort the build: report and skip it.
      return clip_examples.Decoded(
          task.key, failure=task.failure(f"{type(error).__name__}: {error}")
      )
    return clip_examples.Decoded(
        task.key,
        example=self._placed(task, clip, segment),
        warning=task.warning(clip.warnings) if clip.warnings else None,
    )

  def example(self, task: clip_examples.ClipTask, clip: media.DecodedClip) -> dict:
    """A video's example: the boxes at the segment holding the middle of its decoded part."""
    valid = max(1, int(np.sum(clip.segment_mask)))
    return self._placed(task, clip, _segment_of(min(clip.duration_s, valid) / 2, valid))

  def _placed(self, task: clip_examples.ClipTask, clip: media.DecodedClip, segment: int) -> dict:
    example = super().example(dataclasses.replace(task, boxes=()), clip)
    width, height = clip.frame_size
    scale = np.array([width, height, width, height], np.float64) / (
        flickr_soundnet_format.IMAGE_SIZE
    )
    boxes = np.zeros((self.num_segments, MAX_BOXES, 4), np.float32)
    box_mask = np.zeros((self.num_segments, MAX_BOXES), np.bool_)
    kept = np.asarray(task.boxes[0][1] if task.boxes else (), np.float64).reshape(-1, 4)
    boxes[segment, : len(kept)] = kept * scale
    box_mask[segment, : len(kept)] = True
    example["boxes"], example["box_mask"] = boxes, box_mask
    return example


def index_media(manual_dir: epath.Path) -> dict[str, dict[str, str]]:
  """{kind: {id: path}} for kind image, audio, video: files under manual_dir by stem (the first
  in sorted order when a stem repeats)."""
  kinds = {
      **{ext: "image" for ext in IMAGE_EXTENSIONS},
      **{ext: "audio" for ext in AUDIO_EXTENSIONS},
      **{ext: "video" for ext in video_examples.VIDEO_EXTENSIONS},
  }
  found = {"image": {}, "audio": {}, "video": {}}
  if "://" in str(manual_dir):
    paths = [str(path) for path in manual_dir.rglob("*")]
  else:
    paths = [os.path.join(root, name) for root, _, names in os.walk(manual_dir) for name in names]
  for path in sorted(paths):
    stem, ext = posixpath.splitext(posixpath.basename(path))
    kind = kinds.get(ext[1:].lower())
    if kind is not None:
      found[kind].setdefault(stem, path)
  return found


@dataclasses.dataclass(frozen=True)
class FlickrRows:
  """The test list's ids, read against Annotations/ and the media found."""

  tasks: list[clip_examples.ClipTask]
  audio_paths: dict[str, str]  # task key -> audio file, for image tasks
  failures: list[dict]  # failures.jsonl records of the refused rows
  counts: dict  # ids, duplicate_ids, ids_without_annotation, ids_without_media, from_video,
  #               degenerate_boxes, more_than_max_boxes


def read_manual_dir(manual_dir) -> FlickrRows:
  """The rows of the build. Raises FlickrInputError when the list or Annotations/ lack."""
  manual_dir = epath.Path(manual_dir)
  test_csv = vggss_builder.find_metadata(manual_dir, "flickr_test.csv")
  annotation_dir = manual_dir / "Annotations"
  if test_csv is None or not annotation_dir.exists():
    missing = "flickr_test.csv" if test_csv is None else "Annotations/"
    raise FlickrInputError(
        f"{manual_dir} lacks {missing}.\n" + INSTRUCTIONS.format(manual_dir=manual_dir)
    )
  listed = flickr_soundnet_format.read_test_list(test_csv)
  ids = list(dict.fromkeys(listed))
  found = index_media(manual_dir)
  counts = collections.Counter(
      ids=len(ids),
      duplicate_ids=len(listed) - len(ids),
      ids_without_annotation=0,
      ids_without_media=0,
      from_video=0,
      degenerate_boxes=0,
      more_than_max_boxes=0,
  )
  tasks, audio_paths, failures = [], {}, []
  for index, image_id in enumerate(ids):
    image, audio = found["image"].get(image_id), found["audio"].get(image_id)
    video = found["video"].get(image_id)
    path = image or video or str(manual_dir / "frames" / f"{image_id}.jpg")
    task = clip_examples.ClipTask(
        split="test",
        key=f"{index:05d}_{image_id}",
        video_id=image_id,
        video_path=path,
        label=0,
        event=NO_EVENT,
    )
    reason = None
    xml = annotation_dir / f"{image_id}.xml"
    try:
      annotation = flickr_soundnet_format.read_annotation(xml) if xml.exists() else None
    except flickr_soundnet_format.FlickrSoundnetError as error:
      annotation, reason = None, str(error)
    if annotation is None:
      counts["ids_without_annotation"] += 1
      reason = reason or f"no annotation {xml}"
    elif len(annotation.boxes) > MAX_BOXES:
      counts["more_than_max_boxes"] += 1
      reason = f"{len(annotation.boxes)} boxes, more than the {MAX_BOXES} the dataset stores"
    elif not (image and audio) and not video:
      counts["ids_without_media"] += 1
      lacking = [name for name, value in (("image", image), ("audio", audio)) if not value]
      reason = (
          f"no {' and no '.join(lacking)} file for id {image_id} under {manual_dir} "
          f"(<id>.jpg and <id>.wav, or <id>.mp4)"
      )
    if reason is not None:
      failures.append(task.failure(reason))
      continue
    counts["degenerate_boxes"] += annotation.degenerate_boxes
    task = dataclasses.replace(
        task, video_path=image if image and audio else video, boxes=((0, annotation.boxes),)
    )
    if image and audio:
      audio_paths[task.key] = audio
    else:
      counts["from_video"] += 1
    tasks.append(task)
  return FlickrRows(tasks, audio_paths, failures, dict(counts))


class FlickrSoundnetVideos(video_examples.VideoBuilder):
  """The Flickr-SoundNet test set as video examples, boxes at the annotated segment."""

  MAX_BOXES = MAX_BOXES  # the module's: more boxes per segment than the other datasets

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "first version"}

  def __init__(self, *, rows: FlickrRows, **kwargs):
    super().__init__(**kwargs)
    self._rows = rows

  def decoder(self) -> clip_examples.ClipDecoder:
    cfg = self.builder_config
    return FlickrDecoder(
        cfg.num_segments,
        cfg.frames_per_segment,
        cfg.frame_size,
        num_classes=len(cfg.class_names),
        audio_paths=self._rows.audio_paths,
    )

  def _tasks(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # the rows are given
    for failure in self._rows.failures:
      self.failures.append(failure)
      self._on_row(True)
    return {"train": [], "val": [], "test": list(self._rows.tasks)}


def dataset_dir(data_dir, decode: dataset_spec.Decode) -> epath.Path:
  """Where `build` writes the dataset under `data_dir`."""
  name = decode.name("flickr_soundnet")
  return epath.Path(data_dir) / "flickr_soundnet_videos" / name / str(FlickrSoundnetVideos.VERSION)


def build(
    manual_dir,
    data_dir,
    *,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
    num_workers: int = 1,
    decode_timeout_s: float = 300.0,
    on_row: Callable[[bool], None] | None = None,
    beam_options=None,
) -> video_examples.BuildSummary:
  """Decodes the Flickr-SoundNet test set under `manual_dir` into `data_dir` (kept when built)."""
  decode = dataset_spec.Decode(num_segments, frames_per_segment, frame_size)
  built_dir = dataset_dir(data_dir, decode)
  if kept := video_examples.reused(built_dir):
    return kept
  rows = read_manual_dir(manual_dir)
  summary = video_examples.build_video_dataset(
      FlickrSoundnetVideos,
      data_dir,
      built_dir,
      decode,
      (UNLABELLED,),
      num_workers=num_workers,
      decode_timeout_s=decode_timeout_s,
      on_row=on_row,
      beam_options=beam_options,
      rows=rows,
  )
  (built_dir / DEFECTS_FILE).write_text(json.dumps(rows.counts, indent=2) + "\n")
  return summary


def defects_line(built_dir) -> str:
  """`flickr_test.csv: N ids (duplicate ids D, ...)` from the built dataset's defects file."""
  path = epath.Path(built_dir) / DEFECTS_FILE
  if not path.exists():
    return ""
  counts = json.loads(path.read_text())
  details = ", ".join(
      f"{key.replace('_', ' ')} {value}" for key, value in counts.items() if key != "ids"
  )
  return f"flickr_test.csv: {counts['ids']} ids ({details})"
