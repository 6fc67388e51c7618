"""decode_clip on small MP4 files generated here with PyAV (libx264 + AAC)."""

import math
import os

import av
import numpy as np
import pytest

from data_pipelines import log_mel
from data_pipelines.media import DecodedClip, MediaError, decode_clip, read_audio_16k_mono

WIDTH, HEIGHT, FPS = 160, 96, 10
AUDIO_RATE = 44100
TONE_SECOND = 2
TONE_HZ = 1000.0

# One clearly distinct colour per second (RGB); the top half of every frame shows it.
SECOND_COLOURS = np.array(
    [
        [230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30], [230, 30, 230],
        [30, 230, 230], [240, 240, 240], [20, 20, 20], [240, 140, 40], [120, 60, 200],
    ],
    dtype=np.int32,
)


def _frame_in_second_grey(j):
    """Grey level of the bottom half for frame j (0..9) within its second."""
    return 20 + 22 * j


def _write_mp4(path, seconds, *, with_audio=True, with_video=True, faststart=False):
    """[seconds] s of 160x96 @ 10 fps video (top: colour of the second, bottom: grey of the frame index)
    and 44.1 kHz stereo AAC that is silent except for a 1 kHz tone during second TONE_SECOND."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        if with_video:
            video = container.add_stream("libx264", rate=FPS)
            video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            video.options = {"preset": "veryfast", "crf": "12", "threads": "1"}
        if with_audio:
            audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        if with_video:
            for i in range(int(seconds * FPS)):
                image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
                image[: HEIGHT // 2] = SECOND_COLOURS[i // FPS]
                image[HEIGHT // 2 :] = _frame_in_second_grey(i % FPS)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
        if with_audio:
            n = int(seconds * AUDIO_RATE)
            t = np.arange(n) / AUDIO_RATE
            mono = np.where(np.floor(t) == TONE_SECOND, 0.5 * np.sin(2 * np.pi * TONE_HZ * t), 0.0)
            stereo = np.stack([mono, mono]).astype(np.float32)  # [2, n]
            for start in range(0, n, 1024):
                chunk = np.ascontiguousarray(stereo[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = AUDIO_RATE, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def video_10s(media_dir):
    return _write_mp4(media_dir / "ten_seconds.mp4", 10)


@pytest.fixture(scope="module")
def video_4s(media_dir):
    return _write_mp4(media_dir / "four_seconds.mp4", 4)


def _nearest_colour_index(rgb):
    return int(np.argmin(np.abs(SECOND_COLOURS - np.asarray(rgb, dtype=np.int32)).sum(axis=1)))


def _top_colour(image):  # image [S, S, 3]
    s = image.shape[0]
    return image[s // 8 : s // 4, s // 4 : 3 * s // 4].reshape(-1, 3).mean(axis=0)


def _bottom_grey(image):
    s = image.shape[0]
    return image[3 * s // 4 : 7 * s // 8, s // 4 : 3 * s // 4].mean()


# --------------------------------------------------------------------------- tests


def test_frames_shape_dtype_and_colour_per_second(video_10s):
    clip = decode_clip(video_10s, num_segments=10, frames_per_segment=1, frame_size=64)
    assert isinstance(clip, DecodedClip)
    assert clip.frames.shape == (10, 1, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.log_mel.shape == (10, 96, 64) and clip.log_mel.dtype == np.float32
    assert clip.segment_mask.dtype == np.bool_ and clip.segment_mask.all()
    assert clip.frame_size == (WIDTH, HEIGHT)
    assert clip.has_audio and clip.warnings == []
    assert clip.duration_s == pytest.approx(10.0, abs=0.15)
    for t in range(10):
        colour = _top_colour(clip.frames[t, 0])
        assert _nearest_colour_index(colour) == t
        np.testing.assert_allclose(colour, SECOND_COLOURS[t], atol=12)
        # Centre of second t is frame 5 of that second (time t + 0.5 exactly).
        assert abs(_bottom_grey(clip.frames[t, 0]) - _frame_in_second_grey(5)) < 8


def test_multiple_frames_per_segment_pick_last_frame_at_or_before_time(video_10s):
    clip = decode_clip(video_10s, num_segments=3, frames_per_segment=2, frame_size=48)
    assert clip.frames.shape == (3, 2, 48, 48, 3)
    # Samples at t + 0.25 and t + 0.75 -> frames 2 (0.2 s) and 7 (0.7 s) of each second.
    for t in range(3):
        for slot, expected_index in enumerate([2, 7]):
            image = clip.frames[t, slot]
            assert _nearest_colour_index(_top_colour(image)) == t
            assert abs(_bottom_grey(image) - _frame_in_second_grey(expected_index)) < 8


def test_default_frame_size_and_crop(video_10s):
    clip = decode_clip(video_10s, num_segments=2)
    assert clip.frames.shape == (2, 1, 224, 224, 3)
    assert clip.frame_size == (WIDTH, HEIGHT)


def test_audio_tone_lands_in_its_segment(video_10s):
    clip = decode_clip(video_10s, num_segments=10, frame_size=32)
    assert np.isfinite(clip.log_mel).all()
    energy = clip.log_mel.mean(axis=(1, 2))  # [10]
    others = np.delete(energy, TONE_SECOND)
    assert int(np.argmax(energy)) == TONE_SECOND
    assert energy[TONE_SECOND] - others.max() > 0.4
    # Silent seconds are (near) log(0.01); the tone's peak band is the one centred nearest 1 kHz.
    assert np.all(np.abs(others - np.log(log_mel.LOG_OFFSET)) < 0.2)
    peak_bands = np.argmax(clip.log_mel[TONE_SECOND, 5:90], axis=1)
    nearest = int(np.argmin(np.abs(log_mel.mel_bin_centres_hz() - TONE_HZ)))
    assert np.all(peak_bands == nearest)


def test_read_audio_16k_mono_resamples_44k_stereo(video_10s):
    waveform, has_audio = read_audio_16k_mono(video_10s, 4.0)
    assert has_audio and waveform.shape == (64000,) and waveform.dtype == np.float32
    tone = waveform[TONE_SECOND * 16000 + 800 : (TONE_SECOND + 1) * 16000 - 800]
    # Mono is the channel mean, so amplitude stays 0.5 (AAC is lossy: loose tolerance).
    assert np.sqrt(np.mean(tone**2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.argmax(spectrum) * 16000 / tone.size == pytest.approx(TONE_HZ, abs=3)
    assert np.abs(waveform[: TONE_SECOND * 16000 - 800]).max() < 0.02


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


def test_long_video_short_horizon_is_all_valid(video_4s):
    clip = decode_clip(video_4s, num_segments=3, frame_size=32)
    assert clip.segment_mask.tolist() == [True, True, True]


def test_no_audio_stream(media_dir):
    path = _write_mp4(media_dir / "silent.mp4", 3, with_audio=False)
    clip = decode_clip(path, num_segments=5, frame_size=32)
    assert clip.has_audio is False
    assert len(clip.warnings) == 1 and "audio" in clip.warnings[0]
    assert clip.log_mel.shape == (5, 96, 64) and np.isfinite(clip.log_mel).all()
    np.testing.assert_allclose(clip.log_mel, np.log(log_mel.LOG_OFFSET), rtol=1e-6)
    assert clip.segment_mask.tolist() == [True] * 3 + [False] * 2
    waveform, has_audio = read_audio_16k_mono(path, 2.0)
    assert not has_audio and waveform.shape == (32000,) and not waveform.any()


def test_audio_only_file_raises(media_dir):
    path = _write_mp4(media_dir / "audio_only.mp4", 2, with_video=False)
    with pytest.raises(MediaError, match="no video stream"):
        decode_clip(path, num_segments=2)


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"this is a plain text file, certainly not a video\n" * 20),
        ("random.mp4", np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()),
        ("empty.mp4", b""),
    ],
)
def test_non_video_files_raise(media_dir, name, content):
    path = media_dir / name
    path.write_bytes(content)
    with pytest.raises(MediaError) as info:
        decode_clip(path, num_segments=2)
    assert str(path) in str(info.value)


def test_missing_file_raises(media_dir):
    path = media_dir / "does_not_exist.mp4"
    with pytest.raises(MediaError, match="does_not_exist.mp4"):
        decode_clip(path)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_mp4_raises(media_dir, video_10s, faststart):
    source = video_10s if not faststart else _write_mp4(media_dir / "faststart.mp4", 10, faststart=True)
    data = source.read_bytes()
    path = media_dir / f"truncated_{faststart}.mp4"
    path.write_bytes(data[: int(0.3 * len(data))])
    with pytest.raises(MediaError) as info:
        decode_clip(path, num_segments=10, frame_size=32)
    assert os.fspath(path) in str(info.value)


def test_invalid_arguments(video_4s):
    with pytest.raises(ValueError):
        decode_clip(video_4s, num_segments=0)
