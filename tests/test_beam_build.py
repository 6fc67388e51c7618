"""The Beam build path (DirectRunner, 2 worker processes) writes the same examples, failures and
warnings as the local path, on the manifest of tests/clip_files.py (6 good clips, 5 failed rows)
plus a clip with a corrupt stretch (built, with a warning and damaged segments)."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

pytest.importorskip("apache_beam")

from data_pipelines import manifest_builder  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_pipelines.dataset_spec import Decode
from tests import clip_files  # pylint: disable=wrong-import-position
from tests import media_files  # pylint: disable=wrong-import-position
from tests.test_manifest_builder import run_build  # pylint: disable=wrong-import-position

pytestmark = pytest.mark.slow  # Beam's DirectRunner with 2 worker processes

T, S = clip_files.NUM_SEGMENTS, clip_files.FRAME_SIZE
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def local_and_beam(tmp_path_factory):
  root = tmp_path_factory.mktemp("beam")
  manifest = clip_files.write_manifest_dir(root / "raw")
  clean = media_files.write_colour_clip(root / "clean.mp4", T, width=64, height=48, fps=4)
  media_files.corrupt_packets(clean, root / "raw" / "clips" / "corrupt.mp4", 2.0, 2.5)
  with manifest.open("a") as manifest_file:
    manifest_file.write("clips/corrupt.mp4,dog,,,test\n")  # line 14
  local = manifest_builder.build(manifest, root / "local", tag="m", num_segments=T, frame_size=S)
  status, stdout, stderr = run_build(
      "--dataset=manifest",
      f"--manual_dir={root / 'raw'}",
      f"--data_dir={root / 'beam'}",
      "--tag=m",
      f"--num_segments={T}",
      f"--frame_size={S}",
      "--beam_runner=DirectRunner",
      "--beam_num_workers=2",
      "--job_name=stt-beam-test",
  )  # a pass-through Beam flag
  assert status == 0, stderr[-3000:]
  return local, manifest_builder.dataset_dir(root / "beam", "m", Decode(T, 1, S)), stdout, stderr


def test_summary_and_failures_equal_the_local_build(local_and_beam):
  local, beam_dir, stdout, stderr = local_and_beam
  assert "on Beam (DirectRunner): 12 rows" in stderr
  assert stdout.strip().splitlines()[-1] == (
      f"manifest: built 7 (train=3, val=1, test=3), skipped 0, failed 5, warned 1 -> {beam_dir}"
  )
  assert local.built == {"train": 3, "val": 1, "test": 3} and local.failed == 5
  assert local.warned == 1
  local_failures = (local.dataset_dir / "failures.jsonl").read_text().splitlines()
  beam_failures = (beam_dir / "failures.jsonl").read_text().splitlines()
  assert beam_failures == local_failures  # same records, same order
  assert [json.loads(line)["key"][:7] for line in beam_failures] == [
      "0000007",
      "0000009",
      "0000008",
      "0000010",
      "0000011",
  ]
  local_warnings = (local.dataset_dir / "warnings.jsonl").read_text().splitlines()
  assert (beam_dir / "warnings.jsonl").read_text().splitlines() == local_warnings
  (warning,) = map(json.loads, local_warnings)
  assert (warning["video_id"], warning["split"]) == ("corrupt", "test")
  assert any("undecodable packets" in note for note in warning["warnings"])
  # Nothing of the Beam run is left next to the dataset but the dataset and the two lists.
  assert not [
      p.name for p in beam_dir.iterdir() if p.name.startswith(("tasks-", "failures-", "warnings-"))
  ]


def test_examples_equal_the_local_build(local_and_beam):
  local, beam_dir, _, _ = local_and_beam
  local_builder = tfds.builder_from_directory(str(local.dataset_dir))
  beam_builder = tfds.builder_from_directory(str(beam_dir))
  assert beam_builder.info.features["label"].names == ["cat", "dog"]
  for split in SPLITS:
    local_examples = list(local_builder.as_data_source(split))
    beam_examples = list(beam_builder.as_data_source(split))
    assert [e["video_id"] for e in beam_examples] == [e["video_id"] for e in local_examples]
    for example in beam_examples:
      assert example["damaged_segments"].any() == (example["video_id"] == b"corrupt")
    for local_example, beam_example in zip(local_examples, beam_examples):
      assert local_example.keys() == beam_example.keys()
      for key in local_example:
        np.testing.assert_array_equal(beam_example[key], local_example[key], err_msg=key)


def test_pipeline_options_map_workers_and_pass_flags_through():
  from data_pipelines import video_beam  # pylint: disable=g-import-not-at-top

  direct = video_beam.pipeline_options("DirectRunner", 3, []).get_all_options()
  assert (direct["runner"], direct["direct_num_workers"], direct["direct_running_mode"]) == (
      "DirectRunner",
      3,
      "multi_processing",
  )
  dataflow = video_beam.pipeline_options(
      "DataflowRunner", 64, ["--project=p", "--region=europe-west4", "--max_num_workers=128"]
  ).get_all_options()
  assert (dataflow["runner"], dataflow["num_workers"], dataflow["max_num_workers"]) == (
      "DataflowRunner",
      64,
      128,
  )
  assert (dataflow["project"], dataflow["region"]) == ("p", "europe-west4")
