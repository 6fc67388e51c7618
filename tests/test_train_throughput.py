"""benchmarks/train_throughput.py measures any model's training step (--model_config)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
# pylint: disable=g-import-not-at-top,wrong-import-position
import gpu_check
import train_throughput


def test_model_config_parses_integers_and_names():
  assert train_throughput.parse_model_config(
      "name=joint_transformer,num_layers=2,token_pool=2"
  ) == {
      "name": "joint_transformer",
      "num_layers": 2,
      "token_pool": 2,
  }
  assert train_throughput.parse_model_config("") == {}
  with pytest.raises(SystemExit, match="expected key=value"):
    train_throughput.parse_model_config("name")


def test_another_model_is_measured_with_its_own_flops():
  spec = gpu_check.SMOKE_SPECS["features"]
  rows = {
      name: train_throughput.measure(
          "features", "float32", 2, 1, num_segments=2, spec=spec, model_config={"name": name}
      )
      for name in ("stan", "late_fusion")
  }
  assert rows["late_fusion"]["model"] == "late_fusion" and rows["stan"]["model"] == "stan"
  assert rows["late_fusion"]["model_config"] == {"name": "late_fusion"}
  # Different programs: STAN's attention adds FLOPs that mean pooling has not.
  assert rows["stan"]["gflops_per_step"] > rows["late_fusion"]["gflops_per_step"] > 0
  assert all(row["compile_s"] > 0 and row["step_time_s"] > 0 for row in rows.values())
