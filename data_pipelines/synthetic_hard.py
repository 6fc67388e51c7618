"""The harder synthetic set (issue 27): three levels where an explanation can fail.

Each level is one value of `HardSpec.level` and its own cached set (synthetic_hard_dataset.py).
Classes, shapes, colours and tones are those of `synthetic_scene`; the event and distractor
tone runs are drawn as in `synthetic` (an exchangeable pair of contiguous runs of 2..8
segments). Segments are integer seconds, ends exclusive; boxes are tight [x0, y0, x1, y1] in
original-frame pixels, x1 and y1 exclusive.

Level 1, off-screen sources. Each video is off-screen with probability `offscreen_fraction`.
  * On-screen videos are the default set's: the event object (class e) and
    `num_distractor_objects` silent objects of other classes are visible, e's tone sounds for
    one run and a distractor tone of an unseen class d for another.
  * Off-screen videos show `num_distractor_objects + 1` objects, none of class e, and carry
    ONLY e's tone (no distractor tone).
  Label (well defined in both): the class seen and heard if there is one, else the only class
  heard. Truth: `source_on_screen`; boxes only for on-screen videos.

Level 2, silent look-alikes. K instances (K uniform in {2, 3}) of e and K instances of one
silent distractor class are on screen (so counting instances names no class), objects 0.8x the
default size. Every object pulses: its colour is mixed towards its complement,
`PULSE_DEPTH * p`, where p in {0, 1} is redrawn (fair coin) every 1 / PULSE_STEPS_PER_SECOND
s all through the video, independently per object. One instance of e, uniformly drawn, is the
source: e's tone is gated by the SAME p during the event run (gain GAIN_OFF + (1 - GAIN_OFF) p).
So the instances are exchangeable in every frame and over the time course (vision alone is at
1 / K), audio names the class but not the instance, and only the relation between the sound's
envelope and a visual change identifies the source. Build with frames_per_segment =
PULSE_STEPS_PER_SECOND (BUILD_SIZES[2]) so that each step is seen. A distractor tone of an
unseen class sounds as in level 1's on-screen videos. Truth: the source's boxes, the
look-alikes' boxes, `num_instances`, `pulses` per object.

Level 3, noise and motion. As the default set (all sources on screen, one distractor tone), but
every visible object moves on a straight path (constant within a segment, a new position each
segment, so boxes are per segment), and the audio carries coloured noise (white noise through
a random low-pass, see `noise_shape`) at an SNR drawn uniformly from `snr_db_levels`:
SNR = 10 log10(mean event-tone power over the event run / mean noise power over the clip).
If the mix would clip, tone and noise are scaled together (the SNR is unchanged).

Rendering is in synthetic_hard_render.py, the AVE-format files in synthetic_hard_files.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines import synthetic
from data_pipelines import synthetic_scene as scene

LEVELS = (1, 2, 3)
# Bumped whenever the same settings generate different videos (hashed into the set's name).
GENERATOR_VERSION = 1
PULSE_STEPS_PER_SECOND = 4
PULSE_DEPTH = 0.5
GAIN_OFF = 0.15
LOOKALIKE_COUNTS = (2, 3)
LOOKALIKE_SIZE_SCALE = 0.8
MAX_STEP_PX = 3  # level 3: largest per-segment displacement per axis, at 128 px frames


@dataclasses.dataclass(frozen=True)
class HardSpec:
  """Settings of one level's set; the fields shared with SyntheticSpec mean the same."""

  level: int = 1
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
  offscreen_fraction: float = 0.3
  snr_db_levels: tuple[float, ...] = (20.0, 10.0, 0.0)

  def __post_init__(self):
    object.__setattr__(self, "snr_db_levels", tuple(float(s) for s in self.snr_db_levels))
    if self.level not in LEVELS:
      raise ValueError(f"level must be one of {LEVELS}, got {self.level}")
    # The default generator's checks (class count, frame and split sizes).
    synthetic.SyntheticSpec(**self.base_fields())
    if self.fps % PULSE_STEPS_PER_SECOND:
      raise ValueError(f"fps must be a multiple of {PULSE_STEPS_PER_SECOND}")
    if not 0.0 <= self.offscreen_fraction <= 1.0 or not self.snr_db_levels:
      raise ValueError("offscreen_fraction must be in [0, 1] and snr_db_levels not empty")

  def base_fields(self) -> dict:
    names = {f.name for f in dataclasses.fields(synthetic.SyntheticSpec)}
    return {k: v for k, v in dataclasses.asdict(self).items() if k in names}

  @property
  def num_videos(self) -> int:
    return self.num_train + self.num_val + self.num_test

  @property
  def class_names(self) -> list[str]:
    return [scene.class_name(c) for c in range(self.num_classes)]


# Build sizes per level: level 2 needs one frame per pulse step.
BUILD_SIZES = {
    1: dict(num_segments=10, frames_per_segment=1, frame_size=64),
    2: dict(num_segments=10, frames_per_segment=PULSE_STEPS_PER_SECOND, frame_size=64),
    3: dict(num_segments=10, frames_per_segment=1, frame_size=64),
}
CONFIG_SETTINGS = dict(synthetic.CONFIG_SETTINGS)
PRESETS = ("", "smoke")


def default_settings(level: int, preset: str = "") -> dict:
  """The generator settings of a level and preset ('' or 'smoke': a few videos)."""
  if preset not in PRESETS or level not in LEVELS:
    raise ValueError(f"unknown level {level} or preset {preset!r}")
  smoke = synthetic.SMOKE_SPLITS if preset == "smoke" else {}
  return {**CONFIG_SETTINGS, **smoke, "level": level}


@dataclasses.dataclass(frozen=True)
class HardTruth:
  """Everything placed in one video; per-object lists are in `object_classes` order.

  object_boxes: per object, per segment, a tight box (level 3 objects move; else all equal).
  source_index: the source's index among the objects, or None when it is off-screen.
  pulses: per object, [num_segments * PULSE_STEPS_PER_SECOND] in {0, 1} (level 2, else ()).
  """

  video_id: str
  split: str
  level: int
  event_class: int
  event_start: int
  event_end: int
  source_on_screen: bool
  source_index: int | None
  object_classes: tuple[int, ...]
  object_tracks: tuple[tuple[tuple[int, int, int], ...], ...]  # per object, per segment squares
  object_boxes: tuple[tuple[tuple[int, int, int, int], ...], ...]
  distractor_sound_class: int | None
  distractor_sound_start: int | None
  distractor_sound_end: int | None
  num_instances: int  # visible objects of the event class
  pulses: tuple[tuple[int, ...], ...] = ()
  snr_db: float | None = None

  @property
  def event_segments(self) -> range:
    return range(self.event_start, self.event_end)

  @property
  def source_boxes(self) -> tuple[tuple[int, int, int, int], ...]:
    """Per segment, the source's box; () for an off-screen source."""
    return () if self.source_index is None else self.object_boxes[self.source_index]

  @property
  def lookalike_indices(self) -> tuple[int, ...]:
    return tuple(
        i
        for i, c in enumerate(self.object_classes)
        if c == self.event_class and i != self.source_index
    )


def video_id(level: int, index: int) -> str:
  return f"hard{level}v{index:05d}"


def _rng(spec: HardSpec, index: int, stream: int) -> np.random.Generator:
  key = (spec.level, index, stream)
  return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=key))


def _place_squares(rng, num, height, width):
  """synthetic._place_squares, redrawn when the frame jams (six objects in level 2)."""
  for _ in range(50):
    try:
      return synthetic._place_squares(rng, num, height, width)  # pylint: disable=protected-access
    except RuntimeError:
      continue
  raise RuntimeError("could not place the objects; frames too small")


def _place(rng, num, spec: HardSpec, size_scale: float = 1.0):
  """Non-overlapping (left, top, size) squares; size_scale < 1 places them in a frame larger by
  1 / size_scale and scales the result down (smaller objects, same layout statistics)."""
  height, width = int(spec.frame_height / size_scale), int(spec.frame_width / size_scale)
  squares = _place_squares(rng, num, height, width)
  if size_scale == 1.0:
    return squares
  placed = []
  for left, top, size in squares:
    size = int(round(size * size_scale))
    placed.append(
        (
            min(int(round(left * size_scale)), spec.frame_width - size),
            min(int(round(top * size_scale)), spec.frame_height - size),
            size,
        )
    )
  return placed


def _apart(a, b) -> bool:
  (xa, ya, sa), (xb, yb, sb) = a, b
  gap = synthetic.OBJECT_GAP_PX
  return xa >= xb + sb + gap or xb >= xa + sa + gap or ya >= yb + sb + gap or yb >= ya + sa + gap


def _moving_tracks(rng, num, spec: HardSpec):
  """Per object, per segment (left, top, size) on straight non-overlapping paths in frame."""
  step_max = max(1, int(round(MAX_STEP_PX * min(spec.frame_height, spec.frame_width) / 128)))
  steps = np.arange(spec.num_segments)
  for _ in range(200):
    starts = _place(rng, num, spec)
    tracks = []
    for left, top, size in starts:
      velocity = rng.integers(-step_max, step_max + 1, size=2)
      while not velocity.any():
        velocity = rng.integers(-step_max, step_max + 1, size=2)
      xs = np.clip(left + velocity[0] * steps, 0, spec.frame_width - size)
      ys = np.clip(top + velocity[1] * steps, 0, spec.frame_height - size)
      tracks.append(tuple((int(x), int(y), size) for x, y in zip(xs, ys)))
    if all(
        _apart(tracks[i][t], tracks[j][t])
        for t in steps
        for i in range(num)
        for j in range(i + 1, num)
    ):
      return tracks
  raise RuntimeError("could not place moving objects; frames too small")


def sample_scene(spec: HardSpec, index: int) -> HardTruth:
  """The layout of video `index` (cheap: no pixels or samples are rendered)."""
  rng = _rng(spec, index, stream=0)
  classes = [int(c) for c in rng.permutation(spec.num_classes)]
  event_class = classes[0]
  (event_start, event_end), distractor_run = synthetic._event_and_distractor_runs(  # pylint: disable=protected-access
      rng, spec.num_segments
  )
  on_screen, pulses, snr_db = True, (), None
  nd = spec.num_distractor_objects
  if spec.level == 1:
    on_screen = bool(rng.random() >= spec.offscreen_fraction)
    visible = classes[: 1 + nd] if on_screen else classes[1 : 2 + nd]
    squares = _place(rng, len(visible), spec)
    tracks = [(square,) * spec.num_segments for square in squares]
    source_index = 0 if on_screen else None
  elif spec.level == 2:
    count = int(rng.choice(LOOKALIKE_COUNTS))
    visible = [event_class] * count + [classes[1]] * count
    squares = _place(rng, len(visible), spec, LOOKALIKE_SIZE_SCALE)
    tracks = [(square,) * spec.num_segments for square in squares]
    source_index = int(rng.integers(count))
    num_steps = spec.num_segments * PULSE_STEPS_PER_SECOND
    pulses = tuple(tuple(int(p) for p in rng.integers(0, 2, num_steps)) for _ in visible)
  else:
    visible = classes[: 1 + nd]
    tracks = _moving_tracks(rng, len(visible), spec)
    source_index = 0
    snr_db = float(rng.choice(spec.snr_db_levels))
  # Shuffled as in `synthetic`: the objects take the placed squares (or paths) in random order,
  # so being placed first (in the emptiest frame: larger, more central) marks no object.
  tracks = [tracks[i] for i in rng.permutation(len(tracks))]
  distractor_class = None
  if distractor_run is None or not on_screen:
    distractor_run = (None, None)
  else:  # an unseen class
    distractor_class = int(rng.choice([c for c in classes if c not in visible]))
  boxes = tuple(
      tuple(_box(c, square, spec) for square in track) for c, track in zip(visible, tracks)
  )
  return HardTruth(
      video_id=video_id(spec.level, index),
      split=synthetic.split_of(spec, index),
      level=spec.level,
      event_class=event_class,
      event_start=event_start,
      event_end=event_end,
      source_on_screen=on_screen,
      source_index=source_index,
      object_classes=tuple(visible),
      object_tracks=tuple(tuple(track) for track in tracks),
      object_boxes=boxes,
      distractor_sound_class=distractor_class,
      distractor_sound_start=distractor_run[0],
      distractor_sound_end=distractor_run[1],
      num_instances=sum(c == event_class for c in visible),
      pulses=pulses,
      snr_db=snr_db,
  )


_BOX_CACHE: dict = {}


def object_mask(class_index: int, square, spec: HardSpec) -> np.ndarray:
  """bool [H, W] mask of the class's shape in square (left, top, size)."""
  left, top, size = square
  return scene.shape_mask(
      scene.SHAPES[class_index], left, top, size, spec.frame_height, spec.frame_width
  )


def _box(class_index: int, square, spec: HardSpec) -> tuple[int, int, int, int]:
  key = (class_index, tuple(square), spec.frame_height, spec.frame_width)
  if key not in _BOX_CACHE:
    _BOX_CACHE[key] = tuple(scene.tight_box(object_mask(class_index, square, spec)))
  return _BOX_CACHE[key]
