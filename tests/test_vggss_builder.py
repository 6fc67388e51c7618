"""The VGG-SS build through the build CLI, on small real clips and the release's defects.

Clips are 64x48 px (clip_files), 6 s long, decoded as T=6 segments at 32 px; the boxes sit at
segment 5 (annotated_frame=middle, 5.0 s) or 4 (frame125, 4.96 s). abc_000010's boxes
[0.25,0.5,0.5,1.0] and [0,0,0.1,0.1] are [16,24,32,48] and [0,0,6.4,4.8] in pixels.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import build
from data_pipelines import vggss_builder
from data_pipelines.dataset_spec import Decode
from tests import clip_files
from tests import vggss_files

T, S = 6, clip_files.FRAME_SIZE
# vggsound.csv rows: ytid,start,label,split; its sorted labels are the class list.
VGGSOUND_CSV = (
    "abc,10,dog barking,test\nx-y_Z,30,cat meowing,test\n"
    "zzz,0,airplane flyby,train\ndef,0,dog barking,test\n"
)
CLASSES = ["airplane flyby", "cat meowing", "dog barking"]


def run_build(*args) -> tuple[int, str, str]:
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    status = build.main(list(args))
  return status, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("vggss")
  raw = root / "raw"
  vggss_files.write_vggss(raw)
  (raw / "vggsound.csv").write_text(VGGSOUND_CSV)
  for name in ("abc_000010", "x-y_Z_000030", "def_000000", "ghi_000020"):  # not noclip_000050
    clip_files.write_clip(raw / "clips" / f"{name}.mp4", T)
  data_dir = root / "tfds"
  status, stdout, stderr = run_build(
      "--dataset=vggss",
      f"--manual_dir={raw}",
      f"--data_dir={data_dir}",
      f"--num_segments={T}",
      f"--frame_size={S}",
  )
  assert status == 0, stderr
  return (
      raw,
      data_dir,
      vggss_builder.dataset_dir(data_dir, "middle", Decode(T, 1, S)),
      stdout,
      stderr,
  )


def test_summary_counts_the_defects_and_the_failed_rows(built):
  _, _, dataset_dir, stdout, stderr = built
  lines = stdout.strip().splitlines()
  assert lines[-1] == (
      f"vggss: built 2 (train=0, val=0, test=2), skipped 0, failed 2 -> {dataset_dir}"
  )
  assert lines[-2] == (
      "vggss.json: 4 entries (sentinel boxes 1, degenerate boxes 1, entries "
      "without box 1, not in test list 1, test ids without entry 1); boxes at "
      "segment 5 (annotated_frame=middle)"
  )
  assert "classes from" in stderr and "vggsound.csv" in stderr
  failures = [
      json.loads(line) for line in (dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  reasons = {record["video_id"]: record["reason"] for record in failures}
  assert reasons == {
      "def_000000": (
          "vggss.json entry 2 (def_000000): no usable box (0 with the sentinel coordinate, "
          "1 degenerate)"
      ),
      "noclip_000050": "file not found",
  }


def test_examples_hold_the_boxes_at_the_annotated_segment(built):
  _, _, dataset_dir, _, _ = built
  builder = tfds.builder_from_directory(str(dataset_dir))
  assert builder.info.features["label"].names == CLASSES
  examples = {
      str(e["video_id"], "utf-8") if isinstance(e["video_id"], bytes) else e["video_id"]: e
      for e in builder.as_data_source("test")
  }
  assert sorted(examples) == ["abc_000010", "x-y_Z_000030"]
  abc = examples["abc_000010"]
  assert abc["label"] == CLASSES.index("dog barking")
  assert abc["boxes"].shape == (T, vggss_builder.MAX_BOXES, 4)
  np.testing.assert_array_equal(abc["box_mask"].sum(1), [0, 0, 0, 0, 0, 2])
  np.testing.assert_allclose(abc["boxes"][5, :2], [[16, 24, 32, 48], [0, 0, 6.4, 4.8]], rtol=1e-6)
  np.testing.assert_array_equal(abc["frame_size"], [64, 48])
  cat = examples["x-y_Z_000030"]
  np.testing.assert_allclose(cat["boxes"][5, :1], [[32, 12, 64, 36]])  # the sentinel box: gone
  assert cat["box_mask"].sum() == 1
  assert (abc["event_start"], abc["event_end"]) == (0, 0)  # no temporal annotation
  np.testing.assert_array_equal(abc["segment_labels"], [len(CLASSES)] * T)


def test_rebuild_is_kept_and_flags_are_checked(built):
  raw, data_dir, dataset_dir, _, _ = built
  status, stdout, _ = run_build(
      "--dataset=vggss",
      f"--manual_dir={raw}",
      f"--data_dir={data_dir}",
      f"--num_segments={T}",
      f"--frame_size={S}",
  )
  assert status == 0 and "skipped 2 (already built: train=0, val=0, test=2)" in stdout
  with pytest.raises(SystemExit):
    run_build("--dataset=vggsound", "--annotated_frame=middle", f"--manual_dir={raw}")
  status, _, stderr = run_build(
      "--dataset=vggss", f"--manual_dir={data_dir}", f"--data_dir={data_dir}"
  )
  assert status == 2 and "lacks vggss.json" in stderr and "hche11" in stderr


def test_frame125_puts_the_boxes_in_segment_4(built, tmp_path):
  raw, _, _, _, _ = built
  summary = vggss_builder.build(
      raw, tmp_path, annotated_frame="frame125", num_segments=T, frame_size=S
  )
  builder = tfds.builder_from_directory(str(summary.dataset_dir))
  example = builder.as_data_source("test")[0]
  np.testing.assert_array_equal(example["box_mask"].any(1), [0, 0, 0, 0, 1, 0])
