"""Tests of the synthetic audio-visual event generator (data_pipelines.synthetic)."""

import concurrent.futures
import dataclasses
import json
import multiprocessing

import av
import numpy as np
import pytest

from data_pipelines import synthetic
from data_pipelines import synthetic_files
from data_pipelines import synthetic_scene as scene

TINY = synthetic.SyntheticSpec(num_train=5, num_val=2, num_test=2, seed=3)
TEXT_FILES = (
    "Annotations.txt",
    "trainSet.txt",
    "valSet.txt",
    "testSet.txt",
    "boxes.jsonl",
    "classes.txt",
    "scenes.jsonl",
)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
  return synthetic_files.generate(tmp_path_factory.mktemp("syn") / "tiny", TINY)


def _decode(path):
  """-> (frames uint8 [T, H, W, 3], mono audio float32 [S])."""
  with av.open(str(path)) as container:
    frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
  with av.open(str(path)) as container:
    audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
  return frames, audio[0]


def test_same_seed_is_identical_and_other_seed_differs(tmp_path, tiny_dataset):
  again = synthetic_files.generate(tmp_path / "again", TINY, num_workers=2)
  for name in TEXT_FILES:
    assert (again / name).read_bytes() == (tiny_dataset / name).read_bytes(), name
  for index in (0, TINY.num_videos - 1):
    name = f"AVE/{synthetic.video_id(index)}.mp4"
    first, second = _decode(tiny_dataset / name), _decode(again / name)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
  other = synthetic_files.generate(tmp_path / "other", dataclasses.replace(TINY, seed=4))
  assert (other / "Annotations.txt").read_text() != (tiny_dataset / "Annotations.txt").read_text()
  assert (other / "boxes.jsonl").read_text() != (tiny_dataset / "boxes.jsonl").read_text()


def test_generate_reuses_complete_dir_and_refuses_other_spec(tiny_dataset):
  before = (tiny_dataset / "_COMPLETE").stat().st_mtime_ns
  assert synthetic_files.generate(tiny_dataset, TINY) == tiny_dataset
  assert (tiny_dataset / "_COMPLETE").stat().st_mtime_ns == before
  with pytest.raises(FileExistsError):
    synthetic_files.generate(tiny_dataset, dataclasses.replace(TINY, seed=99))


def test_processes_generating_the_same_dir_at_once_take_turns(tmp_path, tiny_dataset):
  """Parallel runs of a suite on a fresh machine all generate the set: the first does, the
  others wait for it (before the lock they overwrote each other's files and crashed)."""
  out_dir = tmp_path / "shared"
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
    results = list(pool.map(synthetic_files.generate, [out_dir] * 3, [TINY] * 3))
  assert results == [out_dir] * 3
  assert not out_dir.with_name("shared.partial").exists()
  for name in TEXT_FILES:
    assert (out_dir / name).read_bytes() == (tiny_dataset / name).read_bytes(), name
  assert len(list((out_dir / "AVE").glob("*.mp4"))) == TINY.num_videos
  assert not list((out_dir / "AVE").glob("*.tmp.mp4"))


def test_resumes_from_partial_dir(tmp_path, tiny_dataset):
  out_dir = tmp_path / "resumed"
  partial = tmp_path / "resumed.partial"
  (partial / "AVE").mkdir(parents=True)
  (partial / "spec.json").write_text(json.dumps(dataclasses.asdict(TINY), indent=1, sort_keys=True))
  kept = partial / "AVE" / "syn00001.mp4"
  kept.write_bytes((tiny_dataset / "AVE" / "syn00001.mp4").read_bytes())
  kept_inode = kept.stat().st_ino
  synthetic_files.generate(out_dir, TINY)
  assert not partial.exists()
  assert (out_dir / "AVE" / "syn00001.mp4").stat().st_ino == kept_inode  # not re-rendered
  assert len(list((out_dir / "AVE").glob("*.mp4"))) == TINY.num_videos


def test_layout(tiny_dataset):
  assert (tiny_dataset / "_COMPLETE").exists()
  assert not tiny_dataset.with_name(tiny_dataset.name + ".partial").exists()
  lines = (tiny_dataset / "Annotations.txt").read_text().splitlines()
  assert lines[0] == "Category&VideoID&Quality&StartTime&EndTime"
  rows = [line.split("&") for line in lines[1:]]
  assert len(rows) == TINY.num_videos
  class_names = (tiny_dataset / "classes.txt").read_text().splitlines()
  assert class_names == TINY.class_names and class_names[0] == "red_circle"
  ids = [row[1] for row in rows]
  assert ids == sorted(ids) == [f"syn{i:05d}" for i in range(TINY.num_videos)]
  for name, video, quality, start, end in rows:
    assert name in class_names and quality == "good"
    assert 0 <= int(start) < int(end) <= TINY.num_segments
    assert (tiny_dataset / "AVE" / f"{video}.mp4").stat().st_size > 1000
  split_rows = {}
  for split, filename, count in (
      ("train", "trainSet.txt", TINY.num_train),
      ("val", "valSet.txt", TINY.num_val),
      ("test", "testSet.txt", TINY.num_test),
  ):
    split_rows[split] = (tiny_dataset / filename).read_text().splitlines()
    assert len(split_rows[split]) == count
  all_split_rows = sum(split_rows.values(), [])
  assert sorted(all_split_rows) == sorted(lines[1:])  # disjoint and covering
  boxes = [json.loads(line) for line in (tiny_dataset / "boxes.jsonl").read_text().splitlines()]
  event_segments = {(r[1], t) for r in rows for t in range(int(r[3]), int(r[4]))}
  assert {(b["video_id"], b["segment"]) for b in boxes} == event_segments
  assert len(boxes) == len(event_segments)
  assert all(b["frame_size"] == [TINY.frame_width, TINY.frame_height] for b in boxes)


def test_files_are_h264_aac_mp4_of_the_right_length(tiny_dataset):
  for path in sorted((tiny_dataset / "AVE").glob("*.mp4")):
    with av.open(str(path)) as container:
      video, audio = container.streams.video[0], container.streams.audio[0]
      assert video.codec_context.name == "h264"
      assert audio.codec_context.name == "aac"
      assert (video.width, video.height) == (TINY.frame_width, TINY.frame_height)
      assert audio.sample_rate == TINY.sample_rate
      assert abs(container.duration / 1e6 - TINY.num_segments) < 0.2
  frames, waveform = _decode(path)
  assert frames.shape == (TINY.num_segments * TINY.fps, TINY.frame_height, TINY.frame_width, 3)
  # AAC pads its last frame: at most one 1024-sample frame beyond the clip.
  assert 0 <= len(waveform) - TINY.num_segments * TINY.sample_rate <= 1024


def test_boxes_enclose_the_event_object_in_decoded_frames(tiny_dataset):
  boxes = {}
  for line in (tiny_dataset / "boxes.jsonl").read_text().splitlines():
    row = json.loads(line)
    boxes.setdefault(row["video_id"], {})[row["segment"]] = row["boxes"][0]
  for index in range(TINY.num_videos):
    truth = synthetic.sample_scene(TINY, index)
    frames, _ = _decode(tiny_dataset / "AVE" / f"{truth.video_id}.mp4")
    colour = scene.class_colour(truth.event_class)
    mask = synthetic.object_masks(TINY, truth)[0]
    for segment in truth.event_segments:
      x0, y0, x1, y1 = box = boxes[truth.video_id][segment]
      assert box == scene.tight_box(mask)
      frame = frames[segment * TINY.fps + TINY.fps // 2].astype(np.float32)
      assert np.abs(frame[mask].mean(axis=0) - colour).max() < 30
      near_colour = np.abs(frame[y0:y1, x0:x1] - colour).max(axis=-1) < 40
      assert near_colour.mean() > 0.3
      border = np.zeros(mask.shape, bool)  # 2..4 px outside the box
      border[max(y0 - 4, 0) : y1 + 4, max(x0 - 4, 0) : x1 + 4] = True
      border[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
      pixels = frame[border]
      assert np.percentile(pixels.max(-1) - pixels.min(-1), 99) < 35  # greyish
      assert np.abs(pixels - colour).max(axis=-1).min() > 60


def _tone_energy_per_second(waveform, sample_rate, frequency_hz, num_segments):
  """Peak |FFT| within +-3 Hz of frequency_hz in each 1-s segment; -> [num_segments]."""
  bins = np.fft.rfftfreq(sample_rate, 1.0 / sample_rate)
  band = np.abs(bins - frequency_hz) <= 3
  seconds = waveform[: num_segments * sample_rate].reshape(num_segments, sample_rate)
  return np.abs(np.fft.rfft(seconds, axis=1))[:, band].max(axis=1)


def test_event_tone_sounds_exactly_during_the_event(tiny_dataset):
  for index in range(TINY.num_videos):
    truth = synthetic.sample_scene(TINY, index)
    _, waveform = _decode(tiny_dataset / "AVE" / f"{truth.video_id}.mp4")
    sounding = np.zeros(TINY.num_segments, bool)
    sounding[truth.event_start : truth.event_end] = True
    energy = _tone_energy_per_second(
        waveform, TINY.sample_rate, scene.TONE_FUNDAMENTALS_HZ[truth.event_class], TINY.num_segments
    )
    assert energy[sounding].min() > 20 * energy[~sounding].max()
    if truth.distractor_sound_class is not None:
      distractor = _tone_energy_per_second(
          waveform,
          TINY.sample_rate,
          scene.TONE_FUNDAMENTALS_HZ[truth.distractor_sound_class],
          TINY.num_segments,
      )
      on = slice(truth.distractor_sound_start, truth.distractor_sound_end)
      assert distractor[on].min() > 20 * distractor[sounding].max()


@pytest.mark.parametrize(
    "spec",
    [
        synthetic.SyntheticSpec(),
        synthetic.SyntheticSpec(num_classes=12, frame_height=96, frame_width=160, num_segments=6),
        synthetic.SyntheticSpec(num_classes=4, num_distractor_objects=2, seed=7),
    ],
)
def test_scene_rules_hold(spec):
  events, longer_tone_is_event, earlier_tone_is_event = [], [], []
  for index in range(400):
    truth = synthetic.sample_scene(spec, index)
    events.append(truth.event_class)
    visible, audible = set(truth.object_classes), set(truth.audible_classes)
    assert visible & audible == {truth.event_class}
    assert len(visible) == len(truth.object_classes) == 1 + spec.num_distractor_objects
    assert 2 <= truth.event_end - truth.event_start <= min(8, spec.num_segments)
    assert 0 <= truth.event_start and truth.event_end <= spec.num_segments
    assert (truth.distractor_sound_class is None) == (spec.num_segments < 4)
    if truth.distractor_sound_class is not None:
      start, end = truth.distractor_sound_start, truth.distractor_sound_end
      assert 2 <= end - start <= 8 and 0 <= start and end <= spec.num_segments
      assert end <= truth.event_start or start >= truth.event_end
      longer_tone_is_event.append(truth.event_end - truth.event_start > end - start)
      earlier_tone_is_event.append(truth.event_start < start)
    assert truth.event_box == truth.object_boxes[0]
    for i, (x0, y0, x1, y1) in enumerate(truth.object_boxes):
      assert 0 <= x0 < x1 <= spec.frame_width and 0 <= y0 < y1 <= spec.frame_height
      for u0, v0, u1, v1 in truth.object_boxes[i + 1 :]:
        assert x1 + 4 <= u0 or u1 + 4 <= x0 or y1 + 4 <= v0 or v1 + 4 <= y0
  assert set(events) == set(range(spec.num_classes))
  # No audio-only shortcut: "the longer tone" and "the earlier tone" are no better than chance.
  if longer_tone_is_event:
    assert np.mean(longer_tone_is_event) < 0.55
    assert abs(np.mean(earlier_tone_is_event) - 0.5) < 0.1


def _tie_shared_share(values, event):
  """1/k if the event object (index `event`) is among the k objects with the largest value,
  else 0: its expected value is 1/num_objects when no value tells the event object apart."""
  values = np.asarray(values, np.float64)
  winners = np.flatnonzero(values == values.max())
  return 1.0 / len(winners) if event in winners else 0.0


def test_no_visual_cue_tells_the_event_object_apart():
  """Size, position and colour pick out the event object at chance, 1/num_objects, within
  3 standard errors over 2000 scenes (placed first, it was the largest 40 % of the time)."""
  spec = synthetic.SyntheticSpec()
  num_objects = 1 + spec.num_distractor_objects
  largest, most_central = [], []
  event_given_colour = {c: [] for c in range(spec.num_classes)}
  centre = np.array([spec.frame_width, spec.frame_height]) / 2
  for index in range(2000):
    truth = synthetic.sample_scene(spec, index)
    squares = np.asarray(truth.object_squares, np.float64)  # (left, top, size), event first
    largest.append(_tie_shared_share(squares[:, 2], 0))
    centres = squares[:, :2] + squares[:, 2:] / 2
    most_central.append(_tie_shared_share(-np.linalg.norm(centres - centre, axis=1), 0))
    for i, class_index in enumerate(truth.object_classes):  # colour is the class's
      event_given_colour[class_index].append(i == 0)
  chance = 1 / num_objects
  for name, shares in (("largest", largest), ("most central", most_central)):
    error = np.sqrt(chance * (1 - chance) / len(shares))
    assert abs(np.mean(shares) - chance) < 3 * error, (name, np.mean(shares))
  for colour, is_event in event_given_colour.items():
    error = np.sqrt(chance * (1 - chance) / len(is_event))
    assert abs(np.mean(is_event) - chance) < 3 * error, (
        scene.COLOUR_NAMES[colour],
        np.mean(is_event),
    )


def test_render_video_matches_scene_truth():
  spec = dataclasses.replace(TINY, num_segments=4)
  frames, waveform, truth = synthetic.render_video(spec, 2)
  assert frames.shape == (4 * spec.fps, spec.frame_height, spec.frame_width, 3)
  assert frames.dtype == np.uint8
  assert waveform.shape == (4 * spec.sample_rate,) and waveform.dtype == np.float32
  assert np.abs(waveform).max() <= 1.0
  assert truth == synthetic.sample_scene(spec, 2)
  masks = synthetic.object_masks(spec, truth)
  for class_index, mask in zip(truth.object_classes, masks):
    mean_colour = frames[:, mask].astype(np.float32).mean(axis=(0, 1))
    assert np.abs(mean_colour - scene.class_colour(class_index)).max() < 10
  again = synthetic.render_video(spec, 2)
  np.testing.assert_array_equal(frames, again[0])
  np.testing.assert_array_equal(waveform, again[1])


def test_class_catalogue_is_distinct():
  names = [scene.class_name(c) for c in range(scene.MAX_CLASSES)]
  assert len(set(names)) == len(set(scene.SHAPES)) == len(set(scene.COLOUR_NAMES)) == 12
  fundamentals = np.array(scene.TONE_FUNDAMENTALS_HZ)
  assert np.all(np.diff(fundamentals) > 0.3 * fundamentals[:-1])
  # No harmonic (x2..x4) of one class lies within 5 % of another class's fundamental.
  for harmonic in (2, 3, 4):
    ratio = harmonic * fundamentals[:, None] / fundamentals[None, :]
    assert np.all(np.abs(ratio - 1) > 0.05)
  with pytest.raises(ValueError):
    synthetic.SyntheticSpec(num_classes=3, num_distractor_objects=2)
