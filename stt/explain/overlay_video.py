"""Writes a video with its explanation drawn on it: "where" as a heatmap, "when" as a bar strip.

Every frame of the input is re-encoded (H.264, at most `max_height` pixels high) with the
`where` map of its second blended over the region the model saw (the centre square crop), a
strip at the bottom with the `when` weight of every second of its window (the current second
highlighted) and a banner on top (e.g. the explained class). The original audio is re-encoded
to AAC alongside; a video without audio gives a video without audio.
"""

from __future__ import annotations

import math
import os

import av
import matplotlib
from matplotlib import figure as figure_lib
from matplotlib.backends import backend_agg
import numpy as np

STRIP_HEIGHT = 24
BANNER_HEIGHT = 22
_HEAT_ALPHA = 0.45


def centre_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
  """(x0, y0, x1, y1) of the centre square the model sees (resize shorter side, centre crop)."""
  side = min(width, height)
  x0, y0 = (width - side) // 2, (height - side) // 2
  return x0, y0, x0 + side, y0 + side


def _even(value: float) -> int:
  return max(2, int(round(value / 2)) * 2)


def _heat_rgb(where: np.ndarray, size: int) -> np.ndarray:
  """[h,w] map → [size,size,3] float32 colour image in [0,1] (jet), bilinear upsampling."""
  h, w = where.shape
  peak = float(where.max())
  normalised = where / peak if peak > 0 else np.zeros_like(where)
  # Bilinear resize with pixel centres aligned, as the pointing game maps cells to pixels.
  ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
  xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
  top = normalised[y0][:, x0] * (1 - fx) + normalised[y0][:, x1] * fx
  bottom = normalised[y1][:, x0] * (1 - fx) + normalised[y1][:, x1] * fx
  resized = top * (1 - fy) + bottom * fy
  return matplotlib.colormaps["jet"](resized)[..., :3].astype(np.float32)


def _banner(text: str, width: int) -> np.ndarray:
  """[BANNER_HEIGHT,width,3] uint8 white text on black."""
  figure = figure_lib.Figure(figsize=(width / 100, BANNER_HEIGHT / 100), dpi=100, facecolor="black")
  backend_agg.FigureCanvasAgg(figure)
  figure.text(0.01, 0.5, text, color="white", fontsize=9, va="center", ha="left")
  figure.canvas.draw()
  image = np.asarray(figure.canvas.buffer_rgba())[..., :3]
  return np.ascontiguousarray(image[:BANNER_HEIGHT, :width])


def _when_strip(when: np.ndarray, window_start: int, second: int, width: int) -> np.ndarray:
  """[STRIP_HEIGHT,width,3] uint8 bars of `when` [T] for one window; `second` highlighted."""
  strip = np.full((STRIP_HEIGHT, width, 3), 30, np.uint8)
  t = len(when)
  peak = max(float(np.max(when)), 1e-9)
  for segment in range(t):
    x0, x1 = segment * width // t, (segment + 1) * width // t
    bar = int(round((STRIP_HEIGHT - 2) * float(when[segment]) / peak))
    current = window_start + segment == second
    colour = (255, 200, 0) if current else (0, 200, 255)
    if bar > 0:
      strip[STRIP_HEIGHT - bar :, x0 + 1 : max(x1 - 1, x0 + 2)] = colour
    if current:
      strip[:2, x0:x1] = (255, 255, 255)
  return strip


class _FrameDecorator:
  """Draws the explanation of second s on frames; caches the heatmap of the current second."""

  def __init__(
      self,
      where: np.ndarray,
      when: np.ndarray,
      segments_per_window: int,
      source_size: tuple[int, int],
      output_size: tuple[int, int],
      banner: str,
  ):
    self._where, self._when, self._t = where, when, segments_per_window
    out_w, out_h = output_size
    scale = out_w / source_size[0]
    x0, y0, x1, y1 = centre_crop_box(*source_size)
    self._box = tuple(int(round(v * scale)) for v in (x0, y0, x1, y1))
    self._box = (self._box[0], self._box[1], min(self._box[2], out_w), min(self._box[3], out_h))
    self._banner = _banner(banner, out_w)
    self._cached_second, self._cached_heat = None, None

  def __call__(self, rgb: np.ndarray, second: int) -> np.ndarray:
    """rgb [H,W,3] uint8 of the output size → [BANNER+H+STRIP, W, 3] uint8."""
    second = min(max(second, 0), len(self._where) - 1)
    x0, y0, x1, y1 = self._box
    if self._cached_second != second:
      side = max(x1 - x0, y1 - y0)
      self._cached_heat = _heat_rgb(self._where[second], side)[: y1 - y0, : x1 - x0]
      self._cached_second = second
    image = rgb.astype(np.float32) / 255.0
    image *= 0.55  # outside the crop: dimmed
    crop = rgb[y0:y1, x0:x1].astype(np.float32) / 255.0
    image[y0:y1, x0:x1] = (1 - _HEAT_ALPHA) * crop + _HEAT_ALPHA * self._cached_heat
    window_start = (second // self._t) * self._t
    window_when = self._when[window_start : window_start + self._t]
    strip = _when_strip(window_when, window_start, second, rgb.shape[1])
    body = (image * 255).round().astype(np.uint8)
    return np.concatenate([self._banner, body, strip], axis=0)


def write_overlay(
    source_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    where: np.ndarray,
    when: np.ndarray,
    segments_per_window: int,
    banner: str,
    max_height: int = 480,
) -> dict:
  """Re-encodes `source_path` with the explanation drawn on every frame.

  Args:
    where: [N,h,w] map per second of the video (second s covers [s, s+1) from the start).
    when: [N] weight per second (normalised within each window of `segments_per_window`).
  Returns:
    {'frames': frames written, 'has_audio': bool, 'size': (width, height)}.
  """
  with av.open(os.fspath(source_path)) as source:
    video_in = source.streams.video[0]
    audio_in = source.streams.audio[0] if source.streams.audio else None
    origin = float(source.start_time) / av.time_base if source.start_time is not None else 0.0
    width, height = video_in.codec_context.width, video_in.codec_context.height
    scale = min(1.0, max_height / height)
    out_w, out_h = _even(width * scale), _even(height * scale)
    rate = video_in.average_rate or video_in.guessed_rate or 25
    fps = max(1, min(60, int(round(float(rate)))))
    decorate = _FrameDecorator(
        where, when, segments_per_window, (width, height), (out_w, out_h), banner
    )
    with av.open(os.fspath(output_path), mode="w") as output:
      video_out = output.add_stream("libx264", rate=fps)
      video_out.width, video_out.height = out_w, out_h + BANNER_HEIGHT + STRIP_HEIGHT
      video_out.pix_fmt = "yuv420p"
      audio_out, resampler = None, None
      if audio_in is not None:
        layout = "mono" if audio_in.codec_context.channels == 1 else "stereo"
        sample_rate = audio_in.codec_context.sample_rate or 48000
        audio_out = output.add_stream("aac", rate=sample_rate, layout=layout)
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
      streams = [video_in] + ([audio_in] if audio_in is not None else [])
      frames_written, last_pts = 0, -1
      for packet in source.demux(*streams):
        for frame in packet.decode():
          if packet.stream.type == "video":
            time = (frame.time if frame.time is not None else frames_written / fps) - origin
            pts = int(round(time * fps))
            if pts <= last_pts:
              pts = last_pts + 1
            rgb = frame.to_ndarray(format="rgb24", width=out_w, height=out_h)
            out_frame = av.VideoFrame.from_ndarray(
                decorate(rgb, int(math.floor(time))), format="rgb24"
            )
            out_frame.pts, last_pts = pts, pts
            output.mux(video_out.encode(out_frame))
            frames_written += 1
          else:
            for resampled in resampler.resample(frame):
              resampled.pts = None
              output.mux(audio_out.encode(resampled))
      output.mux(video_out.encode())
      if audio_out is not None:
        for resampled in resampler.resample(None):
          output.mux(audio_out.encode(resampled))
        output.mux(audio_out.encode())
  return {"frames": frames_written, "has_audio": audio_in is not None, "size": (out_w, out_h)}
