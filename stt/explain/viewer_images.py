"""The viewer's pictures: one JPEG strip of a video's segment frames and one of its log-mel.

Both are small so that a page of hundreds of videos stays light: the frames are the T segments'
last frames (the centred square crop the model saw, `panels.record_panel_inputs`) scaled to
`thumbnail` pixels and tiled left to right; the log-mel strip is the T segments' spectrograms
side by side, low frequencies at the bottom, in matplotlib's "magma" colours. The page draws the
"where" maps over the frames itself (stt/explain/viewer_assets/viewer.js), from the numbers.
"""

from __future__ import annotations

import io

from matplotlib import colormaps
import numpy as np
from PIL import Image

JPEG_QUALITY = 80
MEL_HEIGHT = 48  # pixels of the log-mel strip
MEL_WIDTH_PER_SEGMENT = 48


def _jpeg(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY)
  return buffer.getvalue()


def frame_strip(frames: np.ndarray, thumbnail: int) -> bytes:
  """JPEG of frames [T,S,S,3] uint8 as T thumbnail x thumbnail tiles in one row."""
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be [T,S,S,3]; got shape {frames.shape}")
  tiles = [
      np.asarray(
          Image.fromarray(frame.astype(np.uint8)).resize(
              (thumbnail, thumbnail), Image.Resampling.BILINEAR
          )
      )
      for frame in frames
  ]
  return _jpeg(np.concatenate(tiles, axis=1))


def log_mel_strip(log_mel: np.ndarray) -> bytes:
  """JPEG of log_mel [T,frames,mels] (e.g. [T,96,64]): time left to right, low mels at the
  bottom, min-max scaled over the whole video."""
  log_mel = np.asarray(log_mel, np.float32)
  if log_mel.ndim != 3:
    raise ValueError(f"log_mel must be [T,frames,mels]; got shape {log_mel.shape}")
  spectrogram = np.concatenate(list(log_mel), axis=0).T[::-1]  # [mels, T*frames], low at bottom
  low, high = float(spectrogram.min()), float(spectrogram.max())
  scaled = (spectrogram - low) / (high - low) if high > low else np.zeros_like(spectrogram)
  rgb = (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)
  size = (MEL_WIDTH_PER_SEGMENT * len(log_mel), MEL_HEIGHT)
  return _jpeg(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)))
