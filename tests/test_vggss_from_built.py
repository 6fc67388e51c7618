"""VGG-SS built from an already built VGGSound dataset (--vggsound_dataset_dir) equals VGG-SS
built from the clips, example by example.

The files are test_vggss_builder's: vggss.json, vggss_test.csv, vggsound.csv (abc, x-y_Z, def in
the test split; zzz in train, without a clip) and clips abc_000010, x-y_Z_000030, def_000000,
ghi_000020 (not noclip_000050). VGGSound is built from them by the CLI, then VGG-SS from it.
"""

import json

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import manifest_builder
from data_pipelines import vggss_builder
from data_pipelines.dataset_spec import Decode
from tests import clip_files
from tests import vggss_files
from tests.test_vggss_builder import VGGSOUND_CSV
from tests.test_vggss_builder import S
from tests.test_vggss_builder import T
from tests.test_vggss_builder import run_build


def _examples(dataset_dir) -> dict:
  source = tfds.builder_from_directory(str(dataset_dir)).as_data_source("test")
  return {example["video_id"].decode(): example for example in source}


def test_vggss_from_built_vggsound_equals_the_clip_path(tmp_path):
  raw = tmp_path / "raw"
  vggss_files.write_vggss(raw)
  (raw / "vggsound.csv").write_text(VGGSOUND_CSV)
  for name in ("abc_000010", "x-y_Z_000030", "def_000000", "ghi_000020"):
    clip_files.write_clip(raw / "clips" / f"{name}.mp4", T)
  sizes = (f"--num_segments={T}", f"--frame_size={S}")
  status, _, stderr = run_build(
      "--dataset=vggsound", f"--manual_dir={raw}", f"--data_dir={tmp_path / 'vggsound'}", *sizes
  )
  assert status == 0, stderr
  vggsound_dir = manifest_builder.dataset_dir(tmp_path / "vggsound", "vggsound", Decode(T, 1, S))

  status, _, stderr = run_build(
      "--dataset=vggss", f"--manual_dir={raw}", f"--data_dir={tmp_path / 'clips'}", *sizes
  )
  assert status == 0, stderr
  status, stdout, stderr = run_build(
      "--dataset=vggss",
      f"--manual_dir={raw}",
      f"--data_dir={tmp_path / 'built'}",
      *sizes,
      f"--vggsound_dataset_dir={vggsound_dir}",
  )
  assert status == 0, stderr
  assert "classes from the built VGGSound" in stderr
  from_built_dir = vggss_builder.dataset_dir(tmp_path / "built", "middle", Decode(T, 1, S))
  assert stdout.strip().splitlines()[-1] == (
      f"vggss: built 2 (train=0, val=0, test=2), skipped 0, failed 2 -> {from_built_dir}"
  )
  assert f"examples from the built VGGSound {vggsound_dir}" in stdout

  from_clips = _examples(vggss_builder.dataset_dir(tmp_path / "clips", "middle", Decode(T, 1, S)))
  from_built = _examples(from_built_dir)
  assert sorted(from_built) == sorted(from_clips) == ["abc_000010", "x-y_Z_000030"]
  for video_id, example in from_clips.items():
    assert set(from_built[video_id]) == set(example)
    for feature, value in example.items():
      np.testing.assert_array_equal(
          from_built[video_id][feature], value, err_msg=f"{video_id} {feature}"
      )
  clip_info = tfds.builder_from_directory(
      str(vggss_builder.dataset_dir(tmp_path / "clips", "middle", Decode(T, 1, S)))
  ).info
  built_info = tfds.builder_from_directory(str(from_built_dir)).info
  assert built_info.features["label"].names == clip_info.features["label"].names

  reasons = {
      record["video_id"]: record["reason"]
      for record in map(json.loads, (from_built_dir / "failures.jsonl").read_text().splitlines())
  }
  assert set(reasons) == {"def_000000", "noclip_000050"}
  assert "no usable box" in reasons["def_000000"]
  assert "not in the built VGGSound dataset" in reasons["noclip_000050"]


def test_other_decode_settings_are_refused(tmp_path):
  raw = tmp_path / "raw"
  vggss_files.write_vggss(raw)
  (raw / "vggsound.csv").write_text(VGGSOUND_CSV)
  clip_files.write_clip(raw / "clips" / "abc_000010.mp4", T)
  run_build(
      "--dataset=vggsound",
      f"--manual_dir={raw}",
      f"--data_dir={tmp_path / 'v'}",
      f"--num_segments={T}",
      f"--frame_size={S}",
  )
  vggsound_dir = manifest_builder.dataset_dir(tmp_path / "v", "vggsound", Decode(T, 1, S))
  status, _, stderr = run_build(
      "--dataset=vggss",
      f"--manual_dir={raw}",
      f"--data_dir={tmp_path / 'o'}",
      f"--num_segments={T}",
      f"--frame_size={2 * S}",
      f"--vggsound_dataset_dir={vggsound_dir}",
  )
  assert status == 2 and "pass the --num_segments/--frames_per_segment/--frame_size" in stderr
