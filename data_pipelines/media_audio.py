"""The audio of a media file: its first audio stream as 16 kHz mono on the container's time axis.

Each decoded frame is resampled to 16 kHz keeping its channel layout, then the channels are
averaged; samples go where their frame's timestamp says, so a leading gap, or a gap left by lost
packets, stays zero and is reported (`Audio.gaps_s`, `Audio.damaged_s`) for
data_pipelines/media.py's damaged segments. No audio stream (or no decodable sample) gives
silence and has_audio False; a stream that cannot be read is MediaError.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import av
import numpy as np

from data_pipelines import log_mel
from data_pipelines import media_streams
from data_pipelines.media_streams import MediaError

AUDIO_GAP_TOLERANCE_S = 0.01
"""Audio frames that start later than the previous one ends by more than this leave a zero gap."""


@dataclasses.dataclass
class Audio:
  waveform: np.ndarray  # [round(seconds * 16000)] float32 mono at 16 kHz
  has_audio: bool
  warnings: list[str]
  gaps_s: list[tuple[float, float]]  # (start, end) left zero between decoded frames
  damaged_s: list[tuple[float, float]]  # the gaps left by lost packets, and a damaged ending


def read_audio(container: Any, path: str | os.PathLike, seconds: float) -> Audio:
  """First audio stream -> 16 kHz mono placed on the container's time axis, ``seconds`` long.

  Each decoded frame is resampled to 16 kHz float keeping its channel layout, then the
  channels are averaged (like VGGish's ``np.mean(data, axis=1)``). Samples go where their
  frame's timestamp says: a leading gap, or a gap left by lost packets, stays zero.
  """
  num_samples = int(round(seconds * log_mel.SAMPLE_RATE))
  waveform = np.zeros(num_samples, dtype=np.float32)
  if not container.streams.audio:
    return Audio(waveform, False, ["no audio stream; using log-mel of silence"], [], [])
  stream = container.streams.audio[0]
  origin = media_streams.container_origin_s(container)
  damage = media_streams.StreamDamage("audio")
  gaps, damaged = [], []
  num_undecodable_seen = 0
  cursor = None  # where (16 kHz samples from t = 0) the next resampled sample goes
  expected_start_s = None  # where the next frame starts if the stream is continuous
  resampler, resampler_key = None, None

  def write(resampled_frames: list[Any]) -> None:
    nonlocal cursor
    for resampled in resampled_frames:
      samples = resampled.to_ndarray().astype(np.float32, copy=False)  # [channels, n] (planar)
      chunk = samples.reshape(samples.shape[0], -1).mean(axis=0)
      low, high = max(cursor, 0), min(cursor + chunk.size, num_samples)
      if low < high:
        waveform[low:high] = chunk[low - cursor : high - cursor]
      cursor += chunk.size

  for frame in media_streams.decoded_frames(container, stream, path, seconds, damage):
    start_s = media_streams.frame_time_s(frame, origin + (expected_start_s or 0.0)) - origin
    lost_before = len(damage.undecodable_at_s) > num_undecodable_seen
    num_undecodable_seen = len(damage.undecodable_at_s)
    gap_start_s = 0.0 if cursor is None else expected_start_s
    if start_s - gap_start_s > AUDIO_GAP_TOLERANCE_S:  # a leading gap, or one between frames
      gaps.append((gap_start_s, start_s))
      if lost_before:
        damaged.append((gap_start_s, start_s))
    if cursor is None:  # clamped, so a garbage timestamp cannot cost unbounded reading
      cursor = int(np.clip(round(start_s * log_mel.SAMPLE_RATE), -num_samples, num_samples))
    elif start_s - expected_start_s > AUDIO_GAP_TOLERANCE_S:
      write(resampler.resample(None))  # a new resampler starts after the gap
      resampler_key = None
      cursor = max(cursor, int(round(start_s * log_mel.SAMPLE_RATE)))
    key = (frame.format.name, frame.layout.name, frame.sample_rate)
    if key != resampler_key:  # first frame, after a gap, or the stream changed its format
      if resampler is not None and resampler_key is not None:
        write(resampler.resample(None))
      resampler = av.AudioResampler(
          format="fltp", layout=frame.layout.name, rate=log_mel.SAMPLE_RATE
      )
      resampler_key = key
    write(resampler.resample(frame))
    expected_start_s = start_s + frame.samples / frame.sample_rate
    if cursor >= num_samples:
      break
  if resampler is not None:
    write(resampler.resample(None))
  damage.raise_if_mostly_corrupt(path)
  if len(damage.undecodable_at_s) > num_undecodable_seen or damage.read_error is not None:
    damaged.append((expected_start_s or 0.0, seconds))  # the audio ends in damage

  if cursor is None:
    return Audio(
        waveform,
        False,
        damage.warnings() + ["audio stream has no decodable samples; using log-mel of silence"],
        [],
        [],
    )
  return Audio(waveform, True, damage.warnings(), gaps, damaged)


def read_audio_or_raise(container: Any, path: Any, seconds: float) -> Audio:
  try:
    return read_audio(container, path, seconds)
  except MediaError:
    raise
  except Exception as error:
    raise MediaError(path, f"audio decoding failed ({type(error).__name__}: {error})") from error


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
    with media_streams.open_container(path) as container:
      audio = read_audio_or_raise(container, path, seconds)
  else:
    container = container_or_path
    audio = read_audio_or_raise(container, getattr(container, "name", "<container>"), seconds)
  return audio.waveform, audio.has_audio
