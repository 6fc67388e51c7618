"""decode_clip on small real media files written here with PyAV (see tests/media_files.py).

Frames say which second (top colour) and which frame of that second (bottom grey) they are;
audio is silence with tone bursts at known seconds.
"""

import math
import os
import time

import av
import numpy as np
import pytest

from data_pipelines import log_mel
from data_pipelines import media_streams
from data_pipelines.media import DecodedClip
from data_pipelines.media import MediaError
from data_pipelines.media import decode_clip
from data_pipelines.media_audio import read_audio_16k_mono
from tests import media_files
from tests.media_files import SECOND_COLOURS
from tests.media_files import frame_grey

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


def _nearest_colour_index(rgb):
  return int(np.argmin(np.abs(SECOND_COLOURS - np.asarray(rgb, dtype=np.int32)).sum(axis=1)))


def _top_colour(image):  # image [S, S, 3]
  s = image.shape[0]
  return image[s // 8 : s // 4, s // 4 : 3 * s // 4].reshape(-1, 3).mean(axis=0)


def _bottom_grey(image):
  s = image.shape[0]
  return image[3 * s // 4 : 7 * s // 8, s // 4 : 3 * s // 4].mean()


def _segment_energy(clip):
  """[T] mean log-mel per segment, minus the level of silence."""
  return clip.log_mel.mean(axis=(1, 2)) - SILENCE


# -------------------------------------------------------------------------- good files


def test_frames_shape_dtype_and_colour_per_second(video_10s):
  clip = decode_clip(video_10s, num_segments=10, frames_per_segment=1, frame_size=64)
  assert isinstance(clip, DecodedClip)
  assert clip.frames.shape == (10, 1, 64, 64, 3) and clip.frames.dtype == np.uint8
  assert clip.log_mel.shape == (10, 96, 64) and clip.log_mel.dtype == np.float32
  assert clip.segment_mask.dtype == np.bool_ and clip.segment_mask.all()
  assert clip.damaged_segments.tolist() == [False] * 10
  assert clip.frame_size == (WIDTH, HEIGHT)
  assert clip.has_audio and clip.warnings == []
  assert clip.duration_s == pytest.approx(10.0, abs=0.15)
  for t in range(10):
    colour = _top_colour(clip.frames[t, 0])
    assert _nearest_colour_index(colour) == t
    np.testing.assert_allclose(colour, SECOND_COLOURS[t], atol=12)
    # Centre of second t is frame 5 of that second (time t + 0.5 exactly).
    assert abs(_bottom_grey(clip.frames[t, 0]) - frame_grey(5)) < 8


def test_multiple_frames_per_segment_pick_last_frame_at_or_before_time(video_10s):
  clip = decode_clip(video_10s, num_segments=3, frames_per_segment=2, frame_size=48)
  assert clip.frames.shape == (3, 2, 48, 48, 3)
  # Samples at t + 0.25 and t + 0.75 -> frames 2 (0.2 s) and 7 (0.7 s) of each second.
  for t in range(3):
    for slot, expected_index in enumerate([2, 7]):
      image = clip.frames[t, slot]
      assert _nearest_colour_index(_top_colour(image)) == t
      assert abs(_bottom_grey(image) - frame_grey(expected_index)) < 8


def test_default_frame_size_and_crop(video_10s):
  clip = decode_clip(video_10s, num_segments=2)
  assert clip.frames.shape == (2, 1, 224, 224, 3)
  assert clip.frame_size == (WIDTH, HEIGHT)


def test_variable_frame_rate_picks_the_frame_shown_at_each_sample_time(media_dir):
  times = media_files.VFR_FRAME_TIMES_S
  frames = media_files.second_colour_frames(times, 64, 48)
  audio = media_files.tone_bursts(7, 44100, TONE_HZ, [TONE_SECOND])
  path = media_files.write_media(media_dir / "vfr.mp4", frames, frame_times_s=times, audio=audio)
  clip = decode_clip(path, num_segments=8, frame_size=32)
  # Long gaps between frames are no damage: the audio runs on without a gap.
  assert not clip.damaged_segments.any() and clip.warnings == []
  # Second 2 shows 1.96 s (not the nearer 2.9 s), second 4 still shows 3.5 s.
  for t, (second, index) in enumerate(media_files.VFR_SHOWN_AT_HALF):
    image = clip.frames[t, 0]
    assert _nearest_colour_index(_top_colour(image)) == second, t
    assert abs(_bottom_grey(image) - frame_grey(index)) < 8, t
  assert clip.segment_mask.tolist() == [True] * 7 + [False]
  assert not clip.frames[7].any()
  # Four samples in the 25 fps second: 1.125, 1.375, 1.625, 1.875 s -> frames 3, 9, 15, 21.
  clip = decode_clip(path, num_segments=2, frames_per_segment=4, frame_size=32)
  for slot, index in enumerate([3, 9, 15, 21]):
    assert _nearest_colour_index(_top_colour(clip.frames[1, slot])) == 1
    assert abs(_bottom_grey(clip.frames[1, slot]) - frame_grey(index)) < 8


@pytest.mark.parametrize(
    "width, height, codec, pix_fmt, container_format",
    [
        (98, 32, "libx264", "yuv420p", "mp4"),  # wide
        (30, 202, "libx264", "yuv420p", "mp4"),  # tall and narrower than S: upscaled
        (97, 31, "libx264", "yuv444p", "mp4"),  # odd sizes: H.264 needs 4:4:4 for them
        (31, 201, "mpeg4", "yuv420p", "avi"),  # odd sizes in MPEG-4 part 2
    ],
)
def test_odd_sizes_are_resized_and_centre_cropped(
    media_dir, width, height, codec, pix_fmt, container_format
):
  picture = media_files.quadrant_picture(width, height)
  path = media_files.write_media(
      media_dir / f"size_{width}x{height}.{container_format}",
      np.stack([picture] * 10),
      video_codec=codec,
      pix_fmt=pix_fmt,
      container_format=container_format,
  )
  clip = decode_clip(path, num_segments=1, frame_size=32)
  assert clip.frames.shape == (1, 1, 32, 32, 3) and clip.frame_size == (width, height)
  image = clip.frames[0, 0].astype(np.int32)
  # The crop is the central square: its quadrants meet in its centre ...
  quadrants = [image[2:13, 2:13], image[2:13, 19:30], image[19:30, 2:13], image[19:30, 19:30]]
  for quadrant, colour in zip(quadrants, media_files.QUADRANT_COLOURS):
    np.testing.assert_allclose(quadrant.reshape(-1, 3).mean(axis=0), colour, atol=25)
  # ... and nothing from outside it (a squash instead of a crop would show it at the edges).
  outside = np.abs(image - media_files.OUTSIDE_COLOUR).sum(axis=-1) < 90
  assert outside.sum() == 0


# ------------------------------------------------------------------------------- audio


def test_audio_tone_lands_in_its_segment(video_10s):
  clip = decode_clip(video_10s, num_segments=10, frame_size=32)
  assert np.isfinite(clip.log_mel).all()
  energy = clip.log_mel.mean(axis=(1, 2))  # [10]
  others = np.delete(energy, TONE_SECOND)
  assert int(np.argmax(energy)) == TONE_SECOND
  assert energy[TONE_SECOND] - others.max() > 0.4
  # Silent seconds are (near) log(0.01); the tone's peak band is the one centred nearest 1 kHz.
  assert np.all(np.abs(others - SILENCE) < 0.2)
  peak_bands = np.argmax(clip.log_mel[TONE_SECOND, 5:90], axis=1)
  nearest = int(np.argmin(np.abs(log_mel.mel_bin_centres_hz() - TONE_HZ)))
  assert np.all(peak_bands == nearest)


def test_burst_inside_second_6_is_in_segment_6_only(burst_clip):
  clip = decode_clip(burst_clip, num_segments=10, frame_size=32)
  energy = _segment_energy(clip)
  assert int(np.argmax(energy)) == 6 and energy[6] > 0.3
  assert np.abs(np.delete(energy, 6)).max() < 0.02  # 5 and 7 included: silent
  # Inside segment 6, the 10 ms log-mel frames over [0.25, 0.75) s carry it, the rest do not.
  frame_energy = clip.log_mel[6].mean(axis=1) - SILENCE  # [96]
  assert frame_energy[28:72].min() > 0.5
  assert max(frame_energy[:20].max(), frame_energy[80:].max()) < 0.05
  nearest = int(np.argmin(np.abs(log_mel.mel_bin_centres_hz() - BURST_HZ)))
  assert np.all(np.argmax(clip.log_mel[6, 28:72], axis=1) == nearest)


def test_read_audio_16k_mono_resamples_44k_stereo(video_10s):
  waveform, has_audio = read_audio_16k_mono(video_10s, 4.0)
  assert has_audio and waveform.shape == (64000,) and waveform.dtype == np.float32
  tone = waveform[TONE_SECOND * 16000 + 800 : (TONE_SECOND + 1) * 16000 - 800]
  # Mono is the channel mean, so amplitude stays 0.5 (AAC is lossy: loose tolerance).
  assert np.sqrt(np.mean(tone**2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.05)
  spectrum = np.abs(np.fft.rfft(tone))
  assert np.argmax(spectrum) * 16000 / tone.size == pytest.approx(TONE_HZ, abs=3)
  assert np.abs(waveform[: TONE_SECOND * 16000 - 800]).max() < 0.02


@pytest.mark.parametrize("sample_rate, frequency_hz", [(44100, 700.0), (48000, 2500.0)])
def test_stereo_audio_is_resampled_to_16k_mono(media_dir, sample_rate, frequency_hz):
  """A tone on the LEFT channel only, over second 1 of 3: the mono mix has half its amplitude
  and the tone's frequency, at the mel band nearest to it, in segment 1 only."""
  audio = media_files.tone_bursts(3, sample_rate, frequency_hz, [1])
  audio[1] = 0.0
  frames = media_files.second_colour_frames(np.arange(30) / 10, 32, 32)
  path = media_files.write_media(
      media_dir / f"stereo_{sample_rate}.mp4", frames, audio=audio, audio_rate=sample_rate
  )
  with av.open(str(path)) as container:
    stream = container.streams.audio[0]
    assert (stream.rate, stream.layout.name) == (sample_rate, "stereo")
  waveform, has_audio = read_audio_16k_mono(path, 3.0)
  assert has_audio and waveform.shape == (48000,)
  tone = waveform[16000 + 800 : 32000 - 800]
  assert np.sqrt(np.mean(tone**2)) == pytest.approx(0.25 / math.sqrt(2), rel=0.05)
  assert np.argmax(np.abs(np.fft.rfft(tone))) * 16000 / tone.size == pytest.approx(
      frequency_hz, abs=3
  )
  clip = decode_clip(path, num_segments=3, frame_size=16)
  energy = _segment_energy(clip)
  assert energy[1] > 0.3 and abs(energy[0]) < 0.02 and abs(energy[2]) < 0.02
  nearest = int(np.argmin(np.abs(log_mel.mel_bin_centres_hz() - frequency_hz)))
  assert np.all(np.argmax(clip.log_mel[1, 5:90], axis=1) == nearest)


def test_no_audio_stream(media_dir):
  path = media_files.write_colour_clip(media_dir / "silent.mp4", 3, tone_hz=None)
  clip = decode_clip(path, num_segments=5, frame_size=32)
  assert clip.has_audio is False
  assert len(clip.warnings) == 1 and "audio" in clip.warnings[0]
  assert clip.log_mel.shape == (5, 96, 64) and np.isfinite(clip.log_mel).all()
  np.testing.assert_allclose(clip.log_mel, SILENCE, rtol=1e-6)
  assert clip.segment_mask.tolist() == [True] * 3 + [False] * 2
  waveform, has_audio = read_audio_16k_mono(path, 2.0)
  assert not has_audio and waveform.shape == (32000,) and not waveform.any()


def test_mpeg2_program_stream_without_audio(media_dir):
  """A DVD-style MPEG-2 .mpg (its timestamps start at 0.5 s, not 0) with no audio track."""
  path = media_files.write_mpeg2_program_stream(media_dir / "dvd.mpg", 4)
  with av.open(str(path)) as container:
    assert container.format.name == "mpeg" and not container.streams.audio
    assert container.streams.video[0].codec_context.name == "mpeg2video"
    assert container.start_time > 0
  clip = decode_clip(path, num_segments=6, frame_size=32)
  assert clip.has_audio is False and clip.frame_size == (WIDTH, HEIGHT)
  assert clip.segment_mask.tolist() == [True] * 4 + [False] * 2
  assert [_nearest_colour_index(_top_colour(clip.frames[t, 0])) for t in range(4)] == [0, 1, 2, 3]
  np.testing.assert_allclose(clip.log_mel, SILENCE, rtol=1e-6)
  assert clip.duration_s == pytest.approx(4.0, abs=0.1)
  assert not clip.damaged_segments.any()


# ------------------------------------------------------------------------- short files


def test_short_video_is_padded_with_mask(video_4s):
  clip = decode_clip(video_4s, num_segments=10, frame_size=32)
  assert clip.segment_mask.tolist() == [True] * 4 + [False] * 6
  assert clip.frames.shape == (10, 1, 32, 32, 3)
  assert not clip.frames[4:].any()
  assert clip.frames[:4].reshape(4, -1).max(axis=1).min() > 0
  for t in range(4):
    assert _nearest_colour_index(_top_colour(clip.frames[t, 0])) == t
  assert clip.duration_s == pytest.approx(4.0, abs=0.15)
  assert clip.log_mel.shape == (10, 96, 64) and np.isfinite(clip.log_mel).all()
  np.testing.assert_allclose(clip.log_mel[4:], SILENCE, rtol=1e-6)  # no audio after 4 s


def test_long_video_short_horizon_is_all_valid(video_4s):
  clip = decode_clip(video_4s, num_segments=3, frame_size=32)
  assert clip.segment_mask.tolist() == [True, True, True]


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
  assert [_nearest_colour_index(_top_colour(clip.frames[t, 0])) for t in range(3)] == [0, 1, 2]
  energy = _segment_energy(clip)
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
      assert _nearest_colour_index(_top_colour(clip.frames[t, 0])) == t
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
