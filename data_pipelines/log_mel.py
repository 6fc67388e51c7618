"""Log-mel spectrogram features following the AudioSet VGGish recipe.

This is a vectorised numpy re-implementation of the ``mel_features`` module that ships
with the AudioSet VGGish model (``vggish_input.waveform_to_examples``):

* mono waveform at 16 kHz, float in [-1, 1];
* 25 ms periodic Hann window (400 samples) with a 10 ms hop (160 samples);
* magnitude (not power) of a 512-point real FFT -> 257 bins;
* 64 triangular mel filters spanning 125-7500 Hz, built in the HTK mel domain
  (``mel = 1127 * ln(1 + f / 700)``) over the FFT bin frequencies, DC bin zeroed;
* ``log(mel + 0.01)``.

Videos are cut into one-second segments starting at t = 0; each segment contributes
the first 96 frames of the log-mel computed from its own samples. Patches are aligned to whole
seconds, unlike VGGish's continuous 0.96 s hop: segment t's frames start at t s + 0, 10, ...,
950 ms, its frame 95 covers [t + 0.95, t + 0.975) s, and the last 25 ms of each second only
enter frames 96-99, which are dropped.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16000
"""Audio sample rate in Hz that the features assume."""

WINDOW_LENGTH_SAMPLES = 400
"""25 ms analysis window at 16 kHz."""

HOP_LENGTH_SAMPLES = 160
"""10 ms hop at 16 kHz."""

FFT_LENGTH = 512
"""Smallest power of two >= the window length."""

NUM_SPECTROGRAM_BINS = FFT_LENGTH // 2 + 1
"""Number of rfft bins (257)."""

NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01

SEGMENT_SECONDS = 1
SAMPLES_PER_SEGMENT = SAMPLE_RATE * SEGMENT_SECONDS
FRAMES_PER_SEGMENT = 96
"""Log-mel frames kept per one-second segment (0.96 s, as in VGGish examples)."""

_MEL_BREAK_FREQUENCY_HZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def hertz_to_mel(frequencies_hz: np.ndarray | float) -> np.ndarray:
  """HTK mel scale: ``1127 * ln(1 + f / 700)``. Same shape as the input."""
  return _MEL_HIGH_FREQUENCY_Q * np.log(
      1.0 + np.asarray(frequencies_hz, dtype=np.float64) / _MEL_BREAK_FREQUENCY_HZ
  )


def periodic_hann(window_length: int = WINDOW_LENGTH_SAMPLES) -> np.ndarray:
  """Periodic Hann window ``0.5 - 0.5 cos(2 pi n / N)``, shape [window_length] float64."""
  n = np.arange(window_length, dtype=np.float64)
  return 0.5 - 0.5 * np.cos(2.0 * np.pi / window_length * n)


@functools.lru_cache(maxsize=8)
def _mel_matrix_cached(
    num_mel_bins: int,
    num_spectrogram_bins: int,
    sample_rate: int,
    lower_edge_hz: float,
    upper_edge_hz: float,
) -> np.ndarray:
  nyquist_hz = sample_rate / 2.0
  if not 0.0 <= lower_edge_hz < upper_edge_hz <= nyquist_hz:
    raise ValueError(
        f"need 0 <= lower_edge_hz ({lower_edge_hz}) < upper_edge_hz ({upper_edge_hz}) <= Nyquist ({nyquist_hz})"
    )
  bin_mels = hertz_to_mel(np.linspace(0.0, nyquist_hz, num_spectrogram_bins))  # [bins]
  band_edges = np.linspace(
      hertz_to_mel(lower_edge_hz), hertz_to_mel(upper_edge_hz), num_mel_bins + 2
  )
  lower, centre, upper = band_edges[:-2], band_edges[1:-1], band_edges[2:]  # each [mels]
  rising = (bin_mels[:, None] - lower[None, :]) / (centre - lower)[None, :]  # [bins, mels]
  falling = (upper[None, :] - bin_mels[:, None]) / (upper - centre)[None, :]  # [bins, mels]
  weights = np.maximum(0.0, np.minimum(rising, falling))
  weights[0, :] = 0.0  # VGGish zeroes the DC bin.
  weights.setflags(write=False)
  return weights


def mel_matrix(
    num_mel_bins: int = NUM_MEL_BINS,
    num_spectrogram_bins: int = NUM_SPECTROGRAM_BINS,
    sample_rate: int = SAMPLE_RATE,
    lower_edge_hz: float = MEL_MIN_HZ,
    upper_edge_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
  """Triangular mel filterbank, shape [num_spectrogram_bins, num_mel_bins] float64 (read-only, cached).

  Equal to VGGish ``mel_features.spectrogram_to_mel_matrix``: ``num_mel_bins + 2``
  band edges equally spaced in HTK mel between the edge frequencies; each filter is
  a triangle in the mel domain evaluated at the mel value of each FFT bin frequency.
  """
  return _mel_matrix_cached(
      int(num_mel_bins),
      int(num_spectrogram_bins),
      int(sample_rate),
      float(lower_edge_hz),
      float(upper_edge_hz),
  )


def mel_bin_centres_hz(num_mel_bins: int = NUM_MEL_BINS) -> np.ndarray:
  """Centre frequency in Hz of each mel filter, shape [num_mel_bins]."""
  edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), num_mel_bins + 2)
  return _MEL_BREAK_FREQUENCY_HZ * (np.exp(edges[1:-1] / _MEL_HIGH_FREQUENCY_Q) - 1.0)


def num_frames_for(num_samples: int) -> int:
  """Number of full analysis windows in ``num_samples`` samples: ``1 + (S - 400) // 160`` (0 if S < 400)."""
  if num_samples < WINDOW_LENGTH_SAMPLES:
    return 0
  return 1 + (num_samples - WINDOW_LENGTH_SAMPLES) // HOP_LENGTH_SAMPLES


def stft_magnitude(waveform: np.ndarray) -> np.ndarray:
  """|rfft_512(hann * frame)| of every full 400-sample frame with hop 160.

  Args:
    waveform: [S] float mono samples at 16 kHz.
  Returns:
    [num_frames, 257] float64, ``num_frames = 1 + (S - 400) // 160``.
  """
  waveform = np.asarray(waveform, dtype=np.float64)
  if waveform.ndim != 1:
    raise ValueError(f"waveform must be 1-D [S], got shape {waveform.shape}")
  num_frames = num_frames_for(waveform.shape[0])
  if num_frames == 0:
    return np.zeros((0, NUM_SPECTROGRAM_BINS), dtype=np.float64)
  windows = np.lib.stride_tricks.sliding_window_view(
      waveform, WINDOW_LENGTH_SAMPLES
  )  # [S-399, 400]
  frames = windows[
      : (num_frames - 1) * HOP_LENGTH_SAMPLES + 1 : HOP_LENGTH_SAMPLES
  ]  # [num_frames, 400]
  return np.abs(np.fft.rfft(frames * periodic_hann(), n=FFT_LENGTH, axis=-1))


def log_mel_spectrogram(waveform: np.ndarray) -> np.ndarray:
  """VGGish log-mel spectrogram.

  Args:
    waveform: [S] float mono samples at 16 kHz (nominally in [-1, 1]).
  Returns:
    [num_frames, 64] float32 with ``num_frames = 1 + (S - 400) // 160`` (0 rows if S < 400),
    ``log(|STFT| @ mel_matrix() + 0.01)``.
  """
  mel = stft_magnitude(waveform) @ mel_matrix()  # [num_frames, 64]
  return np.log(mel + LOG_OFFSET).astype(np.float32)


def segment_log_mel(waveform: np.ndarray, num_segments: int) -> np.ndarray:
  """Per-second log-mel patches.

  Segment ``t`` is computed from samples ``[t * 16000, (t + 1) * 16000)`` and keeps its
  first 96 frames. The waveform is zero-padded (or truncated) to ``num_segments`` seconds.
  Frame 95 of a segment covers samples ``[15200, 15600)`` of it, so it does not end at the
  segment boundary: the patches are aligned to whole seconds (frames 100 t .. 100 t + 95 of
  the whole padded waveform framed once, since 16000 is a multiple of the 160-sample hop;
  frames 100 t + 96 .. 100 t + 99 are dropped), not VGGish's continuous 0.96 s hop.

  Args:
    waveform: [S] float mono samples at 16 kHz.
    num_segments: T, number of one-second segments.
  Returns:
    [T, 96, 64] float32.
  """
  if num_segments < 0:
    raise ValueError(f"num_segments must be >= 0, got {num_segments}")
  waveform = np.asarray(waveform, dtype=np.float64)
  if waveform.ndim != 1:
    raise ValueError(f"waveform must be 1-D [S], got shape {waveform.shape}")
  total = num_segments * SAMPLES_PER_SEGMENT
  padded = np.zeros(total, dtype=np.float64)
  used = min(total, waveform.shape[0])
  padded[:used] = waveform[:used]
  segments = padded.reshape(num_segments, SAMPLES_PER_SEGMENT)  # [T, 16000]
  windows = np.lib.stride_tricks.sliding_window_view(
      segments, WINDOW_LENGTH_SAMPLES, axis=-1
  )  # [T, 15601, 400]
  frames = windows[
      :, : FRAMES_PER_SEGMENT * HOP_LENGTH_SAMPLES : HOP_LENGTH_SAMPLES
  ]  # [T, 96, 400]
  magnitude = np.abs(np.fft.rfft(frames * periodic_hann(), n=FFT_LENGTH, axis=-1))  # [T, 96, 257]
  return np.log(magnitude @ mel_matrix() + LOG_OFFSET).astype(np.float32)
