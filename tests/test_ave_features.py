"""The AVE feature release: build CLI, label cross-checks, loading, and one training run.

The release directory is made from the real AVE metadata in tests/data/ave (Annotations.txt,
the order files, mil_labels.h5, labels_closs.h5) plus generated feature files:
- labels.h5 [4143,10,29] is absent there; it is derived from the real mil_labels.h5 (class) and
  labels_closs.h5 (event segments), so checking it against Annotations.txt checks those files too;
- visual_feature.h5 is tiny and random, [4143,10,2,2,4];
- audio_feature.h5 [4143,10,128] repeats the 178 real VGGish vectors of audio_feature_noisy.h5
  (the weak-supervision background videos, the only real features there), as float64 like them.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import ave as ave_config
from data_pipelines import ave_features
from data_pipelines import ave_features_release
from data_pipelines import ave_format
from stt import config_validation
from stt import datasets
from stt import input_pipeline
from tests.conftest import AVE_METADATA_DIR as METADATA_DIR
from tests.conftest import REPO
from tests.conftest import subprocess_env

METADATA_FILES = (
    "Annotations.txt",
    "train_order.h5",
    "val_order.h5",
    "test_order.h5",
    "mil_labels.h5",
    "labels_closs.h5",
)
REAL_VGGISH_FILE = "audio_feature_noisy.h5"
VISUAL_SHAPE = (10, 2, 2, 4)  # T,h,w,Cv: tiny


def _read(path, key="avadataset"):
  with h5py.File(path, "r") as file:
    return file[key][...]


def _write(path, array, key="avadataset"):
  with h5py.File(path, "w") as file:
    file[key] = array


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> pathlib.Path:
  """A directory laid out as the AVE feature release (see the module docstring)."""
  directory = tmp_path_factory.mktemp("ave_release")
  for name in METADATA_FILES:
    shutil.copy(METADATA_DIR / name, directory / name)
  video_class = _read(directory / "mil_labels.h5").argmax(-1)  # [N]
  in_event = _read(directory / "labels_closs.h5") == 1  # [N,T]
  background = _read(directory / "mil_labels.h5").shape[-1] - 1
  segment_labels = np.where(in_event, video_class[:, None], background)  # [N,T]
  _write(directory / "labels.h5", np.eye(background + 1, dtype=np.float32)[segment_labels])
  num_rows = len(video_class)
  rng = np.random.default_rng(0)
  _write(
      directory / "visual_feature.h5",
      rng.gamma(1.0, 5.0, size=(num_rows,) + VISUAL_SHAPE).astype(np.float32),
  )
  vggish = _read(METADATA_DIR / REAL_VGGISH_FILE)  # [178,T,128] float64
  _write(directory / "audio_feature.h5", vggish[np.arange(num_rows) % len(vggish)])
  return directory


@pytest.fixture(scope="module")
def built(release, tmp_path_factory):
  """(data_dir, dataset_dir, stdout) of `python -m data_pipelines.build --dataset=ave_features`."""
  data_dir = tmp_path_factory.mktemp("tfds")
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "data_pipelines.build",
          "--dataset=ave_features",
          f"--manual_dir={release}",
          f"--data_dir={data_dir}",
      ],
      cwd=REPO,
      env=subprocess_env(),
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return data_dir, ave_features.dataset_dir(data_dir), result.stdout


def _all_examples(dataset_dir) -> dict:
  builder = tfds.builder_from_directory(str(dataset_dir))
  sources = {split: builder.as_data_source(split) for split in ("train", "val", "test")}
  return {split: [source[i] for i in range(len(source))] for split, source in sources.items()}


def test_splits_come_from_the_order_files(built, release):
  _, dataset_dir, stdout = built
  assert stdout.strip().splitlines()[-1] == (
      "ave_features: built 4143 (train=3339, val=402, test=402), skipped 0, failed 0 -> "
      f"{dataset_dir}"
  )
  examples = _all_examples(dataset_dir)
  for split, name in ave_features_release.ORDER_FILES.items():
    rows = sorted(int(e["row"]) for e in examples[split])
    assert rows == sorted(_read(release / name, "order").tolist())
  assert {split: len(e) for split, e in examples.items()} == {
      "train": 3339,
      "val": 402,
      "test": 402,
  }


def test_labels_and_events_match_annotations(built, release):
  _, dataset_dir, _ = built
  rows = ave_format.parse_annotation_lines(release / "Annotations.txt")
  class_names = ave_format.class_names_in_order(rows)
  info = tfds.builder_from_directory(str(dataset_dir)).info
  assert info.features["label"].names == class_names and len(class_names) == 28
  assert class_names[:3] == ["Church bell", "Male speech, man speaking", "Bark"]
  for examples in _all_examples(dataset_dir).values():
    for example in examples:
      row = rows[example["row"]]
      assert example["video_id"].decode() == row.video_id
      assert class_names[example["label"]] == row.category
      assert (example["event_start"], example["event_end"]) == (row.start, row.end)
      expected = ave_format.segment_labels(row, example["label"], 10, background=28)
      assert example["segment_labels"].tolist() == expected
      assert example["segment_mask"].all() and not example["box_mask"].any()
  assert rows[26].start == rows[26].end == 0  # an empty event in the release; kept


def test_features_are_read_row_by_row(built, release):
  _, dataset_dir, _ = built
  builder = tfds.builder_from_directory(str(dataset_dir))
  assert builder.info.features["visual_features"].shape == VISUAL_SHAPE
  assert builder.info.features["audio_features"].shape == (10, 128)
  visual = _read(release / "visual_feature.h5")
  vggish = _read(METADATA_DIR / REAL_VGGISH_FILE)
  assert vggish.shape == (178, 10, 128) and np.all(np.isfinite(vggish))
  # The 178 real videos are the background-only extras of weak supervision (class 28).
  assert np.all(_read(METADATA_DIR / "labels_noisy.h5").argmax(-1) == 28)
  for example in builder.as_data_source("test"):
    row = example["row"]
    assert example["visual_features"].dtype == np.float16
    np.testing.assert_allclose(example["visual_features"], visual[row], rtol=1e-3, atol=1e-3)
    assert example["audio_features"].dtype == np.float32
    np.testing.assert_allclose(example["audio_features"], vggish[row % 178], rtol=1e-6)
    assert example["has_audio"]


def test_rebuilding_keeps_the_built_dataset(built, release):
  data_dir, dataset_dir, _ = built
  summary = ave_features.build(release, data_dir)
  assert summary.reused and summary.dataset_dir == dataset_dir
  assert summary.built == {"train": 3339, "val": 402, "test": 402}


def _copy_release(release, directory) -> pathlib.Path:
  directory.mkdir()
  for path in release.iterdir():
    (directory / path.name).symlink_to(path)
  return directory


def _shift_one_segment(labels):  # row 1234, segment 3: another class
  labels[1234, 3] = np.roll(labels[1234, 3], 1)


def _blur_one_segment(labels):  # row 77, segment 0: not one-hot
  labels[77, 0] = 0.5


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (
            _shift_one_segment,
            r"labels.h5 disagrees with Annotations.txt at row 1234 \(counting from 0; Annotations.txt: "
            r".*\(1 mismatching row\(s\) in all\)",
        ),
        (_blur_one_segment, r"at row 77 .* non-one-hot"),
    ],
)
def test_a_corrupted_label_row_is_named(release, tmp_path, corrupt, message):
  directory = _copy_release(release, tmp_path / "release")
  labels = _read(release / "labels.h5")
  corrupt(labels)
  (directory / "labels.h5").unlink()
  _write(directory / "labels.h5", labels)
  with pytest.raises(ave_features_release.ReleaseError, match=message):
    ave_features_release.check_release(directory)


def test_a_corrupted_event_mask_row_is_named(release, tmp_path):
  directory = _copy_release(release, tmp_path / "release")
  row = ave_format.parse_annotation_lines(release / "Annotations.txt")[4000]
  closs = _read(release / "labels_closs.h5")
  closs[4000] = 1 - closs[4000]
  (directory / "labels_closs.h5").unlink()
  _write(directory / "labels_closs.h5", closs)
  with pytest.raises(
      ave_features_release.ReleaseError, match=f"labels_closs.h5 .* row 4000 .*{row.video_id}"
  ):
    ave_features_release.check_release(directory)


def test_missing_files_say_where_to_download_and_put_them(tmp_path):
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "data_pipelines.build",
          "--dataset=ave_features",
          f"--manual_dir={tmp_path}",
          f"--data_dir={tmp_path / 'out'}",
      ],
      cwd=REPO,
      env=subprocess_env(),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert result.returncode == 2
  assert "lacks visual_feature.h5, audio_feature.h5, labels.h5" in result.stderr
  assert f"download them into {tmp_path}" in result.stderr
  assert "https://github.com/YapengTian/AVE-ECCV18" in result.stderr
  assert "drive.google.com" in result.stderr and "Traceback" not in result.stderr


def test_config_arguments():
  config = ave_config.get_config("")
  assert (config.dataset.input, config.task) == ("features", "recognition")
  assert config.model.grid_size is None  # taken from the built dataset
  config_validation.validate(config, device_count=4)
  config_validation.validate(ave_config.get_config("raw,smoke"), device_count=1)
  with pytest.raises(ValueError, match=r"unknown arguments \['lcoalization'\]"):
    ave_config.get_config("features,lcoalization")
  with pytest.raises(ValueError, match="give one input"):
    ave_config.get_config("features,raw")
  for task in ("localization", "weak"):
    config_validation.validate(ave_config.get_config(f"features,{task}"), device_count=1)
  config = ave_config.get_config("features,weak")
  config.loss.segment_weight = 1.0
  with pytest.raises(config_validation.ConfigError, match="video labels only"):
    config_validation.validate(config, device_count=1)
  config = ave_config.get_config("features,localization")
  config.loss.segment_weight = 0.0
  with pytest.raises(config_validation.ConfigError, match="loss.segment_weight > 0"):
    config_validation.validate(config, device_count=1)
  config = ave_config.get_config("features")
  config.model.visual_backbone = "resnet18"
  with pytest.raises(config_validation.ConfigError, match="needs model.visual_backbone='features'"):
    config_validation.validate(config, device_count=1)


def test_load_takes_shapes_from_the_data_and_names_the_build_command(built, tmp_path):
  data_dir, _, _ = built
  config = ave_config.get_config("features,smoke")
  config.data_dir = str(data_dir)
  dataset = datasets.load(config)
  assert dataset.num_classes == 28 and len(dataset.sources["val"]) == 402
  assert (
      tuple(config.model.grid_size),
      config.model.visual_feature_dim,
      config.model.audio_feature_dim,
  ) == ((2, 2), 4, 128)
  batch = input_pipeline.to_numeric_example(dataset.sources["test"][0], 0)
  assert set(input_pipeline.model_inputs(batch)) == {
      "visual_features",
      "audio_features",
      "segment_mask",
  }

  config = ave_config.get_config("features,smoke")
  config.data_dir = str(data_dir)
  config.model.visual_feature_dim = 512
  with pytest.raises(datasets.DatasetError, match="model.visual_feature_dim=512 but .* give 4"):
    datasets.load(config)
  (tmp_path / "empty").mkdir()
  config.data_dir = str(tmp_path / "empty")
  with pytest.raises(
      datasets.DatasetError,
      match="no built dataset at .* build it with: "
      "python -m data_pipelines.build --dataset=ave_features --manual_dir=",
  ):
    datasets.load(config)


# Slow: a training and explanation of 402 + 402 videos (40-80 s on 2 cores) kept the README's
# test command over 10 minutes.
@pytest.mark.slow
def test_training_on_features_writes_results(built, tmp_path):
  data_dir, _, _ = built
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "stt.main",
          "--config=configs/ave.py:features,smoke",
          f"--config.data_dir={data_dir}",
          f"--workdir={tmp_path / 'work'}",
      ],
      cwd=REPO,
      env=subprocess_env(),
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads((tmp_path / "work" / "results.json").read_text())
  assert results["test/num_examples"] == 402 and results["val/num_examples"] == 402
  assert results["train/num_steps"] == 4 and np.isfinite(results["train/loss"])
  # A share of the 402 test videos.
  assert 0.0 <= results["test/accuracy"] <= 1.0
  assert results["test/accuracy"] * 402 == pytest.approx(
      round(results["test/accuracy"] * 402), abs=1e-6
  )
  # No boxes in the release: no spatial pointing trials; the temporal game still runs.
  assert results["explain/attention/pointing_spatial_trials"] == 0
  assert results["explain/attention/pointing_spatial"] is None  # strict JSON: null, not NaN
  assert 0.0 <= results["explain/attention/pointing_temporal"] <= 1.0


@pytest.mark.slow  # six real subprocess runs (train, explain, sanity of two rows)
def test_reproduce_suite_on_the_release_layout_gives_tables_1_to_4(built, tmp_path):
  """`stt.reproduce --suite=ave_features` on the release-layout directory (real metadata):
  supervised and weakly supervised localization rows, with Tables 1-4."""
  data_dir, _, _ = built
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "stt.reproduce",
          "--suite=ave_features",
          f"--workdir={tmp_path}",
          "--seeds=1",
          "--smoke",
          "--models=stan_localization,stan_weak",
          "--explainers=attention,gradient",
          f"--config_override=--config.data_dir={data_dir}",
          "--config_override=--config.explain.num_panels=0",
      ],
      cwd=REPO,
      env=subprocess_env(),
      capture_output=True,
      text=True,
      timeout=1800,
  )
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
  cells = {(r["table"], r["model"], r["explainer"], r["metric"], r["split"]): r for r in rows}
  for model in ("stan_localization", "stan_weak"):
    segment = cells[("recognition", model, None, "segment_accuracy", "test")]
    assert 0.0 <= segment["mean"] <= 1.0 and segment["n"] == 1
    temporal = cells[("pointing", model, "attention", "pointing_temporal", "test")]
    assert 0.0 <= temporal["mean"] <= 1.0
    auc = cells[("perturbation", model, "gradient", "temporal/positive_auc", "test")]
    assert 0.0 <= auc["mean"] <= 90.0
  sanity = [r for r in rows if r["table"] == "sanity" and r["model"] == "stan_localization"]
  blocks = max((r["randomised"] or [] for r in sanity), key=len)
  assert blocks[0] == "classifier" and "backbones" not in blocks  # features: no backbone
  trained = [r for r in sanity if r["randomised"] is None and r["metric"] == "accuracy"][0]
  assert trained["mean"] == pytest.approx(
      cells[("recognition", "stan_localization", None, "accuracy", "test")]["mean"], abs=0.1
  )
  # Both localization tasks report segment accuracy and select on val/segment_accuracy.
  for model in ("stan_localization", "stan_weak"):
    workdir = tmp_path / model / "seed0"
    results = json.loads((workdir / "results.json").read_text())
    saved = {
        int(step.name): json.loads((step / "metrics" / "metrics").read_text())
        for step in (workdir / "checkpoints").iterdir()
        if (step / "metrics").exists()
    }
    highest = max(metrics["val/segment_accuracy"] for metrics in saved.values())
    assert saved[results["best_step"]]["val/segment_accuracy"] == highest
    assert results["val/segment_accuracy"] == pytest.approx(highest)
  tables = (tmp_path / "tables.md").read_text()
  for title in ("Table 1", "Table 2", "Table 3", "Table 4: sanity checks, stan_weak"):
    assert title in tables
  assert (tmp_path / "figures" / "sanity_stan_weak.png").exists()
