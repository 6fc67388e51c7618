"""The harder synthetic set makes what data_pipelines/synthetic_hard.py says it makes."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from data_pipelines import catalogue
from data_pipelines import synthetic
from data_pipelines import synthetic_dataset
from data_pipelines import synthetic_hard as hard
from data_pipelines import synthetic_hard_dataset as hard_dataset
from data_pipelines import synthetic_hard_files as hard_files
from data_pipelines import synthetic_hard_render as render
from data_pipelines import synthetic_scene as scene


def _spec(level, num_train=300, **kwargs):
  return hard.HardSpec(level=level, num_train=num_train, num_val=0, num_test=0, **kwargs)


def _scenes(level, count=300):
  spec = _spec(level, count)
  return spec, [hard.sample_scene(spec, i) for i in range(count)]


def test_default_generator_and_its_cached_set_names_are_unchanged():
  """The default `synthetic` set's videos and names do not move (hash taken before issue 27)."""
  spec = synthetic.SyntheticSpec(num_train=2, num_val=1, num_test=1)
  digest = hashlib.sha1()
  for i in range(spec.num_videos):
    frames, waveform, truth = synthetic.render_video(spec, i)
    digest.update(frames.tobytes())
    digest.update(waveform.tobytes())
    digest.update(json.dumps(dataclasses.asdict(truth)).encode())
  assert digest.hexdigest() == "8ef5c7f5f2a3e5eca9a1bd26f467cd44450fd70e"
  assert synthetic_dataset.tag(synthetic.default_settings()) == "synthetic_78468ed0"
  assert synthetic_dataset.tag(synthetic.default_settings("smoke")) == "synthetic_17cbcc1e"
  config = synthetic_config.get_config("")
  assert config.dataset.name == "synthetic" and "synthetic_hard" not in config


def _audible(truth):
  extra = () if truth.distractor_sound_class is None else (truth.distractor_sound_class,)
  return {truth.event_class, *extra}


@pytest.mark.parametrize("level", hard.LEVELS)
def test_labels_are_well_defined(level):
  """The label is the class seen and heard if any, else the only class heard."""
  _, truths = _scenes(level)
  for truth in truths:
    seen_and_heard = set(truth.object_classes) & _audible(truth)
    if truth.source_on_screen:
      assert seen_and_heard == {truth.event_class}
    else:
      assert not seen_and_heard and _audible(truth) == {truth.event_class}
    assert hard.synthetic.EVENT_SEGMENTS_RANGE[0] <= len(truth.event_segments) <= 8


def test_level1_offscreen_share_and_truth():
  spec, truths = _scenes(1, 400)
  offscreen = [t for t in truths if not t.source_on_screen]
  assert 0.25 <= len(offscreen) / len(truths) <= 0.35  # binomial(400, 0.3): std 0.023
  for truth in offscreen:
    assert truth.source_boxes == () and truth.num_instances == 0 and truth.source_index is None
    assert len(truth.object_classes) == spec.num_distractor_objects + 1
  onscreen = [t for t in truths if t.source_on_screen]
  assert all(len(t.source_boxes) == spec.num_segments and t.num_instances == 1 for t in onscreen)


def _colour_pixels(frame, class_index, tolerance=12.0):
  """bool [H, W]: pixels within tolerance of the class colour (objects are drawn in it)."""
  distance = np.abs(frame.astype(np.float32) - scene.class_colour(class_index)).max(axis=-1)
  return distance <= tolerance


def test_level1_offscreen_videos_show_no_instance_of_the_source_class():
  spec = _spec(1, 40)
  found = {True: 0, False: 0}
  for index in range(spec.num_videos):
    truth = hard.sample_scene(spec, index)
    if found[truth.source_on_screen] >= 3:
      continue
    found[truth.source_on_screen] += 1
    frames, _, _ = render.render_video(spec, index)
    pixels = _colour_pixels(frames[0], truth.event_class).sum()
    if truth.source_on_screen:
      x0, y0, x1, y1 = truth.source_boxes[0]
      assert pixels > 0.3 * (x1 - x0) * (y1 - y0)
    else:
      assert pixels == 0
  assert found == {True: 3, False: 3}


def test_level1_files_box_only_onscreen_sources(tmp_path):
  spec = _spec(1, 10)
  out = hard_files.generate(tmp_path / "hard1", spec)
  rows = [json.loads(line) for line in (out / "boxes.jsonl").read_text().splitlines()]
  truth = hard_files.read_truth(out)
  assert len(truth) == 10 and len(list((out / "AVE").glob("*.mp4"))) == 10
  boxed = {row["video_id"] for row in rows}
  assert boxed == {v for v, t in truth.items() if t["source_on_screen"]}
  assert 0 < len(boxed) < 10
  for row in rows:
    t = truth[row["video_id"]]
    assert t["event_start"] <= row["segment"] < t["event_end"]
    assert row["boxes"] == [t["source_boxes"][row["segment"]]]
  lines = (out / "Annotations.txt").read_text().splitlines()[1:]
  assert [line.split("&")[0] for line in lines] == [t["event_class_name"] for t in truth.values()]


def test_level2_instances_are_exchangeable_for_vision():
  """Layout and pulses do not tell the source: vision-only pickers stay at chance (1 / K)."""
  _, truths = _scenes(2, 600)
  assert {t.num_instances for t in truths} == set(hard.LOOKALIKE_COUNTS)
  chance = np.mean([1.0 / t.num_instances for t in truths])
  pickers = {
      "most pulses": lambda t, i: sum(t.pulses[i]),
      "largest": lambda t, i: t.object_tracks[i][0][2],
      "most central": lambda t, i: -abs(t.object_tracks[i][0][0] - 64)
      - abs(t.object_tracks[i][0][1] - 64),
      "first placed": lambda t, i: -i,
  }
  for name, key in pickers.items():
    hits = []
    for truth in truths:
      instances = [i for i, c in enumerate(truth.object_classes) if c == truth.event_class]
      hits.append(max(instances, key=lambda i, t=truth: key(t, i)) == truth.source_index)
    assert abs(np.mean(hits) - chance) < 0.06, name  # 600 videos: std 0.02
  # Look-alikes change as often as the source.
  changes = lambda p: np.count_nonzero(np.diff(p))
  source = np.mean([changes(t.pulses[t.source_index]) for t in truths])
  lookalike = np.mean([changes(t.pulses[i]) for t in truths for i in t.lookalike_indices])
  assert abs(source - lookalike) < 0.05 * source
  # Vision alone does not name the class either: both visible classes have K instances.
  for truth in truths:
    counts = np.bincount(truth.object_classes)
    assert sorted(counts[counts > 0]) == [truth.num_instances] * 2


def test_level2_source_changes_follow_the_sound_and_lookalikes_do_not():
  spec = _spec(2, 8)
  source_r, lookalike_r, source_changes, lookalike_changes = [], [], [], []
  for index in range(spec.num_videos):
    frames, waveform, truth = render.render_video(spec, index)
    frames_run = range(truth.event_start * spec.fps, truth.event_end * spec.fps)
    hop = spec.sample_rate // spec.fps
    loudness = [np.sqrt(np.mean(waveform[f * hop : (f + 1) * hop] ** 2)) for f in frames_run]
    for number, track in enumerate(truth.object_tracks):
      if truth.object_classes[number] != truth.event_class:
        continue
      mask = hard.object_mask(truth.event_class, track[0], spec)
      # The visual change: how far the object's pixels are from its class colour, [frames].
      change = np.abs(frames[:, mask] - scene.class_colour(truth.event_class)).mean(axis=(1, 2))
      r = np.corrcoef(change[list(frames_run)], loudness)[0, 1]
      steps = np.abs(np.diff(change)) > 20
      (source_r if number == truth.source_index else lookalike_r).append(r)
      (source_changes if number == truth.source_index else lookalike_changes).append(steps.sum())
  assert min(source_r) > 0.95
  assert np.mean(np.abs(lookalike_r)) < 0.3
  assert abs(np.mean(source_changes) - np.mean(lookalike_changes)) < 0.2 * np.mean(source_changes)


def test_level2_build_needs_one_frame_per_pulse_step(tmp_path):
  from data_pipelines import dataset_spec  # pylint: disable=g-import-not-at-top

  with pytest.raises(dataset_spec.BuildInputError, match="frames_per_segment"):
    hard_dataset.prepare(
        tmp_path, hard.default_settings(2, "smoke"), dataset_spec.Decode(10, 1, 64)
    )


def _fit_tones(waveform, truth, spec):
  """Least-squares fit of each sounding run by sinusoids at its class's partials (known
  frequencies), away from the runs' 10 ms on/off ramps. Returns (event tone [S], all fitted
  tones [S], bool [S]: the samples the fit holds for, the ramps left out)."""
  sr = spec.sample_rate
  event = np.zeros_like(waveform, np.float64)
  fitted = np.zeros_like(waveform, np.float64)
  steady = np.ones(len(waveform), bool)
  runs = [
      (truth.event_class, truth.event_start, truth.event_end),
      (truth.distractor_sound_class, truth.distractor_sound_start, truth.distractor_sound_end),
  ]
  ramp = int(0.012 * sr)
  for number, (class_index, start, end) in enumerate(runs):
    if class_index is None:
      continue
    t = np.arange(start * sr, end * sr) / sr
    fundamental = scene.TONE_FUNDAMENTALS_HZ[class_index]
    harmonics = [h for h in (1, 2, 3) if h * fundamental < scene.MAX_PARTIAL_HZ]
    basis = np.stack(
        [f(2 * np.pi * h * fundamental * t) for h in harmonics for f in (np.sin, np.cos)], axis=1
    )
    segment = waveform[start * sr : end * sr].astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(basis[ramp:-ramp], segment[ramp:-ramp], rcond=None)
    tone = basis @ coefficients
    fitted[start * sr : end * sr] += tone
    steady[start * sr : start * sr + ramp] = steady[end * sr - ramp : end * sr] = False
    if number == 0:
      event[start * sr : end * sr] = tone
  return event, fitted, steady


def test_level3_snr_as_specified_and_noise_is_coloured():
  """SNR measured on the generated waveform: the event tone's power over its run (fitted at
  its known partials) against the residual noise's power over the clip."""
  spec = _spec(3, 30)
  measured, requested = [], []
  for index in range(spec.num_videos):
    truth = hard.sample_scene(spec, index)
    if truth.snr_db not in requested or index < 6:
      _, waveform, truth = render.render_video(spec, index)
      event, fitted, steady = _fit_tones(waveform, truth, spec)
      noise = waveform - fitted
      run = np.zeros(len(waveform), bool)
      run[truth.event_start * spec.sample_rate : truth.event_end * spec.sample_rate] = True
      snr = 10 * np.log10(np.mean(event[run & steady] ** 2) / np.mean(noise[steady] ** 2))
      measured.append(snr)
      requested.append(truth.snr_db)
      spectrum = np.abs(np.fft.rfft(noise)) ** 2
      freqs = np.fft.rfftfreq(len(noise), 1 / spec.sample_rate)
      assert spectrum[(freqs > 50) & (freqs < 1000)].mean() > 10 * spectrum[freqs > 4000].mean()
  assert set(requested) == {20.0, 10.0, 0.0}
  np.testing.assert_allclose(measured, requested, atol=0.5)
  print("requested, measured SNR (dB):", list(zip(requested, np.round(measured, 3))))


def test_level3_sources_move_and_their_boxes_follow_the_pixels():
  spec = _spec(3, 4)
  for index in range(spec.num_videos):
    frames, _, truth = render.render_video(spec, index)
    boxes = truth.source_boxes
    assert len(set(boxes)) > 1, "the source moves"
    for segment in (0, spec.num_segments - 1):
      drawn = _colour_pixels(frames[segment * spec.fps], truth.event_class)
      assert tuple(scene.tight_box(drawn)) == boxes[segment]


def test_records_configs_and_tags():
  record = catalogue.spec("synthetic_hard")
  assert record.built_on_first_use and record.trained_as == ("synthetic_hard", "raw")
  config = synthetic_config.get_config("hard2,smoke")
  assert config.dataset.name == "synthetic_hard" and config.dataset.frames_per_segment == 4
  assert config.synthetic_hard.level == 2 and config.synthetic_hard.num_train == 24
  tags = {hard_dataset.tag(hard.default_settings(level)) for level in hard.LEVELS}
  assert len(tags) == 3 and all(t.startswith("synthetic_hard") for t in tags)
  builder = record.builder
  assert builder.settings({"synthetic_config": "hard3,smoke"}) == hard.default_settings(3, "smoke")
  assert builder.settings({"synthetic_config": ""})["level"] == 1


@pytest.mark.parametrize("level", hard.LEVELS)
def test_size_and_position_do_not_mark_the_source_or_its_class(level):
  """Objects take the placed squares in random order (the first placed is larger on average)."""
  spec, truths = _scenes(level, 600)
  source, others, source_x, others_x = [], [], [], []
  for truth in truths:
    for number, track in enumerate(truth.object_tracks):
      is_source = truth.object_classes[number] == truth.event_class
      if level != 2:
        is_source = number == truth.source_index
      left, _, size = track[0]
      (source if is_source else others).append(size)
      (source_x if is_source else others_x).append(abs(left + size / 2 - spec.frame_width / 2))
  assert abs(np.mean(source) - np.mean(others)) < 0.4  # sizes: std ~3 px, 600+ each
  assert abs(np.mean(source_x) - np.mean(others_x)) < 2.5  # |x - centre|: std ~17 px
