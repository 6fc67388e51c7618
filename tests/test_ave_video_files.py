"""AVE rows find AVE/<id>.<ext> for the common containers when <id>.mp4 is not there."""

import json

import tensorflow_datasets as tfds

from data_pipelines import ave_builder
from tests import clip_files


def test_video_files_prefer_mp4_then_the_listed_extensions(tmp_path):
  for name in ("a.mp4", "a.mkv", "b.webm", "b.avi", "c.MOV", "d.ts", "e.txt", "f.mpeg.part"):
    (tmp_path / name).write_bytes(b"")
  assert ave_builder._video_files(tmp_path) == {  # pylint: disable=protected-access
      "a": "a.mp4",
      "b": "b.webm",
      "c": "c.MOV",
      "d": "d.ts",
  }


def test_a_matroska_video_is_built(tmp_path):
  raw = tmp_path / "raw"
  clip_files.write_clip(raw / "AVE" / "vidmkv.mkv", 3, (30, 30, 220), container="matroska")
  clip_files.write_clip(raw / "AVE" / "vidmp4.mp4", 3, (220, 30, 30))
  rows = {
      "train": "Bark&vidmkv&good&0&2",
      "val": "Bark&vidmp4&good&1&3",
      "test": "Bark&vidgone&good&0&1",
  }
  (raw / "Annotations.txt").write_text("\n".join(rows.values()) + "\n")
  for split, file_name in (
      ("train", "trainSet.txt"),
      ("val", "valSet.txt"),
      ("test", "testSet.txt"),
  ):
    (raw / file_name).write_text(rows[split] + "\n")
  summary = ave_builder.build(raw, tmp_path / "tfds", tag="ext", num_segments=3, frame_size=16)
  assert summary.built == {"train": 1, "val": 1, "test": 0} and summary.failed == 1
  (failure,) = [
      json.loads(line) for line in (summary.dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  assert failure["path"].endswith("AVE/vidgone.mp4") and failure["reason"] == "file not found"
  (example,) = tfds.builder_from_directory(str(summary.dataset_dir)).as_data_source("train")
  assert example["video_id"] == b"vidmkv" and example["segment_mask"].all()
  assert example["frames"][..., 2].mean() > 150 > example["frames"][..., 0].mean()  # blue
