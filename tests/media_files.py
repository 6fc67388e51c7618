"""Real media files written with PyAV for the decoding tests (test_media, test_builder_bad_media).

Pictures carry their meaning in colour so a test can tell which frame it got:
`second_colour_frames` paints the top half of each frame with the colour of its second
(SECOND_COLOURS) and the bottom half with a grey that counts the frames within that second;
`quadrant_picture` marks the centre of a frame of any size. Audio is silence with tone
bursts at chosen seconds (`tone_bursts`).
"""

from __future__ import annotations

import fractions
import pathlib

import av
import numpy as np

# One clearly distinct colour per second (RGB), for up to 10 seconds.
SECOND_COLOURS = np.array(
    [
        [230, 30, 30],
        [30, 230, 30],
        [30, 30, 230],
        [230, 230, 30],
        [230, 30, 230],
        [30, 230, 230],
        [240, 240, 240],
        [20, 20, 20],
        [240, 140, 40],
        [120, 60, 200],
    ],
    dtype=np.int32,
)

# Colours of the four quadrants around the centre of a frame (TL, TR, BL, BR) and of what lies
# outside the central square (which a centre crop must cut away).
QUADRANT_COLOURS = np.array(
    [[30, 200, 30], [30, 30, 220], [230, 230, 30], [30, 220, 220]], dtype=np.int32
)
OUTSIDE_COLOUR = np.array([230, 20, 20], dtype=np.int32)

# Variable frame rate: 2 fps in seconds 0 and 3, 25 fps in seconds 1 and 6, a lone frame late
# in second 2, none in second 4, two in second 5; the last frame ends at 7.0 s.
VFR_FRAME_TIMES_S = np.round(
    np.concatenate(
        [
            [0.0, 0.5],
            1.0 + 0.04 * np.arange(25),
            [2.9],
            [3.0, 3.5],
            [5.2, 5.7],
            6.0 + 0.04 * np.arange(25),
        ]
    ),
    3,
)
# (second whose colour is shown, frame index within that second) at t + 0.5 for t = 0..6: the
# last frame at or before the sample time, so second 2 shows 1.96 s and second 4 shows 3.5 s.
VFR_SHOWN_AT_HALF = ((0, 1), (1, 12), (1, 24), (3, 1), (3, 1), (5, 0), (6, 12))

MILLISECOND = fractions.Fraction(1, 1000)
X264_OPTIONS = {"preset": "veryfast", "crf": "12", "threads": "1"}


def frame_grey(index_in_second: int) -> int:
  """Grey level of the bottom half of the frame shown `index_in_second`-th in its second
  (distinct for the first 10 frames of a second, then repeating)."""
  return 20 + 22 * (index_in_second % 10)


def second_colour_frames(frame_times_s, width: int, height: int) -> np.ndarray:
  """[N, H, W, 3] uint8 frames for presentation times [N] (seconds, ascending): top half the
  colour of the frame's second, bottom half frame_grey(n) for the n-th frame of that second."""
  times = np.asarray(frame_times_s, dtype=np.float64)
  seconds = np.floor(times).astype(int)
  frames = np.empty((times.size, height, width, 3), dtype=np.uint8)
  for i, second in enumerate(seconds):
    index_in_second = int(np.sum(seconds[:i] == second))
    frames[i, : height // 2] = SECOND_COLOURS[second]
    frames[i, height // 2 :] = frame_grey(index_in_second)
  return frames


def quadrant_picture(width: int, height: int) -> np.ndarray:
  """[H, W, 3] uint8: the central min(W, H) square split into QUADRANT_COLOURS at the frame's
  centre; OUTSIDE_COLOUR more than 2 px beyond that square (the margin absorbs resampling)."""
  side = min(width, height)
  x = np.arange(width) + 0.5 - width / 2  # pixel centres relative to the frame centre
  y = np.arange(height) + 0.5 - height / 2
  quadrant = (y[:, None] > 0) * 2 + (x[None, :] > 0)  # [H, W] in 0..3
  picture = QUADRANT_COLOURS[quadrant]
  outside = (np.abs(x)[None, :] > side / 2 + 2) | (np.abs(y)[:, None] > side / 2 + 2)
  picture[outside] = OUTSIDE_COLOUR
  return picture.astype(np.uint8)


def tone_bursts(
    seconds: float,
    sample_rate: int,
    frequency_hz: float,
    burst_seconds,
    *,
    amplitude: float = 0.5,
    channels: int = 2,
    burst_length_s: float = 1.0,
) -> np.ndarray:
  """[channels, round(seconds * rate)] float32: silence except a sine of `frequency_hz` from
  each second s in `burst_seconds` to s + burst_length_s (same on every channel)."""
  t = np.arange(int(round(seconds * sample_rate))) / sample_rate
  on = np.zeros(t.size, dtype=bool)
  for start in burst_seconds:
    on |= (t >= start) & (t < start + burst_length_s)
  mono = np.where(on, amplitude * np.sin(2 * np.pi * frequency_hz * t), 0.0)
  return np.repeat(mono[None, :], channels, axis=0).astype(np.float32)


def write_media(
    path,
    frames=None,
    *,
    fps: int = 10,
    frame_times_s=None,
    video_codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: np.ndarray | None = None,
    audio_rate: int = 44100,
    audio_codec: str = "aac",
    container_format: str = "mp4",
    container_options: dict | None = None,
) -> pathlib.Path:
  """Encodes `frames` [N, H, W, 3] uint8 RGB and/or `audio` [channels, n] float32 to `path`.

  Frames are shown at frame_times_s [N] seconds (any ascending times: variable frame rate,
  millisecond time base), else at i / fps. Without frames the file has no video stream,
  without audio no audio stream. Returns `path`.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with av.open(
      str(path), mode="w", format=container_format, options=container_options or {}
  ) as container:
    video = audio_stream = None
    if frames is not None:
      video = container.add_stream(video_codec, rate=fps)
      video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
      if video_codec == "libx264":
        video.options = dict(X264_OPTIONS)
      if frame_times_s is not None:
        video.codec_context.time_base = MILLISECOND
    if audio is not None:
      layout = {1: "mono", 2: "stereo"}[audio.shape[0]]
      audio_stream = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
    if video is not None:
      for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if frame_times_s is not None:
          frame.pts, frame.time_base = int(round(frame_times_s[i] * 1000)), MILLISECOND
        else:
          frame.pts = i
        container.mux(video.encode(frame))
      container.mux(video.encode(None))
    if audio_stream is not None:
      layout = audio_stream.layout.name
      chunk = audio_stream.codec_context.frame_size or 1024
      for start in range(0, audio.shape[1], chunk):
        samples = np.ascontiguousarray(audio[:, start : start + chunk], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = audio_rate, start
        container.mux(audio_stream.encode(frame))
      container.mux(audio_stream.encode(None))
  return path


def write_colour_clip(
    path,
    seconds: int,
    *,
    width: int = 160,
    height: int = 96,
    fps: int = 10,
    audio_rate: int = 44100,
    tone_hz: float | None = 1000.0,
    bursts_s=(2,),
    burst_length_s: float = 1.0,
    **writer_options,
):
  """`seconds` of second_colour_frames at a constant `fps`, with stereo AAC at `audio_rate`
  holding a `tone_hz` burst of `burst_length_s` from each second of `bursts_s` (tone_hz None:
  no audio stream)."""
  times = np.arange(seconds * fps) / fps
  audio = None
  if tone_hz is not None:
    audio = tone_bursts(seconds, audio_rate, tone_hz, bursts_s, burst_length_s=burst_length_s)
  return write_media(
      path,
      second_colour_frames(times, width, height),
      fps=fps,
      audio=audio,
      audio_rate=audio_rate,
      **writer_options,
  )


def write_mpeg2_program_stream(path, seconds: int, *, width: int = 160, height: int = 96):
  """An MPEG-2 video in an MPEG program stream (a DVD-style .mpg), 25 fps, no audio track."""
  times = np.arange(seconds * 25) / 25
  return write_media(
      path,
      second_colour_frames(times, width, height),
      fps=25,
      video_codec="mpeg2video",
      container_format="mpeg",
  )


def png_bytes(rgb: np.ndarray) -> bytes:
  """A PNG image of `rgb` [H, W, 3] uint8, encoded with PyAV."""
  encoder = av.CodecContext.create("png", "w")
  encoder.width, encoder.height, encoder.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
  packets = encoder.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")) + encoder.encode(None)
  return b"".join(bytes(packet) for packet in packets)


def corrupt_middle(source, destination, *, fraction: float = 0.1, seed: int = 0):
  """Copies `source` to `destination` with `fraction` of its bytes, centred in the middle of
  the file, overwritten by seeded random bytes. Returns `destination`."""
  data = bytearray(pathlib.Path(source).read_bytes())
  length = int(len(data) * fraction)
  start = (len(data) - length) // 2
  data[start : start + length] = (
      np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
  )
  pathlib.Path(destination).write_bytes(bytes(data))
  return pathlib.Path(destination)


def truncate(source, destination, *, keep_fraction: float):
  """Copies the first `keep_fraction` of `source`'s bytes to `destination`."""
  data = pathlib.Path(source).read_bytes()
  pathlib.Path(destination).write_bytes(data[: int(len(data) * keep_fraction)])
  return pathlib.Path(destination)


def corrupt_packets(source, destination, start_s: float, end_s: float, *, seed: int = 0):
  """Copies `source` to `destination` with the bytes of every packet (of any stream) whose
  presentation time lies in [start_s, end_s) overwritten by seeded random bytes: a stretch of
  damaged data at a known time. Returns `destination`."""
  data = bytearray(pathlib.Path(source).read_bytes())
  rng = np.random.default_rng(seed)
  with av.open(str(source)) as container:
    for packet in container.demux():
      if packet.size and packet.pts is not None and packet.pos is not None and packet.pos >= 0:
        if start_s <= float(packet.pts * packet.time_base) < end_s:
          data[packet.pos : packet.pos + packet.size] = rng.integers(
              0, 256, packet.size, dtype=np.uint8
          ).tobytes()
  pathlib.Path(destination).write_bytes(bytes(data))
  return pathlib.Path(destination)
