"""The AVE-format TFDS builder on a tiny synthetic directory, including files that cannot be read."""

import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import ave_builder
from data_pipelines import synthetic
from data_pipelines import synthetic_files

SPEC = synthetic.SyntheticSpec(num_train=4, num_val=2, num_test=2, num_segments=4, seed=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("ave_builder")
  raw = synthetic_files.generate(root / "raw", SPEC)
  # One unreadable file and one missing file in the train split; neither may abort the build.
  train_ids = [line.split("&")[1] for line in (raw / "trainSet.txt").read_text().splitlines()]
  (raw / "AVE" / f"{train_ids[0]}.mp4").write_bytes(b"this is not a video")
  (raw / "AVE" / f"{train_ids[1]}.mp4").unlink()
  summary = ave_builder.build(
      raw, root / "tfds", tag="tiny", num_segments=4, frame_size=32, num_workers=2
  )
  return raw, summary, train_ids


def test_summary_counts_built_and_failed(built):
  _, summary, _ = built
  assert summary.built == {"train": 2, "val": 2, "test": 2}
  assert summary.failed == 2
  assert "failed 2" in str(summary)


def test_failures_are_listed_with_reasons(built):
  _, summary, train_ids = built
  failures = [
      json.loads(line) for line in (summary.dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  reasons = {f["video_id"]: f["reason"] for f in failures}
  assert set(reasons) == set(train_ids[:2])
  assert reasons[train_ids[1]] == "file not found"
  assert "MediaError" in reasons[train_ids[0]]


def test_examples_hold_labels_events_frames_audio_and_boxes(built):
  raw, summary, _ = built
  builder = tfds.builder_from_directory(str(summary.dataset_dir))
  names = builder.info.features["label"].names
  assert set(names) <= set((raw / "classes.txt").read_text().split())
  truths = {
      json.loads(line)["video_id"]: json.loads(line)
      for line in (raw / "scenes.jsonl").read_text().splitlines()
  }
  source = builder.as_data_source("test")
  assert len(source) == 2
  for example in source:
    video_id = example["video_id"].decode()
    assert example["frames"].shape == (4, 1, 32, 32, 3) and example["frames"].dtype == np.uint8
    assert example["log_mel"].shape == (4, 96, 64)
    assert example["segment_mask"].all() and example["has_audio"]
    assert tuple(example["frame_size"]) == (SPEC.frame_width, SPEC.frame_height)
    start, end = int(example["event_start"]), int(example["event_end"])
    label = int(example["label"])
    expected_segments = [label if start <= t < end else len(names) for t in range(4)]
    assert example["segment_labels"].tolist() == expected_segments
    # Boxes exactly on event segments, equal to the generator's truth.
    assert example["box_mask"][:, 0].tolist() == [start <= t < end for t in range(4)]
    np.testing.assert_allclose(example["boxes"][start, 0], truths[video_id]["event_box"])
    assert names[label] == synthetic.SyntheticSpec().class_names[truths[video_id]["event_class"]]


def test_rebuild_is_cached(built, tmp_path):
  raw, summary, _ = built
  again = ave_builder.build(
      raw, summary.dataset_dir.parents[2], tag="tiny", num_segments=4, frame_size=32
  )
  assert again.built == summary.built and again.failed == summary.failed


def test_a_build_another_process_finished_first_is_used(built, tmp_path, monkeypatch):
  """Two runs building the same set at once (stt.reproduce --jobs): TFDS refuses to move the
  loser's copy over the winner's; the loser uses the winner's set instead of failing."""
  raw, summary, _ = built
  shutil.copytree(summary.dataset_dir, tmp_path / "winner")
  original = tfds.core.DatasetBuilder.download_and_prepare

  def race(self, *args, **kwargs):
    shutil.copytree(tmp_path / "winner", self.data_dir)  # the other process finishes first
    raise FileExistsError(f"Destination {self.data_dir} already exists.")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", race)
  again = ave_builder.build(raw, tmp_path / "tfds", tag="tiny", num_segments=4, frame_size=32)
  assert again.reused and again.built == summary.built and again.failed == summary.failed
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", original)

  def lost(self, *args, **kwargs):
    raise FileExistsError("some other file")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", lost)
  with pytest.raises(FileExistsError, match="some other file"):  # not a finished set: raised
    ave_builder.build(raw, tmp_path / "other", tag="tiny", num_segments=4, frame_size=32)
