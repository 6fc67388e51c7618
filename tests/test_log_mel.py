"""Checks data_pipelines.log_mel against an independent, loop-based VGGish reference."""

import math

import numpy as np
import pytest

from data_pipelines import log_mel

SR = 16000


# ---------------------------------------------------------------------------
# Independent reference, written directly from the AudioSet VGGish recipe with
# explicit loops (per frame, per filter, per bin) and no code shared with log_mel.
# ---------------------------------------------------------------------------
def _reference_htk_mel(f_hz):
  return 1127.0 * math.log(1.0 + f_hz / 700.0)


def _reference_filterbank():
  """[257, 64]: triangles in the HTK mel domain over the FFT bin frequencies, DC row zero."""
  num_bins, num_mels = 257, 64
  lo, hi = _reference_htk_mel(125.0), _reference_htk_mel(7500.0)
  edges = [lo + (hi - lo) * i / (num_mels + 1) for i in range(num_mels + 2)]
  weights = np.zeros((num_bins, num_mels))
  for m in range(num_mels):
    left, centre, right = edges[m], edges[m + 1], edges[m + 2]
    for k in range(1, num_bins):  # bin 0 (DC) stays zero
      bin_mel = _reference_htk_mel(k * (SR / 2.0) / (num_bins - 1))
      if left < bin_mel <= centre:
        weights[k, m] = (bin_mel - left) / (centre - left)
      elif centre < bin_mel < right:
        weights[k, m] = (right - bin_mel) / (right - centre)
  return weights


def _reference_log_mel(waveform):
  window = np.array([0.5 - 0.5 * math.cos(2.0 * math.pi * n / 400) for n in range(400)])
  filterbank = _reference_filterbank()
  rows = []
  start = 0
  while start + 400 <= len(waveform):
    spectrum = np.abs(
        np.fft.rfft(np.asarray(waveform[start : start + 400], dtype=np.float64) * window, 512)
    )
    rows.append(np.log(spectrum @ filterbank + 0.01))
    start += 160
  return np.array(rows).reshape(-1, 64)


def _reference_segments(waveform, num_segments):
  padded = np.zeros(num_segments * SR)
  n = min(len(waveform), len(padded))
  padded[:n] = waveform[:n]
  return np.stack(
      [_reference_log_mel(padded[t * SR : (t + 1) * SR])[:96] for t in range(num_segments)]
  )


def _tone(freq_hz, seconds, amplitude=0.5, phase=0.3):
  t = np.arange(int(seconds * SR)) / SR
  return amplitude * np.sin(2 * np.pi * freq_hz * t + phase)


@pytest.fixture(scope="module")
def rng():
  return np.random.default_rng(1234)


# ---------------------------------------------------------------------------
def test_constants():
  assert log_mel.SAMPLE_RATE == 16000
  assert log_mel.NUM_MEL_BINS == 64
  assert log_mel.FRAMES_PER_SEGMENT == 96
  assert log_mel.WINDOW_LENGTH_SAMPLES == 400 and log_mel.HOP_LENGTH_SAMPLES == 160
  assert log_mel.FFT_LENGTH == 512


def test_mel_matrix_matches_reference_and_is_cached():
  ours = log_mel.mel_matrix()
  assert ours.shape == (257, 64)
  np.testing.assert_allclose(ours, _reference_filterbank(), rtol=1e-10, atol=1e-12)
  assert np.all(ours[0] == 0.0)
  assert log_mel.mel_matrix() is ours


@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 16000, 23456])
def test_log_mel_random_matches_reference(rng, num_samples):
  waveform = rng.uniform(-1.0, 1.0, size=num_samples)
  ours = log_mel.log_mel_spectrogram(waveform)
  expected_frames = 1 + (num_samples - 400) // 160
  assert ours.shape == (expected_frames, 64)
  assert ours.dtype == np.float32
  np.testing.assert_allclose(ours, _reference_log_mel(waveform), rtol=1e-4)


@pytest.mark.parametrize("freq_hz", [220.0, 1000.0, 3333.3, 7000.0])
def test_log_mel_sinusoid_matches_reference(freq_hz):
  waveform = _tone(freq_hz, 0.5) + _tone(freq_hz * 0.37, 0.5, amplitude=0.1)
  np.testing.assert_allclose(
      log_mel.log_mel_spectrogram(waveform), _reference_log_mel(waveform), rtol=1e-4
  )


def test_log_mel_too_short_gives_no_frames():
  assert log_mel.log_mel_spectrogram(np.zeros(399)).shape == (0, 64)


def test_1khz_tone_peaks_in_nearest_mel_bin():
  spectrogram = log_mel.log_mel_spectrogram(_tone(1000.0, 1.0))
  peak_bins = np.argmax(spectrogram, axis=1)
  # Centre of each mel band, computed independently from the HTK formula.
  lo, hi = _reference_htk_mel(125.0), _reference_htk_mel(7500.0)
  centres_hz = [
      700.0 * (math.exp((lo + (hi - lo) * (m + 1) / 65) / 1127.0) - 1.0) for m in range(64)
  ]
  nearest = int(np.argmin(np.abs(np.array(centres_hz) - 1000.0)))
  assert np.all(peak_bins == nearest)
  np.testing.assert_allclose(log_mel.mel_bin_centres_hz(), centres_hz, rtol=1e-9)


def test_segment_log_mel_matches_reference_random(rng):
  waveform = rng.normal(0.0, 0.3, size=int(3.4 * SR))  # short: last segment partly / fully padded
  ours = log_mel.segment_log_mel(waveform, 5)
  assert ours.shape == (5, 96, 64)
  assert ours.dtype == np.float32
  np.testing.assert_allclose(ours, _reference_segments(waveform, 5), rtol=1e-4)
  # Fully padded segment is the log of the offset everywhere.
  np.testing.assert_allclose(ours[4], np.log(0.01), rtol=1e-6)


def test_segment_log_mel_matches_reference_sinusoid_and_truncates():
  waveform = _tone(440.0, 3.7) + _tone(2500.0, 3.7, amplitude=0.2)
  ours = log_mel.segment_log_mel(waveform, 2)  # longer than 2 s: extra audio ignored
  assert ours.shape == (2, 96, 64)
  np.testing.assert_allclose(ours, _reference_segments(waveform, 2), rtol=1e-4)


def test_segment_log_mel_equals_whole_waveform_framing(rng):
  waveform = rng.normal(0.0, 0.2, size=4 * SR)
  whole = log_mel.log_mel_spectrogram(waveform)  # [398, 64]
  segments = log_mel.segment_log_mel(waveform, 4)
  for t in range(4):
    np.testing.assert_allclose(segments[t], whole[100 * t : 100 * t + 96], rtol=1e-5)


@pytest.mark.parametrize("k", [0, 3, 9])
def test_tone_in_second_k_raises_only_segment_k(rng, k):
  waveform = rng.normal(0.0, 1e-3, size=10 * SR)
  waveform[k * SR : (k + 1) * SR] += _tone(1000.0, 1.0)
  segments = log_mel.segment_log_mel(waveform, 10)
  assert segments.shape == (10, 96, 64)
  energy = segments.mean(axis=(1, 2))  # [10]
  others = np.delete(energy, k)
  assert np.argmax(energy) == k
  # A pure tone lifts only a few of the 64 bands, yet the segment mean still clears
  # the other segments by far more than their own spread.
  margin = energy[k] - others.max()
  assert margin > 0.4
  assert margin > 20 * (others.max() - others.min())


def test_segment_log_mel_zero_segments_and_errors():
  assert log_mel.segment_log_mel(np.zeros(10), 0).shape == (0, 96, 64)
  with pytest.raises(ValueError):
    log_mel.segment_log_mel(np.zeros((2, 10)), 1)
  with pytest.raises(ValueError):
    log_mel.log_mel_spectrogram(np.zeros((2, 1000)))
