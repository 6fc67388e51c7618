"""Drawing and sound primitives for the synthetic audio-visual event dataset.

Class ``c`` pairs a visual object (``SHAPES[c]`` drawn in ``COLOURS[c]``) with a harmonic
tone whose fundamental is ``TONE_FUNDAMENTALS_HZ[c]``. Fundamentals are spaced by five
semitones (ratio 2**(5/12) ~ 1.335), so no fundamental coincides with another class's
2nd/3rd/4th harmonic to within a semitone; partials at or above 7 kHz are dropped.

Pixel conventions: images are [H, W] (or [H, W, 3]); a shape is drawn by testing pixel
centres (x + 0.5, y + 0.5) against the shape's region inside its square placement box,
so masks are binary and their tight box [x0, y0, x1, y1] (x1, y1 exclusive) is exact.
"""

from __future__ import annotations

import numpy as np

MAX_CLASSES = 12

SHAPES = (
    "circle",
    "square",
    "triangle",
    "diamond",
    "cross",
    "ring",
    "star",
    "hexagon",
    "frame",
    "hourglass",
    "halfdisc",
    "saltire",
)

COLOURS = {  # name -> RGB; saturated, and far from the grey background (90..160).
    "red": (225, 25, 25),
    "green": (20, 190, 40),
    "blue": (30, 60, 230),
    "yellow": (245, 225, 20),
    "magenta": (225, 30, 225),
    "cyan": (20, 215, 225),
    "orange": (255, 135, 0),
    "purple": (115, 25, 175),
    "white": (250, 250, 250),
    "black": (12, 12, 12),
    "pink": (255, 125, 175),
    "brown": (120, 60, 10),
}
COLOUR_NAMES = tuple(COLOURS)

TONE_BASE_HZ = 200.0
TONE_FUNDAMENTALS_HZ = tuple(TONE_BASE_HZ * 2.0 ** (5 * c / 12) for c in range(MAX_CLASSES))
TONE_PARTIAL_AMPLITUDES = (1.0, 0.5, 0.25)  # relative amplitudes of harmonics 1, 2, 3
MAX_PARTIAL_HZ = 7000.0


def class_name(class_index: int) -> str:
  """E.g. 0 -> 'red_circle'."""
  return f"{COLOUR_NAMES[class_index]}_{SHAPES[class_index]}"


def class_colour(class_index: int) -> np.ndarray:
  """RGB colour of the class's object, float32 [3] in 0..255."""
  return np.asarray(COLOURS[COLOUR_NAMES[class_index]], np.float32)


def _regular_polygon(num_vertices: int, radius: float, phase: float) -> np.ndarray:
  angles = phase + 2 * np.pi * np.arange(num_vertices) / num_vertices
  return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star_polygon(num_points: int, outer: float, inner: float) -> np.ndarray:
  angles = -np.pi / 2 + np.pi * np.arange(2 * num_points) / num_points
  radii = np.where(np.arange(2 * num_points) % 2 == 0, outer, inner)
  return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


_POLYGONS = {  # vertices [K, 2] as (u, v) in [-1, 1]; v points down.
    "triangle": np.array([[0.0, -0.95], [0.97, 0.85], [-0.97, 0.85]]),
    "star": _star_polygon(5, 1.0, 0.45),
    "hexagon": _regular_polygon(6, 1.0, 0.0),
    # Self-intersecting "bow tie" standing upright: even-odd filling gives two triangles.
    "hourglass": np.array([[-0.8, -0.95], [0.8, -0.95], [-0.8, 0.95], [0.8, 0.95]]),
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
  """Even-odd rule point-in-polygon test; u, v [...] -> bool [...]."""
  inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), bool)
  for (ua, va), (ub, vb) in zip(vertices, np.roll(vertices, -1, axis=0)):
    if va == vb:
      continue
    crosses = (va > v) != (vb > v)
    u_at_v = ua + (v - va) * (ub - ua) / (vb - va)
    inside ^= crosses & (u < u_at_v)
  return inside


def _shape_region(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Whether normalised coordinates (u, v) in [-1, 1] lie in `shape`; -> bool."""
  r2 = u * u + v * v
  chebyshev = np.maximum(np.abs(u), np.abs(v))
  if shape == "circle":
    return r2 <= 1.0
  if shape == "square":
    return chebyshev <= 0.82
  if shape == "diamond":
    return np.abs(u) + np.abs(v) <= 1.0
  if shape == "cross":
    return (np.abs(u) <= 0.3) & (np.abs(v) <= 0.95) | (np.abs(v) <= 0.3) & (np.abs(u) <= 0.95)
  if shape == "ring":
    return (r2 <= 1.0) & (r2 >= 0.55**2)
  if shape == "frame":
    return (chebyshev <= 0.9) & (chebyshev >= 0.5)
  if shape == "halfdisc":
    return (r2 <= 1.0) & (v >= -0.15)
  if shape == "saltire":
    half_width = 0.3 * np.sqrt(2.0)
    diagonal = (np.abs(u - v) <= half_width) | (np.abs(u + v) <= half_width)
    return diagonal & (chebyshev <= 0.9)
  if shape in _POLYGONS:
    return _inside_polygon(u, v, _POLYGONS[shape])
  raise ValueError(f"unknown shape {shape!r}")


def shape_mask(shape: str, left: int, top: int, size: int, height: int, width: int) -> np.ndarray:
  """Binary mask [height, width] of `shape` drawn in the square at (left, top) of side size."""
  half = size / 2.0
  u = (np.arange(width, dtype=np.float32) + 0.5 - (left + half)) / half
  v = (np.arange(height, dtype=np.float32) + 0.5 - (top + half)) / half
  return _shape_region(shape, u[None, :], v[:, None])


def tight_box(mask: np.ndarray) -> list[int]:
  """[x0, y0, x1, y1] (x1, y1 exclusive) of the True pixels of mask [H, W]."""
  rows = np.flatnonzero(mask.any(axis=1))
  cols = np.flatnonzero(mask.any(axis=0))
  return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def background_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Grey-ish background with a gentle linear gradient and a faint tint; float32 [H, W, 3]."""
  base = rng.uniform(90.0, 160.0)
  tint = rng.uniform(-6.0, 6.0, size=3)
  angle = rng.uniform(0.0, 2 * np.pi)
  amplitude = rng.uniform(5.0, 20.0)
  ys = (np.arange(height, dtype=np.float32) / max(height - 1, 1) - 0.5)[:, None]
  xs = (np.arange(width, dtype=np.float32) / max(width - 1, 1) - 0.5)[None, :]
  gradient = amplitude * (np.cos(angle) * xs + np.sin(angle) * ys)
  return (base + gradient)[:, :, None].astype(np.float32) + tint.astype(np.float32)


def harmonic_tone(
    class_index: int,
    num_samples: int,
    sample_rate: int,
    amplitude: float,
    phases: np.ndarray,
    ramp_s: float = 0.01,
) -> np.ndarray:
  """The class's tone, float32 [num_samples], with raised-cosine on/off ramps of ramp_s seconds.

  phases: [len(TONE_PARTIAL_AMPLITUDES)] starting phase of each partial.
  """
  t = np.arange(num_samples, dtype=np.float64) / sample_rate
  fundamental = TONE_FUNDAMENTALS_HZ[class_index]
  nyquist_limit = min(MAX_PARTIAL_HZ, 0.45 * sample_rate)
  tone = np.zeros(num_samples, np.float64)
  for harmonic, (weight, phase) in enumerate(zip(TONE_PARTIAL_AMPLITUDES, phases), start=1):
    if harmonic * fundamental < nyquist_limit:
      tone += weight * np.sin(2 * np.pi * harmonic * fundamental * t + phase)
  ramp = min(int(ramp_s * sample_rate), num_samples // 2)
  if ramp > 0:
    envelope = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    tone[:ramp] *= envelope
    tone[num_samples - ramp :] *= envelope[::-1]
  return (amplitude * tone).astype(np.float32)
