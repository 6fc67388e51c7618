"""Decode a video file into per-second frames and VGGish log-mel patches with PyAV.

A clip is cut into ``T`` one-second segments starting at t = 0 (the container's start
time). Segment ``t`` gets ``F`` RGB frames, frame ``f`` sampled at ``t + (f + 0.5) / F``
seconds, and the 96 x 64 log-mel patch of audio second ``t`` (see ``log_mel``).

Decoding is sequential and stops once past ``T`` seconds, so long videos stay cheap.
The container is sniffed from the content; the file name's extension does not matter.

What a damaged file gives:

* missing, empty, not a media file (text, random bytes, a still image), no video stream,
  no decodable frame: :class:`MediaError`;
* truncated (the video ends more than TRUNCATION_TOLERANCE_S before the duration its stream
  declares, within the T seconds read): :class:`MediaError`. Containers that declare no
  duration (MPEG program / transport streams: FFmpeg estimates it from the last timestamps
  in the file) cannot tell a truncated file from a short one: it decodes as a short clip;
* corrupt data inside an otherwise readable file: packets the decoder rejects are skipped,
  as FFmpeg's command line does (see ``media_streams``), and the clip decodes.
  ``DecodedClip.warnings`` says what was skipped and ``DecodedClip.damaged_segments`` marks
  the segments it touched: a sampled frame decoded after a lost packet and before the next
  key frame (inter-coded frames carry the damage forward), a sample time whose frame was
  lost (the previous frame is shown), a video gap that coincides with a gap in the audio
  (demuxers such as Matroska's drop unreadable data silently, in both streams), or a
  zero-filled audio gap left by lost packets. Audio stays on its timestamps across gaps.
  A stream with more than media_streams.MAX_UNDECODABLE_FRACTION of its packets rejected is
  :class:`MediaError`;
* broken timestamps that would keep the decoder reading: :class:`MediaError`, never a hang.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import av
import numpy as np

from data_pipelines import log_mel
from data_pipelines import media_audio
from data_pipelines import media_streams
from data_pipelines.media_streams import MediaError  # the public name: media.MediaError

TRUNCATION_TOLERANCE_S = 1.0
"""Video that ends this much earlier than its stream declares (within the T seconds read) is
truncated."""

VIDEO_GAP_STEPS = 2.5
"""Consecutive frames further apart than this many nominal frame steps leave a video gap."""

NON_VIDEO_FORMATS = frozenset({"tty", "bin", "adf", "idf", "xbin", "image2"})
"""FFmpeg demuxers that turn text files (ANSI art) or still images into a 'video' stream."""


@dataclasses.dataclass
class DecodedClip:
  """Model-ready content of one video.

  Attributes:
    frames: [T, F, S, S, 3] uint8 RGB; zeros for padded (invalid) segments.
    log_mel: [T, 96, 64] float32 VGGish log-mel, one patch per second.
    segment_mask: [T] bool, True where the segment's first sampled time lies inside the video.
    has_audio: False when there is no audio stream or it yields no samples (log_mel is then of
      silence).
    frame_size: (width, height) of the ORIGINAL decoded video frames.
    duration_s: declared container duration in seconds, else (or when the decoded frames run
      longer) the end of the last decoded video frame.
    warnings: human-readable notes about recoverable problems (missing audio, skipped corrupt data).
    damaged_segments: [T] bool, True for valid segments whose sampled frames or audio second
      were affected by corrupt data (see the module docstring); None only for a clip that
      decode_clip did not make.
  """

  frames: np.ndarray
  log_mel: np.ndarray
  segment_mask: np.ndarray
  has_audio: bool
  frame_size: tuple[int, int]
  duration_s: float
  warnings: list[str] = dataclasses.field(default_factory=list)
  damaged_segments: np.ndarray | None = None


# -------------------------------------------------------------------------------- video


def _resize_and_centre_crop(frame: Any, size: int) -> np.ndarray:
  """Shorter side -> ``size``, centre crop to a square. Returns [size, size, 3] uint8 RGB."""
  width, height = frame.width, frame.height
  if width <= height:
    new_width, new_height = size, max(size, round(height * size / width))
  else:
    new_width, new_height = max(size, round(width * size / height)), size
  rgb = frame.reformat(
      width=new_width, height=new_height, format="rgb24", interpolation="AREA"
  ).to_ndarray()
  top, left = (new_height - size) // 2, (new_width - size) // 2
  return np.ascontiguousarray(rgb[top : top + size, left : left + size])


resize_and_centre_crop = _resize_and_centre_crop  # public: still images (flickr_soundnet)


@dataclasses.dataclass
class _SampledVideo:
  frames: np.ndarray  # [T, F, S, S, 3] uint8
  segment_mask: np.ndarray  # [T] bool
  frame_size: tuple[int, int]  # original (W, H)
  end_s: float  # end of the last decoded frame, or +inf if decoding stopped early
  sample_times_s: np.ndarray  # [T*F] ascending
  shown_s: np.ndarray  # [T*F] time of the frame shown at each sample time
  next_s: np.ndarray  # [T*F] time of the decoded frame after it (+inf: none)
  shown_damaged: np.ndarray  # [T*F] bool: that frame carries damage (corrupt, or lost reference)
  nominal_step_s: float  # 1 / the stream's average frame rate, 0 if unknown
  damage: media_streams.StreamDamage


def _sample_video(
    container: Any,
    path: str | os.PathLike,
    num_segments: int,
    frames_per_segment: int,
    frame_size: int,
) -> _SampledVideo:
  """Decode the first video stream up to T seconds and pick the frame shown at each sample time."""
  format_names = set(container.format.name.split(","))
  if format_names & NON_VIDEO_FORMATS or any(name.endswith("_pipe") for name in format_names):
    raise MediaError(path, f"not a video file (FFmpeg reads it as {container.format.name!r})")
  if not container.streams.video:
    raise MediaError(path, "no video stream")
  stream = container.streams.video[0]
  stream.thread_type = "AUTO"
  origin = media_streams.container_origin_s(container)
  rate = float(stream.average_rate) if stream.average_rate else 0.0

  offsets = (np.arange(frames_per_segment) + 0.5) / frames_per_segment  # [F]
  sample_times = (np.arange(num_segments)[:, None] + offsets[None, :]).reshape(-1)  # [T*F]
  picked: list[np.ndarray | None] = [None] * sample_times.size
  shown_s = np.full(sample_times.size, np.nan)
  next_s = np.full(sample_times.size, np.inf)
  shown_damaged = np.zeros(sample_times.size, dtype=bool)
  next_sample = 0

  previous_frame, previous_rgb, previous_damaged = None, None, False
  previous_time, frame_step = None, (1.0 / rate if rate > 0 else 0.0)
  original_size = None
  num_decoded = 0
  damage = media_streams.StreamDamage("video")
  num_undecodable_seen = 0
  unhealed_s: list[float] = []  # damage times not yet followed by a key frame

  def previous_as_rgb() -> np.ndarray:
    nonlocal previous_rgb
    if previous_rgb is None:
      previous_rgb = _resize_and_centre_crop(previous_frame, frame_size)
    return previous_rgb

  stopped_early = False
  for frame in media_streams.decoded_frames(container, stream, path, float(num_segments), damage):
    time = media_streams.frame_time_s(frame, num_decoded * frame_step + origin) - origin
    if original_size is None:
      original_size = (int(frame.width), int(frame.height))
    num_decoded += 1
    unhealed_s += damage.undecodable_at_s[num_undecodable_seen:]
    num_undecodable_seen = len(damage.undecodable_at_s)
    if frame.key_frame:  # inter-coded frames carry a lost packet's damage up to a key frame
      unhealed_s = [damage_s for damage_s in unhealed_s if damage_s > time]
    frame_damaged = bool(frame.is_corrupt) or any(damage_s <= time for damage_s in unhealed_s)
    # Every sample time before this frame is showing the previous frame (or, before the
    # first frame, the first frame itself).
    while next_sample < sample_times.size and time > sample_times[next_sample]:
      if previous_frame is None:
        previous_frame, previous_rgb, previous_time = frame, None, time
        previous_damaged = frame_damaged
      picked[next_sample] = previous_as_rgb()
      shown_s[next_sample], next_s[next_sample] = previous_time, time
      shown_damaged[next_sample] = previous_damaged
      next_sample += 1
    if previous_time is not None and time > previous_time:
      frame_step = time - previous_time
    previous_frame, previous_rgb, previous_time = frame, None, time
    previous_damaged = frame_damaged
    if next_sample == sample_times.size:
      stopped_early = True
      break

  damage.raise_if_mostly_corrupt(path)
  if num_decoded == 0:
    details = "; ".join(damage.warnings())
    raise MediaError(
        path, "video stream has no decodable frames" + (f" ({details})" if details else "")
    )

  if stopped_early:
    end_s = float("inf")
  else:
    frame_duration = (
        float(previous_frame.duration * previous_frame.time_base)
        if (previous_frame.duration and previous_frame.time_base)
        else frame_step
    )
    end_s = previous_time + max(frame_duration, 0.0)
    _check_not_truncated(stream, path, origin, end_s, float(num_segments))
    shown_s[next_sample:], shown_damaged[next_sample:] = previous_time, previous_damaged

  mask = sample_times.reshape(num_segments, frames_per_segment)[:, 0] < end_s  # [T]
  if not mask.any():
    raise MediaError(
        path,
        f"video ends at {end_s:.2f} s, before the first sample time {sample_times[0]:.2f} s",
    )
  frames = np.zeros((num_segments, frames_per_segment, frame_size, frame_size, 3), dtype=np.uint8)
  for index in range(sample_times.size):
    segment, slot = divmod(index, frames_per_segment)
    if not mask[segment]:
      continue
    # Valid segment: samples past the end of the video repeat the last frame.
    frames[segment, slot] = picked[index] if picked[index] is not None else previous_as_rgb()
  return _SampledVideo(
      frames=frames,
      segment_mask=mask,
      frame_size=original_size,
      end_s=end_s,
      sample_times_s=sample_times,
      shown_s=shown_s,
      next_s=next_s,
      shown_damaged=shown_damaged,
      nominal_step_s=1.0 / rate if rate > 0 else 0.0,
      damage=damage,
  )


def _check_not_truncated(
    stream: Any, path: str | os.PathLike, origin: float, end_s: float, horizon_s: float
) -> None:
  """Raise MediaError if decoding hit EOF well before what the stream declares (within the
  horizon)."""
  declared_end = media_streams.declared_end_s(stream, origin)
  if declared_end is None:
    return
  if end_s < min(declared_end, horizon_s) - TRUNCATION_TOLERANCE_S:
    raise MediaError(
        path,
        f"truncated or corrupt: video frames end at {end_s:.2f} s but the stream declares "
        f"{declared_end:.2f} s",
    )


# ------------------------------------------------------------------------------- damage


def _damaged_segments(
    video: _SampledVideo, audio: media_audio.Audio, num_segments: int
) -> tuple[np.ndarray, list[str]]:
  """([T] bool: valid segments touched by corrupt data, by the rules of the module docstring;
  notes on video lost without a rejected packet)."""
  times, shown, following = video.sample_times_s, video.shown_s, video.next_s  # each [T*F]
  damaged = video.shown_damaged.copy()
  shown_before = np.where(shown <= times, shown, -np.inf)  # before the first frame: -inf
  for lost_s in video.damage.undecodable_at_s:  # the frame due at the sample time was lost
    damaged |= (shown_before < lost_s) & (lost_s <= times)
  if video.damage.read_error is not None:  # samples after the last frame read
    damaged |= np.isinf(following)
  lost_with_audio = np.zeros_like(damaged)
  if video.nominal_step_s > 0:  # a video gap over (shown, time] that the audio lost as well
    in_gap = following - shown > VIDEO_GAP_STEPS * video.nominal_step_s
    for start, end in audio.gaps_s:
      lost_with_audio |= in_gap & (start < times) & (end > shown)
  lost_spans: list[list[float]] = []  # merged (start, end) of those video gaps
  for start, end in sorted(zip(shown[lost_with_audio], following[lost_with_audio])):
    if lost_spans and start <= lost_spans[-1][1]:
      lost_spans[-1][1] = max(lost_spans[-1][1], end)
    else:
      lost_spans.append([start, end])
  notes = [
      f"video: no frames from {start:.2f} s to {end:.2f} s, where the audio has a gap too "
      "(data lost)"
      for start, end in lost_spans
  ]
  # Audio seconds overlapping a stretch lost with packets, or lost together with the video.
  audio_damaged = audio.damaged_s + [
      (start, end)
      for start, end in audio.gaps_s
      if any(start < span_end and end > span_start for span_start, span_end in lost_spans)
  ]
  damaged = (damaged | lost_with_audio).reshape(num_segments, -1).any(axis=1)
  t = np.arange(num_segments)
  for start, end in audio_damaged:
    damaged |= (t < end) & (t + 1 > start)
  return damaged & video.segment_mask, notes


# --------------------------------------------------------------------------- public API


def decode_clip(
    path: str | os.PathLike,
    *,
    num_segments: int = 10,
    frames_per_segment: int = 1,
    frame_size: int = 224,
) -> DecodedClip:
  """Decode ``path`` into T one-second segments of frames and log-mel.

  Args:
    path: video file readable by FFmpeg (the container is sniffed, the extension is ignored).
    num_segments: T, number of one-second segments starting at t = 0.
    frames_per_segment: F, frames per segment; frame f of segment t is the last decoded
      frame whose presentation time is <= t + (f + 0.5) / F seconds.
    frame_size: S; frames are resized so the shorter side is S, then centre-cropped to S x S.
  Returns:
    DecodedClip with frames [T, F, S, S, 3] uint8, log_mel [T, 96, 64] float32,
    segment_mask [T] bool (False, with zero frames, for segments past the end of the video)
    and damaged_segments [T] bool (segments touched by corrupt data).
  Raises:
    MediaError: missing / non-media / truncated / mostly corrupt file, no video stream, or
      no frames (see the module docstring).
  """
  if num_segments < 1 or frames_per_segment < 1 or frame_size < 1:
    raise ValueError(
        f"num_segments ({num_segments}), frames_per_segment ({frames_per_segment}) "
        f"and frame_size ({frame_size}) must all be >= 1"
    )
  with media_streams.open_container(path) as container:
    try:
      video = _sample_video(container, path, num_segments, frames_per_segment, frame_size)
      declared = container.duration
    except MediaError:
      raise
    except Exception as error:
      raise MediaError(path, f"video decoding failed ({type(error).__name__}: {error})") from error
  # A second, independent pass for audio keeps both readers simple (streams are interleaved
  # by time, so reading the first T seconds twice costs little next to video decoding).
  with media_streams.open_container(path) as container:
    audio = media_audio.read_audio_or_raise(container, path, float(num_segments))

  damaged_segments, damage_notes = _damaged_segments(video, audio, num_segments)
  duration_s = float(declared) / av.time_base if declared is not None and declared > 0 else 0.0
  if np.isfinite(video.end_s):
    duration_s = max(duration_s, video.end_s)
  elif duration_s == 0.0:
    duration_s = float(num_segments)
  return DecodedClip(
      frames=video.frames,
      log_mel=log_mel.segment_log_mel(audio.waveform, num_segments),
      segment_mask=video.segment_mask,
      has_audio=audio.has_audio,
      frame_size=video.frame_size,
      duration_s=duration_s,
      warnings=video.damage.warnings() + damage_notes + audio.warnings,
      damaged_segments=damaged_segments,
  )
