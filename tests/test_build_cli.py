"""The build CLI's flags: the documented `--manifest` form, and one-line errors for flags that do
not fit the dataset (never silently ignored)."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from data_pipelines import build
from data_pipelines import manifest_builder
from data_pipelines.dataset_spec import Decode
from tests import clip_files
from tests.conftest import REPO
from tests.conftest import subprocess_env

T, S = clip_files.NUM_SEGMENTS, clip_files.FRAME_SIZE


def run_build(*args) -> tuple[int, str, str]:
  """(exit status, stdout, stderr) of the build CLI in this process, argument errors included."""
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    try:
      status = build.main(list(args))
    except SystemExit as exit_:
      status = exit_.code
  return status, stdout.getvalue(), stderr.getvalue()


def test_manifest_without_manual_dir_reads_clips_relative_to_the_csv(tmp_path):
  """README's form: --dataset=manifest --manifest=clips.csv --tag=NAME, run from the CSV's
  directory; relative clip paths are relative to the CSV, and failures name absolute paths."""
  clips_dir = tmp_path / "my_clips"
  clip_files.write_clip(clips_dir / "clips" / "dog_0.mp4", 3, (220, 30, 30))
  clip_files.write_clip(clips_dir / "clips" / "cat_0.mp4", 3, (30, 220, 30))
  clip_files.write_clip(clips_dir / "clips" / "dog_1.mp4", 3, (200, 40, 40))
  (clips_dir / "clips.csv").write_text(
      "path,label,split\n"
      "clips/dog_0.mp4,dog,train\n"
      "clips/cat_0.mp4,cat,val\n"
      "clips/dog_1.mp4,dog,test\n"
      "clips/missing.mp4,cat,train\n"
  )
  data_dir = tmp_path / "tfds"
  env = dict(
      subprocess_env(), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
  )
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "data_pipelines.build",
          "--dataset=manifest",
          "--manifest=clips.csv",
          "--tag=mine",
          f"--data_dir={data_dir}",
          f"--num_segments={T}",
          f"--frame_size={S}",
      ],
      cwd=clips_dir,
      env=env,
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  dataset_dir = manifest_builder.dataset_dir(data_dir, "mine", Decode(T, 1, S))
  assert result.stdout.strip().splitlines()[-1] == (
      f"manifest: built 3 (train=1, val=1, test=1), skipped 0, failed 1 -> {dataset_dir}"
  )
  (failure,) = [
      json.loads(line) for line in (dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  assert failure["path"] == str(clips_dir / "clips" / "missing.mp4")
  assert failure["reason"] == "file not found"


@pytest.mark.parametrize(
    "flags, needles",
    [
        (
            ["--manifest=x.csv", "--manual_dir=DIR"],
            ["not both", "relative to the manifest's directory"],
        ),
        ([], ["--dataset=manifest needs --manual_dir or --manifest"]),
    ],
)
def test_manifest_needs_exactly_one_source(tmp_path, flags, needles):
  status, _, stderr = run_build("--dataset=manifest", f"--data_dir={tmp_path}", *flags)
  assert status == 2 and len(stderr.strip().splitlines()) == 1, stderr
  assert stderr.startswith("build: error: ") and all(n in stderr for n in needles), stderr


def test_unknown_synthetic_config_is_a_one_line_error_naming_the_known_ones(tmp_path):
  status, _, stderr = run_build(
      "--dataset=synthetic", "--synthetic_config=bogus", f"--data_dir={tmp_path}"
  )
  assert status == 2, stderr
  assert stderr.strip() == (
      "build: error: --synthetic_config=bogus: configs/synthetic.py: "
      "unknown arguments ['bogus']; known: smoke"
  )


@pytest.mark.parametrize("flag", ["--frame_size=32", "--num_segments=5", "--frames_per_segment=2"])
def test_synthetic_sizes_are_the_configs_not_flags(tmp_path, flag):
  status, _, stderr = run_build("--dataset=synthetic", flag, f"--data_dir={tmp_path}")
  name = flag[2:].split("=")[0]
  assert status == 2 and len(stderr.strip().splitlines()) == 1, stderr
  assert (
      f"--{name} does not apply to --dataset=synthetic: config.dataset.{name} of "
      f"configs/synthetic.py sets it"
  ) in stderr
  assert f"--config.dataset.{name}=N" in stderr
  assert not list(tmp_path.iterdir())  # nothing generated or built


@pytest.mark.parametrize(
    "dataset, flags, message",
    [
        ("synthetic", ["--manual_dir=DIR"], "--manual_dir does not apply to --dataset=synthetic"),
        (
            "synthetic",
            ["--decode_timeout_s=5"],
            "--decode_timeout_s does not apply to --dataset=synthetic",
        ),
        ("synthetic", ["--tag=t"], "--tag does not apply to --dataset=synthetic, only to manifest"),
        (
            "ave_features",
            ["--manual_dir=DIR", "--frame_size=32"],
            "--frame_size does not apply to --dataset=ave_features, only to ave, manifest, "
            "kinetics_sounds, vggsound",
        ),
        (
            "ave_features",
            ["--manual_dir=DIR", "--num_workers=4"],
            "--num_workers does not apply to --dataset=ave_features",
        ),
        (
            "ave",
            ["--manual_dir=DIR", "--visual_dtype=float32"],
            "--visual_dtype does not apply to --dataset=ave, only to ave_features",
        ),
        (
            "ave",
            ["--manual_dir=DIR", "--synthetic_config=smoke"],
            "--synthetic_config does not apply to --dataset=ave, only to synthetic",
        ),
        ("vggsound", ["--manual_dir=DIR", "--tag=t"], "--tag does not apply to --dataset=vggsound"),
        (
            "kinetics_sounds",
            ["--manual_dir=DIR", "--manifest=m.csv"],
            "--manifest does not apply to --dataset=kinetics_sounds, only to manifest",
        ),
        (
            "ave_features",
            ["--manual_dir=DIR", "--beam_runner=DirectRunner"],
            "--beam_runner does not apply to --dataset=ave_features",
        ),
        (
            "manifest",
            ["--manual_dir=DIR", "--beam_runner=DirectRunner", "--num_workers=4"],
            "--num_workers apply to the local build, not to --beam_runner",
        ),
        (
            "manifest",
            ["--manual_dir=DIR", "--beam_runner=DirectRunner", "--decode_timeout_s=9"],
            "--decode_timeout_s apply to the local build, not to --beam_runner",
        ),
        (
            "manifest",
            ["--manual_dir=DIR", "--beam_num_workers=2"],
            "--beam_num_workers needs --beam_runner",
        ),
        (
            "manifest",
            ["--manual_dir=DIR", "--project=p"],
            "unrecognized arguments: --project=p (pass-through Beam options need --beam_runner)",
        ),
    ],
)
def test_flags_the_dataset_does_not_read_are_one_line_errors(tmp_path, dataset, flags, message):
  status, _, stderr = run_build(f"--dataset={dataset}", f"--data_dir={tmp_path}", *flags)
  assert status == 2 and len(stderr.strip().splitlines()) == 1, stderr
  assert stderr.startswith(f"build: error: {message}"), stderr
