"""benchmarks/train_throughput.py measures any model's training step (--model_config); step_census
counts what a dtype reaches in the lowered step."""

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


def test_step_census_counts_what_bf16_reaches():
  import step_census  # pylint: disable=g-import-not-at-top

  counts = {}
  for dtype in ("float32", "bfloat16"):
    key, counts[dtype] = step_census.step_census("features", dtype, 2)
    assert key == {"size": "features", "dtype": dtype, "batch_size": 2}
  f32, bf16 = counts["float32"]["ops_by_result_type"], counts["bfloat16"]["ops_by_result_type"]
  assert set(f32) == {"dot_general/f32"} and f32["dot_general/f32"] > 0
  # bf16 reaches the dots; the classifier's and the losses' stay f32 (`linear(..., float32)`).
  assert bf16.get("dot_general/bf16", 0) > bf16.get("dot_general/f32", 0) > 0
  assert sum(bf16.values()) == sum(f32.values())
  assert counts["bfloat16"]["converts"] > counts["float32"]["converts"]
  assert step_census.census("%0 = stablehlo.convert %arg0") == {
      "ops_by_result_type": {},
      "precision_configs": {},
      "convolution_layouts": {},
      "converts": 1,
      "transposes": 0,
      "reduces": 0,
  }
