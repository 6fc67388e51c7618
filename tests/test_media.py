"""decode_clip on small real media files written here with PyAV (see tests/media_files.py).

Frames say which second (top colour) and which frame of that second (bottom grey) they are;
audio is silence with tone bursts at known seconds. These are the good files: frames, audio
and files shorter than the horizon; damaged and non-video files are in test_media_damaged.py.
"""

import math

import av
import numpy as np
import pytest

from data_pipelines import log_mel
from data_pipelines.media import DecodedClip
from data_pipelines.media import decode_clip
from data_pipelines.media_audio import read_audio_16k_mono
from tests import decode_clip_fixtures
from tests import media_files
from tests.decode_clip_fixtures import BURST_HZ
from tests.decode_clip_fixtures import HEIGHT
from tests.decode_clip_fixtures import SILENCE
from tests.decode_clip_fixtures import TONE_HZ
from tests.decode_clip_fixtures import TONE_SECOND
from tests.decode_clip_fixtures import WIDTH
from tests.decode_clip_fixtures import bottom_grey
from tests.decode_clip_fixtures import nearest_colour_index
from tests.decode_clip_fixtures import segment_energy
from tests.decode_clip_fixtures import top_colour
from tests.media_files import SECOND_COLOURS
from tests.media_files import frame_grey

# The shared module-scoped fixtures, under the names the tests ask for.
media_dir = decode_clip_fixtures.media_dir
video_10s = decode_clip_fixtures.video_10s
video_4s = decode_clip_fixtures.video_4s
burst_clip = decode_clip_fixtures.burst_clip


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
    colour = top_colour(clip.frames[t, 0])
    assert nearest_colour_index(colour) == t
    np.testing.assert_allclose(colour, SECOND_COLOURS[t], atol=12)
    # Centre of second t is frame 5 of that second (time t + 0.5 exactly).
    assert abs(bottom_grey(clip.frames[t, 0]) - frame_grey(5)) < 8


def test_multiple_frames_per_segment_pick_last_frame_at_or_before_time(video_10s):
  clip = decode_clip(video_10s, num_segments=3, frames_per_segment=2, frame_size=48)
  assert clip.frames.shape == (3, 2, 48, 48, 3)
  # Samples at t + 0.25 and t + 0.75 -> frames 2 (0.2 s) and 7 (0.7 s) of each second.
  for t in range(3):
    for slot, expected_index in enumerate([2, 7]):
      image = clip.frames[t, slot]
      assert nearest_colour_index(top_colour(image)) == t
      assert abs(bottom_grey(image) - frame_grey(expected_index)) < 8


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
    assert nearest_colour_index(top_colour(image)) == second, t
    assert abs(bottom_grey(image) - frame_grey(index)) < 8, t
  assert clip.segment_mask.tolist() == [True] * 7 + [False]
  assert not clip.frames[7].any()
  # Four samples in the 25 fps second: 1.125, 1.375, 1.625, 1.875 s -> frames 3, 9, 15, 21.
  clip = decode_clip(path, num_segments=2, frames_per_segment=4, frame_size=32)
  for slot, index in enumerate([3, 9, 15, 21]):
    assert nearest_colour_index(top_colour(clip.frames[1, slot])) == 1
    assert abs(bottom_grey(clip.frames[1, slot]) - frame_grey(index)) < 8


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
  energy = segment_energy(clip)
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
  energy = segment_energy(clip)
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
  assert [nearest_colour_index(top_colour(clip.frames[t, 0])) for t in range(4)] == [0, 1, 2, 3]
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
    assert nearest_colour_index(top_colour(clip.frames[t, 0])) == t
  assert clip.duration_s == pytest.approx(4.0, abs=0.15)
  assert clip.log_mel.shape == (10, 96, 64) and np.isfinite(clip.log_mel).all()
  np.testing.assert_allclose(clip.log_mel[4:], SILENCE, rtol=1e-6)  # no audio after 4 s


def test_long_video_short_horizon_is_all_valid(video_4s):
  clip = decode_clip(video_4s, num_segments=3, frame_size=32)
  assert clip.segment_mask.tolist() == [True, True, True]
