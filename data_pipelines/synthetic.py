"""Seeded synthetic audio-visual event videos written as real MP4s in the AVE layout.

Each video lasts `num_segments` one-second segments. Class c is a visual object (shape and
colour, see `synthetic_scene`) paired with a harmonic tone. In every video:

* the event class e (uniform) has its object visible all through the video (static
  position) and its tone sounding during ONE contiguous run of 2..8 segments [start, end);
* `num_distractor_objects` silent objects of other classes are visible all through;
* one distractor tone of a class d (d != e, d not among the visible objects) sounds for a
  contiguous run that does not overlap the event (absent only if num_segments < 4);
* the audio carries low-level white noise, the frames a grey gradient and mild pixel noise.

So e is the only class both seen and heard. The event and distractor runs are drawn as an
exchangeable pair (lengths (a, b) uniform over 2..8 with a + b <= num_segments, order random),
so no audio-only cue such as "the longer tone" or "the earlier tone" identifies the event:
audio alone is at chance between the two tones, vision alone between the visible objects
(all objects are placed first, then the event object takes one of them at random, so its size,
position and colour tell it apart no better than chance).
Ground truth boxes are tight boxes of the drawn event object, [x0, y0, x1, y1] in
original-frame pixels with x1, y1 exclusive.

The set is written as an AVE-format directory of MP4s by data_pipelines/synthetic_files.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines import synthetic_scene as scene

EVENT_SEGMENTS_RANGE = (2, 8)  # inclusive
OBJECT_SIZE_RANGE_PX = (26, 36)  # at 128 px frames; scaled with min(H, W)
OBJECT_GAP_PX = 4
STATIC_PIXEL_NOISE_STD = 3.0
TEMPORAL_PIXEL_NOISE_LEVELS = 2  # per-frame noise uniform on {-2..2} grey levels (std 1.4)
TONE_AMPLITUDE_RANGE = (0.12, 0.25)
AUDIO_NOISE_STD_RANGE = (0.004, 0.012)
# Bumped whenever the same settings generate different videos; hashed into the cached set's
# name (synthetic_dataset.tag). 2: the event object takes a random square after placement.
GENERATOR_VERSION = 2


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  num_classes: int = 6
  num_train: int = 600
  num_val: int = 100
  num_test: int = 100
  num_segments: int = 10
  frame_height: int = 128
  frame_width: int = 128
  fps: int = 8
  sample_rate: int = 16000
  seed: int = 0
  num_distractor_objects: int = 2

  def __post_init__(self):
    if not self.num_distractor_objects + 2 <= self.num_classes <= scene.MAX_CLASSES:
      raise ValueError(
          f"num_classes must be in [num_distractor_objects + 2, "
          f"{scene.MAX_CLASSES}], got {self.num_classes}"
      )
    if self.num_segments < EVENT_SEGMENTS_RANGE[0]:
      raise ValueError(f"num_segments must be >= {EVENT_SEGMENTS_RANGE[0]}")
    if min(self.frame_height, self.frame_width) < 64:
      raise ValueError("frames must be at least 64x64")
    if min(self.num_train, self.num_val, self.num_test) < 0 or self.num_videos == 0:
      raise ValueError("split counts must be >= 0 and not all zero")

  @property
  def num_videos(self) -> int:
    return self.num_train + self.num_val + self.num_test

  @property
  def class_names(self) -> list[str]:
    return [scene.class_name(c) for c in range(self.num_classes)]


# The settings a config's `synthetic` section holds (configs/synthetic.py) and the segment/frame
# sizes the set is built at; `smoke` shrinks the splits for tests. Their hash names the cached
# dataset (data_pipelines/synthetic_dataset.py), so a change here builds a new set.
CONFIG_SETTINGS = dict(
    num_classes=6,
    num_train=600,
    num_val=100,
    num_test=100,
    seed=0,
    frame_height=128,
    frame_width=128,
    fps=8,
)
SMOKE_SPLITS = dict(num_train=24, num_val=8, num_test=8)
BUILD_SIZES = dict(num_segments=10, frames_per_segment=1, frame_size=64)
PRESETS = ("", "smoke")


def default_settings(preset: str = "") -> dict:
  """The generator settings of a preset: '' (the default set) or 'smoke' (a few videos)."""
  if preset not in PRESETS:
    raise ValueError(f"unknown synthetic preset {preset!r}; known: {list(PRESETS)}")
  return {**CONFIG_SETTINGS, **(SMOKE_SPLITS if preset == "smoke" else {})}


@dataclasses.dataclass(frozen=True)
class VideoTruth:
  """Everything that was placed in one video. Segments are integer seconds, ends exclusive."""

  video_id: str
  split: str
  event_class: int
  event_start: int
  event_end: int
  event_box: tuple[int, int, int, int]  # tight box [x0, y0, x1, y1] of the event object
  object_classes: tuple[int, ...]  # visible objects, event object first
  object_squares: tuple[tuple[int, int, int], ...]  # (left, top, size) placement squares
  object_boxes: tuple[tuple[int, int, int, int], ...]  # tight boxes, same order
  distractor_sound_class: int | None
  distractor_sound_start: int | None
  distractor_sound_end: int | None

  @property
  def event_segments(self) -> range:
    return range(self.event_start, self.event_end)

  @property
  def audible_classes(self) -> tuple[int, ...]:
    extra = () if self.distractor_sound_class is None else (self.distractor_sound_class,)
    return (self.event_class,) + extra


def video_id(index: int) -> str:
  return f"syn{index:05d}"


def split_of(spec: SyntheticSpec, index: int) -> str:
  if index < spec.num_train:
    return "train"
  return "val" if index < spec.num_train + spec.num_val else "test"


def _rng(spec: SyntheticSpec, index: int, stream: int) -> np.random.Generator:
  """Independent per-(video, stream) generator: videos can be made in any order."""
  return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(index, stream)))


def _event_and_distractor_runs(rng, num_segments):
  """Non-overlapping [start, end) runs for the event and the distractor tone.

  The two runs are exchangeable: their lengths are a pair drawn uniformly from
  {(a, b): a, b in EVENT_SEGMENTS_RANGE, a + b <= num_segments}, the free segments are split
  uniformly into the gaps before, between and after them, and which run comes first is a coin
  flip. Returns (event_run, distractor_run); distractor_run is None when two runs cannot fit.
  """
  low, high = EVENT_SEGMENTS_RANGE
  pairs = [
      (a, b) for a in range(low, high + 1) for b in range(low, high + 1) if a + b <= num_segments
  ]
  if not pairs:
    length = int(rng.integers(low, min(high, num_segments) + 1))
    start = int(rng.integers(0, num_segments - length + 1))
    return (start, start + length), None
  event_length, distractor_length = pairs[int(rng.integers(len(pairs)))]
  free = num_segments - event_length - distractor_length
  first_gap, second_cut = np.sort(rng.integers(0, free + 1, size=2))
  event_first = bool(rng.random() < 0.5)
  first_length, second_length = (
      (event_length, distractor_length) if event_first else (distractor_length, event_length)
  )
  first = (int(first_gap), int(first_gap) + first_length)
  second_start = first[1] + int(second_cut - first_gap)
  second = (second_start, second_start + second_length)
  return (first, second) if event_first else (second, first)


def _place_squares(rng, num_squares, height, width):
  """Non-overlapping (left, top, size) squares at least OBJECT_GAP_PX apart."""
  scale = min(height, width) / 128.0
  squares = []
  for _ in range(1000 * num_squares):
    if len(squares) == num_squares:
      break
    size = int(round(rng.uniform(*OBJECT_SIZE_RANGE_PX) * scale))
    left = int(rng.integers(0, width - size + 1))
    top = int(rng.integers(0, height - size + 1))
    if all(
        left >= x + s + OBJECT_GAP_PX
        or x >= left + size + OBJECT_GAP_PX
        or top >= y + s + OBJECT_GAP_PX
        or y >= top + size + OBJECT_GAP_PX
        for x, y, s in squares
    ):
      squares.append((left, top, size))
  if len(squares) != num_squares:
    raise RuntimeError("could not place the objects; frames too small")
  return squares


def object_masks(spec: SyntheticSpec, truth: VideoTruth) -> np.ndarray:
  """Binary masks of the visible objects, bool [num_objects, H, W], event object first."""
  return np.stack(
      [
          scene.shape_mask(scene.SHAPES[c], left, top, size, spec.frame_height, spec.frame_width)
          for c, (left, top, size) in zip(truth.object_classes, truth.object_squares)
      ]
  )


def sample_scene(spec: SyntheticSpec, index: int) -> VideoTruth:
  """The layout of video `index` (cheap: no pixels or samples are rendered)."""
  rng = _rng(spec, index, stream=0)
  classes = [int(c) for c in rng.permutation(spec.num_classes)]
  event_class = classes[0]
  visible = classes[: 1 + spec.num_distractor_objects]
  (event_start, event_end), distractor_run = _event_and_distractor_runs(rng, spec.num_segments)
  distractor_class = int(rng.choice(classes[len(visible) :]))
  if distractor_run is None:
    distractor_class, distractor_run = None, (None, None)
  # All objects are placed first, then the event object takes a uniformly random one of the
  # squares, so no size or position cue tells it apart (placed first, it was more often the
  # largest and the most central: the first square has the emptiest frame to fit in).
  placed = _place_squares(rng, len(visible), spec.frame_height, spec.frame_width)
  squares = [placed[i] for i in rng.permutation(len(placed))]
  partial = VideoTruth(
      video_id=video_id(index),
      split=split_of(spec, index),
      event_class=event_class,
      event_start=event_start,
      event_end=event_end,
      event_box=(0, 0, 0, 0),
      object_classes=tuple(visible),
      object_squares=tuple(squares),
      object_boxes=(),
      distractor_sound_class=distractor_class,
      distractor_sound_start=distractor_run[0],
      distractor_sound_end=distractor_run[1],
  )
  boxes = tuple(tuple(scene.tight_box(m)) for m in object_masks(spec, partial))
  return dataclasses.replace(partial, object_boxes=boxes, event_box=boxes[0])


def render_video(spec: SyntheticSpec, index: int):
  """Renders video `index`.

  Returns (frames uint8 [num_segments * fps, H, W, 3] RGB,
           waveform float32 [num_segments * sample_rate] mono in [-1, 1],
           VideoTruth).
  """
  truth = sample_scene(spec, index)
  rng = _rng(spec, index, stream=1)
  height, width = spec.frame_height, spec.frame_width
  image = scene.background_image(rng, height, width)
  for class_index, mask in zip(truth.object_classes, object_masks(spec, truth)):
    image[mask] = scene.class_colour(class_index)
  image += STATIC_PIXEL_NOISE_STD * rng.standard_normal((height, width, 3), np.float32)
  still = np.clip(np.rint(image), 0, 255).astype(np.int16)
  level = TEMPORAL_PIXEL_NOISE_LEVELS
  flicker = rng.integers(
      -level, level + 1, (spec.num_segments * spec.fps, height, width, 3), dtype=np.int8
  )  # int8 noise: ~5x cheaper than float normals
  frames = np.clip(still + flicker, 0, 255).astype(np.uint8)

  sr = spec.sample_rate
  waveform = rng.uniform(*AUDIO_NOISE_STD_RANGE) * rng.standard_normal(
      spec.num_segments * sr, np.float32
  )
  sounds = [
      (truth.event_class, truth.event_start, truth.event_end),
      (truth.distractor_sound_class, truth.distractor_sound_start, truth.distractor_sound_end),
  ]
  for class_index, start, end in sounds:
    amplitude = rng.uniform(*TONE_AMPLITUDE_RANGE)  # drawn even if unused: stable stream
    phases = rng.uniform(0.0, 2 * np.pi, size=len(scene.TONE_PARTIAL_AMPLITUDES))
    if class_index is not None:
      waveform[start * sr : end * sr] += scene.harmonic_tone(
          class_index, (end - start) * sr, sr, amplitude, phases
      )
  return frames, np.clip(waveform, -1.0, 1.0), truth
