"""The clip-manifest builder through the build CLI, on small real MP4s and bad rows and files."""

import contextlib
import io
import json
import sys

import pytest
import tensorflow_datasets as tfds

import data_pipelines
from data_pipelines import build
from data_pipelines import manifest_builder
from data_pipelines import manifest_format
from data_pipelines.dataset_spec import Decode
from tests import clip_files

T, S = clip_files.NUM_SEGMENTS, clip_files.FRAME_SIZE
DOG, CAT = 1, 0  # sorted labels of the manifest: cat, dog; background = 2
# video_id: (split, label, event_start, event_end, valid segments)
EXPECTED = {
    "dog_0": ("train", DOG, 1, 3, 4),
    "dog_1": ("train", DOG, 0, 3, 3),
    "cat_2": ("train", CAT, 0, 3, 3),  # no split given: default_split("clips/cat_2.mp4")
    "cat_0": ("val", CAT, 0, 3, 3),
    "cat_1": ("test", CAT, 2, 4, 4),
    "dog_2": ("test", DOG, 0, 4, 4),
}


def run_build(*args) -> tuple[int, str, str]:
  """(exit status, stdout, stderr) of the build CLI, run in this process."""
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    status = build.main(list(args))
  return status, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("manifest")
  clip_files.write_manifest_dir(root / "raw")
  data_dir = root / "tfds"
  status, stdout, stderr = run_build(
      "--dataset=manifest",
      f"--manual_dir={root / 'raw'}",
      f"--data_dir={data_dir}",
      f"--num_segments={T}",
      f"--frame_size={S}",
      "--num_workers=2",
  )
  assert status == 0, stderr
  dataset_dir = manifest_builder.dataset_dir(data_dir, "manifest", Decode(T, 1, S))
  return root, data_dir, dataset_dir, stdout, stderr


def test_summary_counts_built_and_failed_rows(built):
  _, _, dataset_dir, stdout, stderr = built
  assert manifest_format.default_split("clips/cat_2.mp4") == "train"
  assert stdout.strip().splitlines()[-1] == (
      f"manifest: built 6 (train=3, val=1, test=2), skipped 0, failed 5 -> {dataset_dir}"
  )
  assert "11/11" in stderr  # the progress bar counted every data row, refused ones included


def test_failures_name_line_path_and_reason(built):
  root, _, dataset_dir, _, _ = built
  failures = [
      json.loads(line) for line in (dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  reasons = {f["key"][:7]: f["reason"] for f in failures}
  assert sorted(reasons) == ["0000007", "0000008", "0000009", "0000010", "0000011"]
  assert reasons["0000007"].startswith("MediaError: ")
  assert reasons["0000008"] == "file not found"
  assert reasons["0000009"] == "manifest line 9: end must be after start, got start=3, end=1"
  assert reasons["0000010"].startswith("manifest line 10: split must be one of train, val, test")
  assert (
      reasons["0000011"]
      == "manifest line 11: expected 5 fields (path,label,start,end,split), got 2"
  )
  by_key = {f["key"][:7]: f for f in failures}
  assert by_key["0000008"]["path"] == str(root / "raw" / "clips" / "missing.mp4")
  assert (by_key["0000007"]["split"], by_key["0000008"]["split"]) == ("train", "val")
  # Ordered by split (train, val, test, then unknown), then row.
  assert [f["key"][:7] for f in failures] == ["0000007", "0000009", "0000008", "0000010", "0000011"]
  assert (dataset_dir / "warnings.jsonl").read_text() == ""  # the clips have audio, no damage


def test_examples_hold_labels_events_frames_and_audio(built):
  _, _, dataset_dir, _, _ = built
  builder = tfds.builder_from_directory(str(dataset_dir))
  assert builder.info.features["label"].names == ["cat", "dog"]
  seen = set()
  for split in ("train", "val", "test"):
    for example in builder.as_data_source(split):
      video_id = example["video_id"].decode()
      expected_split, label, start, end, valid = EXPECTED[video_id]
      seen.add(video_id)
      assert split == expected_split, video_id
      assert (int(example["label"]), int(example["event_start"]), int(example["event_end"])) == (
          label,
          start,
          end,
      ), video_id
      assert example["segment_labels"].tolist() == [
          label if start <= t < end else 2 for t in range(T)
      ], video_id
      assert example["segment_mask"].tolist() == [t < valid for t in range(T)], video_id
      assert example["frames"].shape == (T, 1, S, S, 3) and example["has_audio"]
      assert tuple(example["frame_size"]) == (clip_files.WIDTH, clip_files.HEIGHT)
      assert example["log_mel"].shape == (T, 96, 64)
      assert not example["box_mask"].any() and not example["boxes"].any()
      assert example["damaged_segments"].tolist() == [False] * T  # clean clips
      # Dogs are red, cats green: the decoded frames of valid segments say so.
      mean_rgb = example["frames"][:valid].reshape(-1, 3).mean(axis=0)
      assert (
          (mean_rgb[0] > 150 > mean_rgb[1]) if label == DOG else (mean_rgb[1] > 150 > mean_rgb[0])
      )
      assert not example["frames"][valid:].any()
  assert seen == set(EXPECTED)


def test_rebuild_is_kept(built):
  root, data_dir, dataset_dir, _, _ = built
  status, stdout, _ = run_build(
      "--dataset=manifest",
      f"--manual_dir={root / 'raw'}",
      f"--data_dir={data_dir}",
      f"--num_segments={T}",
      f"--frame_size={S}",
  )
  assert status == 0
  assert stdout.strip().splitlines()[-1] == (
      "manifest: built 0, skipped 6 (already built: train=3, val=1, test=2), failed 5 -> "
      f"{dataset_dir}"
  )


def test_a_given_class_list_and_rows_outside_it(built):
  root, data_dir, _, _, _ = built
  clips = root / "raw" / "clips"
  manifest = root / "given.csv"
  manifest.write_text(
      "split,label,path,end,start\n"  # columns in any order
      f"train,dog,{clips / 'dog_0.mp4'},,\n"
      f"val,cat,{clips / 'cat_0.mp4'},,\n"
      f"test,dog,{clips / 'dog_1.mp4'},3,1\n"
      f"train,horse,{clips / 'dog_2.mp4'},,\n"
      f"test,cat,{clips / 'cat_1.mp4'},9,5\n"
  )
  summary = manifest_builder.build(
      manifest,
      data_dir,
      tag="given",
      class_names=("bird", "cat", "dog"),
      num_segments=T,
      frame_size=S,
  )
  assert summary.built == {"train": 1, "val": 1, "test": 1} and summary.failed == 2
  failures = [
      json.loads(line) for line in (summary.dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  assert [f["reason"] for f in failures] == [
      "manifest line 5: label 'horse' is not in the class list (3 classes)",
      "manifest line 6: event starts at 5 s, after the 4 seconds decoded (num_segments)",
  ]
  builder = tfds.builder_from_directory(str(summary.dataset_dir))
  assert builder.info.features["label"].names == ["bird", "cat", "dog"]
  (test_example,) = builder.as_data_source("test")
  assert test_example["segment_labels"].tolist() == [3, 2, 2, 3]  # background = 3 classes


def test_bad_manifests_are_one_line_errors(tmp_path):
  status, _, stderr = run_build(
      "--dataset=manifest", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'out'}"
  )
  assert status == 2
  assert stderr.startswith(f"build: error: no manifest at {tmp_path / 'manifest.csv'}.\n")
  assert "path,label[,start,end][,split]" in stderr
  (tmp_path / "manifest.csv").write_text("file,class\nclips/a.mp4,dog\n")
  status, _, stderr = run_build(
      "--dataset=manifest", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'out'}"
  )
  assert status == 2 and len(stderr.strip().splitlines()) == 1
  assert "the first row must be the header path,label[,start,end][,split]" in stderr
  (tmp_path / "manifest.csv").write_text("path,label,split\nclips/a.mp4,dog,nope\n")
  status, _, stderr = run_build(
      "--dataset=manifest", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'out'}"
  )
  assert status == 2 and "no usable row" in stderr and "split must be one of" in stderr


def test_beam_without_apache_beam_says_what_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "apache_beam", None)  # as if not installed
  monkeypatch.delitem(sys.modules, "data_pipelines.video_beam", raising=False)
  monkeypatch.delattr(data_pipelines, "video_beam", raising=False)
  status, _, stderr = run_build(
      "--dataset=manifest",
      f"--manual_dir={tmp_path}",
      f"--data_dir={tmp_path / 'out'}",
      "--beam_runner=DirectRunner",
  )
  assert status == 2 and "pip install -e .[beam]" in stderr
  with pytest.raises(SystemExit):
    run_build("--dataset=manifest", f"--manual_dir={tmp_path}", "--project=p")  # needs a runner
