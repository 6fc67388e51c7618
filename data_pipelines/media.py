"""Decode a video file into per-second frames and VGGish log-mel patches with PyAV.

A clip is cut into ``T`` one-second segments starting at t = 0 (the container's start
time). Segment ``t`` gets ``F`` RGB frames, frame ``f`` sampled at ``t + (f + 0.5) / F``
seconds, and the 96 x 64 log-mel patch of audio second ``t`` (see ``log_mel``).

Decoding is sequential and stops once past ``T`` seconds, so long videos stay cheap.
Any failure to read the file (missing, not a media file, truncated, corrupt, no video
stream, no decodable frames) raises :class:`MediaError`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import av
import numpy as np

from data_pipelines import log_mel

TRUNCATION_TOLERANCE_S = 1.0
"""Video that ends this much earlier than its stream declares (within the T seconds read) is truncated."""

NON_VIDEO_FORMATS = frozenset({"tty", "bin", "adf", "idf", "xbin", "image2"})
"""FFmpeg demuxers that turn text files (ANSI art) or still images into a 'video' stream."""


class MediaError(Exception):
    """A media file could not be decoded. The message names the path and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot decode media file {self.path!r}: {reason}")


@dataclasses.dataclass
class DecodedClip:
    """Model-ready content of one video.

    Attributes:
      frames: [T, F, S, S, 3] uint8 RGB; zeros for padded (invalid) segments.
      log_mel: [T, 96, 64] float32 VGGish log-mel, one patch per second.
      segment_mask: [T] bool, True where the segment's first sampled time lies inside the video.
      has_audio: False when there is no audio stream or it yields no samples (log_mel is then of silence).
      frame_size: (width, height) of the ORIGINAL decoded video frames.
      duration_s: declared container duration in seconds, else the end of the last decoded video frame.
      warnings: human-readable notes about recoverable problems (e.g. missing audio).
    """

    frames: np.ndarray
    log_mel: np.ndarray
    segment_mask: np.ndarray
    has_audio: bool
    frame_size: tuple[int, int]
    duration_s: float
    warnings: list[str] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------- helpers


def _open_container(path: str | os.PathLike) -> Any:
    try:
        return av.open(os.fspath(path), mode="r")
    except Exception as error:  # av.error.*, OSError, ...
        raise MediaError(path, f"cannot open ({type(error).__name__}: {error})") from error


def _container_origin_s(container: Any) -> float:
    """Time (s) that counts as t = 0: the container's start time, else 0."""
    start = container.start_time
    return float(start) / av.time_base if start is not None else 0.0


def _frame_time_s(frame: Any, fallback_s: float) -> float:
    """Presentation time (s) of a decoded frame; ``fallback_s`` when it carries no timestamp."""
    time = frame.time
    return float(time) if time is not None else fallback_s


def _resize_and_centre_crop(frame: Any, size: int) -> np.ndarray:
    """Shorter side -> ``size``, centre crop to a square. Returns [size, size, 3] uint8 RGB."""
    width, height = frame.width, frame.height
    if width <= height:
        new_width, new_height = size, max(size, round(height * size / width))
    else:
        new_width, new_height = max(size, round(width * size / height)), size
    rgb = frame.reformat(width=new_width, height=new_height, format="rgb24", interpolation="AREA").to_ndarray()
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


@dataclasses.dataclass
class _SampledVideo:
    frames: np.ndarray  # [T, F, S, S, 3] uint8
    segment_mask: np.ndarray  # [T] bool
    frame_size: tuple[int, int]  # original (W, H)
    end_s: float  # end of the last decoded frame, or +inf if decoding stopped early


def _sample_video(
    container: Any, path: str | os.PathLike, num_segments: int, frames_per_segment: int, frame_size: int
) -> _SampledVideo:
    """Decode the first video stream up to T seconds and pick the frame shown at each sample time."""
    format_names = set(container.format.name.split(","))
    if format_names & NON_VIDEO_FORMATS or any(name.endswith("_pipe") for name in format_names):
        raise MediaError(path, f"not a video file (FFmpeg reads it as {container.format.name!r})")
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    origin = _container_origin_s(container)
    rate = float(stream.average_rate) if stream.average_rate else 0.0

    offsets = (np.arange(frames_per_segment) + 0.5) / frames_per_segment  # [F]
    sample_times = (np.arange(num_segments)[:, None] + offsets[None, :]).reshape(-1)  # [T*F], ascending
    picked: list[np.ndarray | None] = [None] * sample_times.size
    next_sample = 0

    previous_frame, previous_rgb = None, None
    previous_time, frame_step = None, (1.0 / rate if rate > 0 else 0.0)
    original_size = None
    num_decoded = 0

    def previous_as_rgb() -> np.ndarray:
        nonlocal previous_rgb
        if previous_rgb is None:
            previous_rgb = _resize_and_centre_crop(previous_frame, frame_size)
        return previous_rgb

    stopped_early = False
    for frame in container.decode(stream):
        time = _frame_time_s(frame, num_decoded * frame_step + origin) - origin
        if original_size is None:
            original_size = (int(frame.width), int(frame.height))
        num_decoded += 1
        # Every sample time before this frame is showing the previous frame (or, before the
        # first frame, the first frame itself).
        while next_sample < sample_times.size and time > sample_times[next_sample]:
            if previous_frame is None:
                previous_frame, previous_rgb = frame, None
            picked[next_sample] = previous_as_rgb()
            next_sample += 1
        if previous_time is not None and time > previous_time:
            frame_step = time - previous_time
        previous_frame, previous_rgb, previous_time = frame, None, time
        if next_sample == sample_times.size:
            stopped_early = True
            break

    if num_decoded == 0:
        raise MediaError(path, "video stream has no decodable frames")

    if stopped_early:
        end_s = float("inf")
    else:
        frame_duration = float(previous_frame.duration * previous_frame.time_base) if (
            previous_frame.duration and previous_frame.time_base
        ) else frame_step
        end_s = previous_time + max(frame_duration, 0.0)
        _check_not_truncated(stream, path, origin, end_s, float(num_segments))

    mask = sample_times.reshape(num_segments, frames_per_segment)[:, 0] < end_s  # [T]
    if not mask.any():
        raise MediaError(path, f"video ends at {end_s:.2f} s, before the first sample time {sample_times[0]:.2f} s")
    frames = np.zeros((num_segments, frames_per_segment, frame_size, frame_size, 3), dtype=np.uint8)
    for index in range(sample_times.size):
        segment, slot = divmod(index, frames_per_segment)
        if not mask[segment]:
            continue
        # Valid segment: samples past the end of the video repeat the last frame.
        frames[segment, slot] = picked[index] if picked[index] is not None else previous_as_rgb()
    return _SampledVideo(frames=frames, segment_mask=mask, frame_size=original_size, end_s=end_s)


def _check_not_truncated(stream: Any, path: str | os.PathLike, origin: float, end_s: float, horizon_s: float) -> None:
    """Raise MediaError if decoding hit EOF well before what the stream declares (within the horizon)."""
    if stream.duration is None or stream.time_base is None:
        return
    declared_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
    declared_end = declared_start - origin + float(stream.duration * stream.time_base)
    expected_end = min(declared_end, horizon_s)
    if end_s < expected_end - TRUNCATION_TOLERANCE_S:
        raise MediaError(
            path,
            f"truncated or corrupt: video frames end at {end_s:.2f} s but the stream declares {declared_end:.2f} s",
        )


def _read_audio(container: Any, seconds: float) -> tuple[np.ndarray, bool, list[str]]:
    """First audio stream -> ([round(seconds * 16000)] float32 mono at 16 kHz, has_audio, warnings).

    Each decoded frame is resampled to 16 kHz float keeping its channel layout, then the
    channels are averaged (like VGGish's ``np.mean(data, axis=1)``). The waveform is placed on
    the container's time axis (leading gap zero-filled) and trimmed / zero-padded to ``seconds``.
    """
    num_samples = int(round(seconds * log_mel.SAMPLE_RATE))
    silence = np.zeros(num_samples, dtype=np.float32)
    if not container.streams.audio:
        return silence, False, ["no audio stream; using log-mel of silence"]
    stream = container.streams.audio[0]
    origin = _container_origin_s(container)

    chunks: list[np.ndarray] = []  # each [n] float32
    collected = 0
    leading_offset = None  # samples of silence (>0) or samples to drop (<0) before the first chunk
    resampler, resampler_key = None, None

    def add(resampled_frames: list[Any]) -> None:
        nonlocal collected
        for resampled in resampled_frames:
            samples = resampled.to_ndarray().astype(np.float32, copy=False)  # [channels, n] (planar)
            chunk = samples.reshape(samples.shape[0], -1).mean(axis=0)
            chunks.append(chunk)
            collected += chunk.size

    for frame in container.decode(stream):
        if leading_offset is None:
            leading_offset = int(round((_frame_time_s(frame, origin) - origin) * log_mel.SAMPLE_RATE))
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != resampler_key:  # first frame, or the stream changed its format mid-way
            if resampler is not None:
                add(resampler.resample(None))
            resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=log_mel.SAMPLE_RATE)
            resampler_key = key
        add(resampler.resample(frame))
        if collected + leading_offset >= num_samples:
            break
    if resampler is not None:
        add(resampler.resample(None))

    if collected == 0:
        return silence, False, ["audio stream has no decodable samples; using log-mel of silence"]
    waveform = np.concatenate(chunks)
    if leading_offset > 0:
        waveform = np.concatenate([np.zeros(leading_offset, dtype=np.float32), waveform])
    elif leading_offset < 0:
        waveform = waveform[-leading_offset:]
    out = silence.copy()
    used = min(num_samples, waveform.size)
    out[:used] = waveform[:used]
    return out, True, []


# ------------------------------------------------------------------------- public API


def read_audio_16k_mono(container_or_path: Any, seconds: float) -> tuple[np.ndarray, bool]:
    """Read the first ``seconds`` of the first audio stream as mono float32 at 16 kHz.

    Args:
      container_or_path: a path, or an already opened (not yet read) PyAV input container.
      seconds: length of the returned waveform.
    Returns:
      (waveform [round(seconds * 16000)] float32, zero-padded; has_audio). Without an audio
      stream (or without decodable audio samples) the waveform is all zeros and has_audio False.
    Raises:
      MediaError: the file cannot be opened or its audio cannot be decoded.
    """
    if isinstance(container_or_path, (str, os.PathLike)):
        path = container_or_path
        with _open_container(path) as container:
            return _read_audio_or_raise(container, path, seconds)[:2]
    container = container_or_path
    return _read_audio_or_raise(container, getattr(container, "name", "<container>"), seconds)[:2]


def _read_audio_or_raise(container: Any, path: Any, seconds: float) -> tuple[np.ndarray, bool, list[str]]:
    try:
        return _read_audio(container, seconds)
    except MediaError:
        raise
    except Exception as error:
        raise MediaError(path, f"audio decoding failed ({type(error).__name__}: {error})") from error


def decode_clip(
    path: str | os.PathLike,
    *,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
) -> DecodedClip:
    """Decode ``path`` into T one-second segments of frames and log-mel.

    Args:
      path: video file readable by FFmpeg.
      num_segments: T, number of one-second segments starting at t = 0.
      frames_per_segment: F, frames per segment; frame f of segment t is the last decoded
        frame whose presentation time is <= t + (f + 0.5) / F seconds.
      frame_size: S; frames are resized so the shorter side is S, then centre-cropped to S x S.
    Returns:
      DecodedClip with frames [T, F, S, S, 3] uint8, log_mel [T, 96, 64] float32 and
      segment_mask [T] bool (False, with zero frames, for segments past the end of the video).
    Raises:
      MediaError: missing / non-media / truncated / corrupt file, no video stream, or no frames.
    """
    if num_segments < 1 or frames_per_segment < 1 or frame_size < 1:
        raise ValueError(
            f"num_segments ({num_segments}), frames_per_segment ({frames_per_segment}) "
            f"and frame_size ({frame_size}) must all be >= 1"
        )
    with _open_container(path) as container:
        try:
            video = _sample_video(container, path, num_segments, frames_per_segment, frame_size)
            declared = container.duration
        except MediaError:
            raise
        except Exception as error:
            raise MediaError(path, f"video decoding failed ({type(error).__name__}: {error})") from error
    # A second, independent pass for audio keeps both readers simple (streams are interleaved
    # by time, so reading the first T seconds twice costs little next to video decoding).
    with _open_container(path) as container:
        waveform, has_audio, warnings = _read_audio_or_raise(container, path, float(num_segments))

    if declared is not None and declared > 0:
        duration_s = float(declared) / av.time_base
    else:
        duration_s = video.end_s if np.isfinite(video.end_s) else float(num_segments)
    return DecodedClip(
        frames=video.frames,
        log_mel=log_mel.segment_log_mel(waveform, num_segments),
        segment_mask=video.segment_mask,
        has_audio=has_audio,
        frame_size=video.frame_size,
        duration_s=duration_s,
        warnings=list(warnings),
    )
