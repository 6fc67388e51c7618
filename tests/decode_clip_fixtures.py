"""The clips the decode_clip tests (test_media.py and test_media_damaged.py) share, and the
readings they take of decoded clips: the module-scoped fixtures `media_dir`, `video_10s`,
`video_4s` and `burst_clip` (written with tests/media_files.py; a test module uses them by
assigning them to module-level names of the same spelling), the constants those clips are made
with, and helpers that tell which second a decoded frame shows (its top colour), which frame of
that second (its bottom grey) and how loud each segment's log-mel is above silence."""

import numpy as np
import pytest

from data_pipelines import log_mel
from tests import media_files
from tests.media_files import SECOND_COLOURS

WIDTH, HEIGHT, FPS = 160, 96, 10
TONE_SECOND, TONE_HZ = 2, 1000.0
SILENCE = np.log(log_mel.LOG_OFFSET)  # log-mel of digital silence
BURST_START_S, BURST_HZ = 6.25, 1500.0  # a 0.5 s burst inside second 6 of a 10 s clip


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def video_10s(media_dir):
  """160x96 @ 10 fps, 44.1 kHz stereo AAC with a 1 kHz tone over second 2."""
  return media_files.write_colour_clip(media_dir / "ten_seconds.mp4", 10)


@pytest.fixture(scope="module")
def video_4s(media_dir):
  return media_files.write_colour_clip(media_dir / "four_seconds.mp4", 4)


@pytest.fixture(scope="module")
def burst_clip(media_dir):
  """10 s of 64x48 @ 5 fps whose only sound is a 1.5 kHz burst over [6.25, 6.75) s."""
  return media_files.write_colour_clip(
      media_dir / "burst.mp4",
      10,
      width=64,
      height=48,
      fps=5,
      tone_hz=BURST_HZ,
      bursts_s=(BURST_START_S,),
      burst_length_s=0.5,
  )


def nearest_colour_index(rgb):
  return int(np.argmin(np.abs(SECOND_COLOURS - np.asarray(rgb, dtype=np.int32)).sum(axis=1)))


def top_colour(image):  # image [S, S, 3]
  s = image.shape[0]
  return image[s // 8 : s // 4, s // 4 : 3 * s // 4].reshape(-1, 3).mean(axis=0)


def bottom_grey(image):
  s = image.shape[0]
  return image[3 * s // 4 : 7 * s // 8, s // 4 : 3 * s // 4].mean()


def segment_energy(clip):
  """[T] mean log-mel per segment, minus the level of silence."""
  return clip.log_mel.mean(axis=(1, 2)) - SILENCE
