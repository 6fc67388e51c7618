"""Adding a dataset takes one builder module and one record (docs/design.md §6).

tests/toy_dataset.py is the builder module; TOY below is the record, registered in the one place
the catalogue keeps them. Then, with nothing else changed, the build CLI builds it, a run trains
on it (smoke size) and --mode=explain explains on it as an annotation set.
"""

import json

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from data_pipelines import build
from data_pipelines import catalogue
from data_pipelines import dataset_spec
from stt import config_validation
from stt import datasets
from stt import evaluation_modes
from stt import train
from tests import toy_dataset

TOY = dataset_spec.DatasetSpec(
    name="toy",
    title="the toy set",
    summary="a square and a tone per class, generated in tests/toy_dataset.py",
    builder=toy_dataset.ToyBuild(),
    flags=dataset_spec.DECODE_FLAGS,
    trained_as=("toy", "raw"),
    ground_truth="union",
)
DECODE = dataset_spec.Decode(num_segments=4, frames_per_segment=1, frame_size=64)


@pytest.fixture(name="with_toy")
def _with_toy(monkeypatch):
  monkeypatch.setitem(catalogue.DATASETS, TOY.name, TOY)


def _toy_config(data_dir):
  config = synthetic_config.get_config("smoke")
  config.data_dir = str(data_dir)
  config.dataset.name = "toy"
  config.dataset.num_segments = config.model.num_segments = DECODE.num_segments
  config.dataset.frame_size = DECODE.frame_size
  config.explain.explainers = ("attention",)
  config.explain.num_panels = 0
  return config


def test_the_build_cli_reads_the_record(with_toy, tmp_path, capsys):
  del with_toy
  with pytest.raises(SystemExit, match="2"):
    build.main(["--dataset=toy", "--manual_dir=DIR", f"--data_dir={tmp_path}"])
  assert "--manual_dir does not apply to --dataset=toy, only to ave_features, ave," in (
      capsys.readouterr().err
  )
  flags = [f"--data_dir={tmp_path}", *DECODE.flags().split()]
  assert build.main(["--dataset=toy", *flags]) == 0
  built_dir = tmp_path / "toy_videos" / "toy_t4_f1_s64" / "1.0.0"
  assert (
      capsys.readouterr()
      .out.strip()
      .endswith(f"toy: built 32 (train=16, val=8, test=8), skipped 0, failed 0 -> {built_dir}")
  )
  assert build.main(["--dataset=toy", *flags]) == 0
  assert "toy: built 0, skipped 32 (already built: train=16, val=8, test=8)" in (
      capsys.readouterr().out
  )


# Slow: a smoke training and an explanation in this process (~70 s on 2 cores).
@pytest.mark.slow
def test_a_run_trains_and_explains_on_a_registered_toy_dataset(with_toy, tmp_path):
  del with_toy
  data_dir = tmp_path / "tfds"
  assert build.main(["--dataset=toy", f"--data_dir={data_dir}", *DECODE.flags().split()]) == 0
  config = _toy_config(data_dir)
  config_validation.validate(config, device_count=1)
  dataset = datasets.load(config)
  assert dataset.class_names == ["left", "right"]
  assert [len(dataset.sources[split]) for split in ("train", "val", "test")] == [16, 8, 8]
  assert config.model.grid_size == (8, 8)  # resnet_tiny's stride 8 on 64-px frames

  trained = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert trained["test/accuracy"] in {k / 8 for k in range(9)}

  config.explain.dataset = "toy"  # explained as an annotation set: its boxes, its ground truth
  config_validation.validate(config, device_count=1)
  results = evaluation_modes.explain_best(config, str(tmp_path / "run"))
  report_dir = tmp_path / "run" / "explain_toy"
  maps = np.load(report_dir / "maps" / "attention.npz")
  assert sorted(maps["video_id"]) == [f"toy_test_{i:03d}" for i in range(8)]  # TFDS's order
  assert maps["where"].shape == (8, DECODE.num_segments, 8, 8)
  for key in ("pointing_spatial", "pointing_temporal", "field_ciou", "field_auc"):
    assert 0 <= results[f"explain_toy/attention/{key}"] <= 1, key
  # The temporal pointing game's chance level on the toy's annotations: 2 event segments of 4.
  assert results["explain_toy/chance/pointing_temporal"] == pytest.approx(0.5)
  assert json.loads((tmp_path / "run" / "results.json").read_text())["test/accuracy"] == (
      trained["test/accuracy"]
  )
