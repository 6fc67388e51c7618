"""Pixels and samples of the harder synthetic set (data_pipelines/synthetic_hard.py says what).

`render_video(spec, index)` -> (frames uint8 [num_segments * fps, H, W, 3],
waveform float32 [num_segments * sample_rate], HardTruth). `audio_parts` gives the waveform's
tone and noise parts separately (before the common anti-clipping scale), for checks.
"""

from __future__ import annotations

import numpy as np

from data_pipelines import synthetic
from data_pipelines import synthetic_hard as hard
from data_pipelines import synthetic_scene as scene
from data_pipelines.synthetic_hard import HardSpec
from data_pipelines.synthetic_hard import HardTruth

NOISE_CORNER_HZ_RANGE = (300.0, 2000.0)  # level 3: the noise's random low-pass corner
NOISE_ORDER_RANGE = (1.0, 2.0)  # and its roll-off (power ~ f ** (-2 * order) above the corner)
GAIN_RAMP_S = 0.01
CLIP_LIMIT = 0.99


def noise_shape(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
  """Coloured noise float64 [num_samples], unit mean power: white noise through a low-pass
  |H(f)| = (1 + (f / corner) ** 2) ** (-order / 2) with a random corner and order."""
  corner = rng.uniform(*NOISE_CORNER_HZ_RANGE)
  order = rng.uniform(*NOISE_ORDER_RANGE)
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
  spectrum *= (1.0 + (freqs / corner) ** 2) ** (-order / 2)
  spectrum[0] = 0.0
  noise = np.fft.irfft(spectrum, num_samples)
  return noise / np.sqrt(np.mean(noise**2))


def pulse_gain(truth: HardTruth, spec: HardSpec) -> np.ndarray:
  """The source's pulse as the event tone's gain, float64 [num_segments * sample_rate]."""
  if truth.level != 2:
    return np.ones(spec.num_segments * spec.sample_rate)
  steps = np.asarray(truth.pulses[truth.source_index], np.float64)
  gain = hard.GAIN_OFF + (1.0 - hard.GAIN_OFF) * steps
  per_step = spec.sample_rate // hard.PULSE_STEPS_PER_SECOND
  gain = np.repeat(gain, per_step)
  ramp = max(1, int(GAIN_RAMP_S * spec.sample_rate))
  padded = np.pad(gain, (ramp // 2, ramp - 1 - ramp // 2), mode="edge")
  return np.convolve(padded, np.ones(ramp) / ramp, mode="valid")


def audio_parts(spec: HardSpec, truth: HardTruth, rng: np.random.Generator):
  """(tones, noise) float64 [num_segments * sample_rate] each: the event tone (gated by the
  source's pulse at level 2) plus the distractor tone, and the background noise."""
  sr = spec.sample_rate
  num_samples = spec.num_segments * sr
  tones = np.zeros(num_samples)
  sounds = [
      (truth.event_class, truth.event_start, truth.event_end),
      (truth.distractor_sound_class, truth.distractor_sound_start, truth.distractor_sound_end),
  ]
  gain = pulse_gain(truth, spec)
  event_power = None
  for number, (class_index, start, end) in enumerate(sounds):
    amplitude = rng.uniform(*synthetic.TONE_AMPLITUDE_RANGE)
    phases = rng.uniform(0.0, 2 * np.pi, size=len(scene.TONE_PARTIAL_AMPLITUDES))
    if class_index is None:
      continue
    tone = scene.harmonic_tone(class_index, (end - start) * sr, sr, amplitude, phases)
    if number == 0:
      tone = tone * gain[start * sr : end * sr]
      event_power = float(np.mean(np.square(tone, dtype=np.float64)))
    tones[start * sr : end * sr] += tone
  if truth.snr_db is None:
    noise = rng.uniform(*synthetic.AUDIO_NOISE_STD_RANGE) * rng.standard_normal(num_samples)
  else:
    noise = noise_shape(rng, num_samples, sr)
    noise *= np.sqrt(event_power / 10.0 ** (truth.snr_db / 10.0))
  return tones, noise


def _frame_colours(spec: HardSpec, truth: HardTruth) -> np.ndarray:
  """float32 [num_frames, num_objects, 3]: level 2's pulses mix towards the complement."""
  num_frames = spec.num_segments * spec.fps
  base = np.stack([scene.class_colour(c) for c in truth.object_classes])  # [N, 3]
  colours = np.broadcast_to(base, (num_frames, *base.shape)).copy()
  if truth.level == 2:
    frames_per_step = spec.fps // hard.PULSE_STEPS_PER_SECOND
    pulse = np.repeat(np.asarray(truth.pulses, np.float32).T, frames_per_step, axis=0)  # [T, N]
    mix = hard.PULSE_DEPTH * pulse[:, :, None]
    colours = (1.0 - mix) * base + mix * (255.0 - base)
  return colours.astype(np.float32)


def render_video(spec: HardSpec, index: int):
  """Renders video `index`; see the module docstring for the shapes."""
  truth = hard.sample_scene(spec, index)
  rng = hard._rng(spec, index, stream=1)  # pylint: disable=protected-access
  height, width = spec.frame_height, spec.frame_width
  background = scene.background_image(rng, height, width)
  background += synthetic.STATIC_PIXEL_NOISE_STD * rng.standard_normal(
      (height, width, 3), np.float32
  )
  colours = _frame_colours(spec, truth)
  num_frames = spec.num_segments * spec.fps
  frames = np.empty((num_frames, height, width, 3), np.int16)
  masks = {}
  for frame in range(num_frames):
    segment = frame // spec.fps
    image = background.copy()
    for number, (class_index, track) in enumerate(zip(truth.object_classes, truth.object_tracks)):
      key = (class_index, track[segment])
      if key not in masks:
        masks[key] = hard.object_mask(class_index, track[segment], spec)
      image[masks[key]] = colours[frame, number]
    frames[frame] = np.rint(image)
  level = synthetic.TEMPORAL_PIXEL_NOISE_LEVELS
  frames += rng.integers(-level, level + 1, frames.shape, dtype=np.int8)
  frames = np.clip(frames, 0, 255).astype(np.uint8)

  tones, noise = audio_parts(spec, truth, rng)
  waveform = tones + noise
  peak = np.max(np.abs(waveform))
  if peak > CLIP_LIMIT:  # scale tones and noise together: the SNR stays as drawn
    waveform *= CLIP_LIMIT / peak
  return frames, waveform.astype(np.float32), truth
