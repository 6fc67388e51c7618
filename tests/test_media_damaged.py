"""decode_clip on damaged and non-video files written here with PyAV (see tests/media_files.py):
audio-only, non-video, missing, truncated and mostly corrupt files raise a MediaError that names
the file; a corrupt stretch is skipped, reported as damaged segments and warnings, and leaves the
audio in place; garbage anywhere never crashes or hangs the decoder; a read error ends the stream
with the frames read so far; a reading budget stops runaway decoding. Good files are in
test_media.py.
"""

import os
import time

import av
import numpy as np
import pytest

from data_pipelines import media_streams
from data_pipelines.media import MediaError
from data_pipelines.media import decode_clip
from tests import decode_clip_fixtures
from tests import media_files
from tests.decode_clip_fixtures import SILENCE
from tests.decode_clip_fixtures import nearest_colour_index
from tests.decode_clip_fixtures import segment_energy
from tests.decode_clip_fixtures import top_colour

# The shared module-scoped fixtures, under the names the tests ask for.
media_dir = decode_clip_fixtures.media_dir
video_10s = decode_clip_fixtures.video_10s
video_4s = decode_clip_fixtures.video_4s
burst_clip = decode_clip_fixtures.burst_clip


# ---------------------------------------------------------------------- damaged files


def test_audio_only_file_raises(media_dir):
  path = media_files.write_media(
      media_dir / "audio_only.mp4", audio=media_files.tone_bursts(2, 44100, 440.0, [0])
  )
  with pytest.raises(MediaError, match="no video stream"):
    decode_clip(path, num_segments=2)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.txt", b"this is a plain text file, certainly not a video\n" * 20, "not a video"),
        (
            "random.mp4",
            np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes(),
            "open",
        ),
        ("picture.mp4", media_files.png_bytes(media_files.quadrant_picture(64, 48)), "png_pipe"),
        ("empty.mp4", b"", "open"),
    ],
)
def test_non_video_files_raise(media_dir, name, content, reason):
  path = media_dir / name
  path.write_bytes(content)
  with pytest.raises(MediaError, match=reason) as info:
    decode_clip(path, num_segments=2)
  assert str(path) in str(info.value)


def test_missing_file_raises(media_dir):
  path = media_dir / "does_not_exist.mp4"
  with pytest.raises(MediaError, match="does_not_exist.mp4"):
    decode_clip(path)


@pytest.mark.parametrize(
    "writer_options, reason",
    [
        ({}, "cannot open"),  # the index (moov) is at the end: gone
        ({"container_options": {"movflags": "faststart"}}, "truncated"),  # index first
        ({"container_format": "matroska"}, "truncated"),  # per-track DURATION tag
    ],
)
def test_truncated_files_raise(media_dir, writer_options, reason):
  name = reason.replace(" ", "_") + str(len(writer_options))
  source = media_files.write_colour_clip(
      media_dir / f"{name}.full", 10, width=64, height=48, **writer_options
  )
  path = media_files.truncate(source, media_dir / f"{name}.truncated", keep_fraction=0.6)
  with pytest.raises(MediaError, match=reason) as info:
    decode_clip(path, num_segments=10, frame_size=32)
  assert os.fspath(path) in str(info.value)


def test_corrupt_stretch_is_skipped_reported_and_audio_stays_in_place(media_dir, burst_clip):
  """Every packet over [3.0, 3.5) s overwritten with garbage: the clip decodes; segments
  before 3 are clean, segment 3 and the rest of the (single) GOP are marked damaged, and
  the burst at 6.25 s is still in segment 6 (audio is placed by timestamp, not concatenated)."""
  path = media_files.corrupt_packets(burst_clip, media_dir / "corrupt_3s.mp4", 3.0, 3.5)
  clip = decode_clip(path, num_segments=10, frame_size=32)
  assert clip.segment_mask.all()
  assert clip.damaged_segments.tolist() == [False] * 3 + [True] * 7
  assert any(w.startswith("video: skipped") and "undecodable packets" in w for w in clip.warnings)
  assert any(w.startswith("audio: skipped") for w in clip.warnings)
  assert [nearest_colour_index(top_colour(clip.frames[t, 0])) for t in range(3)] == [0, 1, 2]
  energy = segment_energy(clip)
  assert int(np.argmax(energy)) == 6 and energy[6] > 0.3
  assert np.abs(np.delete(energy, 6)).max() < 0.02
  frame_energy = clip.log_mel[6].mean(axis=1) - SILENCE
  assert frame_energy[28:72].min() > 0.5 and frame_energy[:20].max() < 0.05


def test_mostly_corrupt_file_raises(media_dir, burst_clip):
  """Garbage over [2, 8) s: 30 of the 50 video packets are rejected, above the 25 % limit."""
  path = media_files.corrupt_packets(burst_clip, media_dir / "mostly_corrupt.mp4", 2.0, 8.0)
  with pytest.raises(MediaError, match="corrupt: 30 of 50 video packets read cannot be decoded"):
    decode_clip(path, num_segments=10, frame_size=32)


@pytest.mark.parametrize("container_format", ["mp4", "matroska", "mpeg"])
@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3])
def test_corrupt_middle_never_crashes_or_hangs(media_dir, container_format, fraction):
  """Garbage over the middle of the file: a MediaError, or a clip of the right shapes with
  its damage reported, whose segments before the first damaged one are right. Either way
  quickly."""
  source = media_dir / f"middle.{container_format}"
  if not source.exists():
    codecs = {"fps": 5}
    if container_format == "mpeg":  # MPEG-2 needs a standard frame rate
      codecs = {"fps": 25, "video_codec": "mpeg2video", "audio_codec": "mp2"}
    media_files.write_colour_clip(
        source, 6, width=64, height=48, container_format=container_format, **codecs
    )
  path = media_files.corrupt_middle(source, media_dir / "middle_corrupt", fraction=fraction)
  started = time.monotonic()
  try:
    clip = decode_clip(path, num_segments=6, frame_size=16)
  except MediaError as error:
    assert os.fspath(path) in str(error)
  else:
    assert clip.frames.shape == (6, 1, 16, 16, 3) and clip.log_mel.shape == (6, 96, 64)
    assert np.isfinite(clip.log_mel).all() and clip.segment_mask[0]
    assert clip.damaged_segments.shape == (6,) and clip.damaged_segments.dtype == np.bool_
    assert clip.damaged_segments.any() and clip.warnings  # the damage is reported
    first_damaged = int(np.argmax(clip.damaged_segments))
    for t in range(first_damaged):
      assert nearest_colour_index(top_colour(clip.frames[t, 0])) == t
  assert time.monotonic() - started < 10.0


class _DemuxFailsAfter:
  """A real input container whose demuxer raises InvalidDataError after `num_packets` packets."""

  def __init__(self, container, num_packets):
    self._container, self._num_packets = container, num_packets
    self.start_time = container.start_time

  def demux(self, stream):
    for index, packet in enumerate(self._container.demux(stream)):
      if index == self._num_packets:
        raise av.error.InvalidDataError(-1094995529, "Invalid data found when processing input")
      yield packet


def test_read_error_ends_the_stream_and_keeps_the_frames_read(video_10s):
  with av.open(str(video_10s)) as container:
    damage = media_streams.StreamDamage("video")
    frames = list(
        media_streams.decoded_frames(
            _DemuxFailsAfter(container, 40), container.streams.video[0], video_10s, 10.0, damage
        )
    )
  times = [frame.time for frame in frames]
  # One frame per packet read: the decoder's delayed frames are flushed, not lost.
  assert len(frames) == 40 and times == sorted(times) and times[-1] < 4.5
  assert damage.num_packets == 40 and damage.undecodable_at_s == []
  assert damage.read_error.startswith("InvalidDataError") and 2.0 < damage.read_error_at_s < 4.5
  assert damage.warnings() == [
      f"video: reading stopped after {damage.read_error_at_s:.2f} s ({damage.read_error})"
  ]


def test_reading_budget_stops_runaway_decoding(video_4s, monkeypatch):
  """More packets than MAX_PACKETS_PER_SECOND per second of horizon is a MediaError (this is
  what keeps broken timestamps from reading a huge file to its end)."""
  monkeypatch.setattr(media_streams, "MAX_PACKETS_PER_SECOND", 3)
  with pytest.raises(MediaError, match="broken timestamps"):
    decode_clip(video_4s, num_segments=2, frame_size=16)


def test_invalid_arguments(video_4s):
  with pytest.raises(ValueError):
    decode_clip(video_4s, num_segments=0)
