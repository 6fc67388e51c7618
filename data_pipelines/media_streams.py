"""Reading one stream of a media file with PyAV so that damaged data is counted, not fatal.

`decoded_frames` is ``container.decode(stream)`` for files that may be corrupt: a packet the
decoder rejects is skipped and recorded (FFmpeg's command line does the same), a read error
ends the stream and is recorded, and a reading budget turns broken timestamps that would
keep the decoder going into a `MediaError` instead of a hang. `StreamDamage` holds the
record and says when a stream is too damaged to use. Times are seconds from t = 0, the
container's start time (`container_origin_s`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

import av
import numpy as np

MAX_UNDECODABLE_FRACTION = 0.25
"""A stream with more than this fraction of its packets (within the horizon) rejected is corrupt."""

MAX_PACKETS_PER_SECOND = 1000
"""Reading budget per stream: more packets than this per second of horizon (+1 s) is an error."""

PACKET_TIME_SLACK_S = 2.0
"""A rejected packet's own timestamp places the damage when it lies within this of the frames
decoded so far (decoders run a few frames ahead); otherwise (a garbled timestamp) they do."""


class MediaError(Exception):
  """A media file could not be decoded. The message names the path and the reason."""

  def __init__(self, path: str | os.PathLike, reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"cannot decode media file {self.path!r}: {reason}")


def open_container(path: str | os.PathLike) -> Any:
  """av.open(path) for reading; any failure is a MediaError."""
  try:
    return av.open(os.fspath(path), mode="r")
  except Exception as error:  # av.error.*, OSError, ...
    raise MediaError(path, f"cannot open ({type(error).__name__}: {error})") from error


def container_origin_s(container: Any) -> float:
  """Time (s) that counts as t = 0: the container's start time, else 0."""
  start = container.start_time
  return float(start) / av.time_base if start is not None else 0.0


def frame_time_s(frame: Any, fallback_s: float) -> float:
  """Presentation time (s) of a decoded frame; ``fallback_s`` when it carries no timestamp."""
  time = frame.time
  return float(time) if time is not None and np.isfinite(time) else fallback_s


def declared_end_s(stream: Any, origin: float) -> float | None:
  """End (s from t = 0) that the stream declares: its duration, else Matroska's DURATION tag."""
  if stream.time_base is not None and stream.duration is not None:
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
    return start - origin + float(stream.duration * stream.time_base)
  tag = stream.metadata.get("DURATION")  # "HH:MM:SS.fffffffff", written by FFmpeg's mkv muxer
  try:
    hours, minutes, seconds = tag.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
  except (AttributeError, ValueError):
    return None


@dataclasses.dataclass
class StreamDamage:
  """What went wrong while reading one stream."""

  kind: str  # "video" | "audio"
  num_packets: int = 0
  undecodable_at_s: list[float] = dataclasses.field(default_factory=list)  # per rejected packet
  read_error: str | None = None
  read_error_at_s: float = 0.0

  def warnings(self) -> list[str]:
    notes = []
    if self.undecodable_at_s:
      notes.append(
          f"{self.kind}: skipped {len(self.undecodable_at_s)} undecodable packets of "
          f"{self.num_packets} (corrupt data) from {min(self.undecodable_at_s):.2f} s"
      )
    if self.read_error is not None:
      notes.append(
          f"{self.kind}: reading stopped after {self.read_error_at_s:.2f} s ({self.read_error})"
      )
    return notes

  def raise_if_mostly_corrupt(self, path: str | os.PathLike) -> None:
    if len(self.undecodable_at_s) > MAX_UNDECODABLE_FRACTION * max(self.num_packets, 1):
      raise MediaError(
          path,
          f"corrupt: {len(self.undecodable_at_s)} of {self.num_packets} {self.kind} "
          "packets read cannot be decoded",
      )


def _damage_time_s(packet: Any, origin: float, decoded_until_s: float) -> float:
  """Where (s from t = 0) a rejected packet's content belonged: its timestamp if plausible."""
  if packet.pts is None or packet.time_base is None:
    return decoded_until_s
  time = float(packet.pts * packet.time_base) - origin
  return time if abs(time - decoded_until_s) <= PACKET_TIME_SLACK_S else decoded_until_s


def decoded_frames(
    container: Any, stream: Any, path: str | os.PathLike, horizon_s: float, damage: StreamDamage
) -> Iterator[Any]:
  """Frames of ``stream`` in presentation order, like ``container.decode(stream)``, except that
  a packet the decoder rejects is skipped (recorded in ``damage``) and a read error ends the
  stream (recorded) instead of raising.

  Raises:
    MediaError: more than MAX_PACKETS_PER_SECOND * (horizon_s + 1) packets were read; the
      caller stops once past ``horizon_s`` seconds, so only broken timestamps get there.
  """
  origin = container_origin_s(container)
  max_packets = int(MAX_PACKETS_PER_SECOND * (horizon_s + 1.0))
  decoded_until_s = 0.0
  packets = container.demux(stream)
  while True:
    try:
      packet = next(packets)
    except StopIteration:
      return
    except av.error.FFmpegError as error:
      damage.read_error = f"{type(error).__name__}: {error}"
      damage.read_error_at_s = decoded_until_s
      packet = None  # flush the decoder: it may hold frames of packets already read
    if packet is not None and packet.size:
      damage.num_packets += 1
      if damage.num_packets > max_packets:
        raise MediaError(
            path,
            f"more than {max_packets} {damage.kind} packets within "
            f"{horizon_s:g} s: broken timestamps",
        )
    try:
      frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
    except av.error.FFmpegError:
      frames = []
      if packet is not None and packet.size:
        damage.undecodable_at_s.append(_damage_time_s(packet, origin, decoded_until_s))
    for frame in frames:
      if frame.time_base is None:  # frames flushed without a packet carry no time base
        frame.time_base = stream.time_base
      decoded_until_s = max(decoded_until_s, frame_time_s(frame, origin + decoded_until_s) - origin)
      yield frame
    if packet is None:
      return
