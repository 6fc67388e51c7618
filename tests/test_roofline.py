"""benchmarks/roofline.py: FLOPs counted as written on every backend, the interleaved peak, and a
bound that holds (memory or cache bandwidth by working set)."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import roofline  # pylint: disable=g-import-not-at-top,wrong-import-position


def _matmul_then_conv(x, kernel, filters):
  """x [8,32] @ kernel [32,16] → [8,16]; then a 3x3 'SAME' convolution of [1,8,16,1]."""
  y = x @ kernel
  return jax.lax.conv_general_dilated(
      y[None, :, :, None], filters, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def _arguments():
  return (jnp.ones((8, 32)), jnp.ones((32, 16)), jnp.ones((3, 3, 1, 4)))


# 2·8·32·16 for the matmul; for the convolution 2·4 filters times the taps that fall inside the
# 8x16 image (XLA does not count the zero padding): (3·8 − 2)·(3·16 − 2) of the 8·16·9.
EXPECTED_FLOPS = 2 * 8 * 32 * 16 + 2 * 4 * (3 * 8 - 2) * (3 * 16 - 2)


def test_host_lowering_counts_every_dot_and_convolution():
  flops = roofline.host_lowered_flops(jax.jit(_matmul_then_conv), *_arguments())
  assert flops == EXPECTED_FLOPS


def test_compile_with_cost_runs_and_counts_the_same_flops():
  compiled, flops, bytes_accessed = roofline.compile_with_cost(
      jax.jit(_matmul_then_conv), *_arguments()
  )
  assert compiled(*_arguments()).shape == (1, 8, 16, 4)
  assert flops == EXPECTED_FLOPS
  assert bytes_accessed >= 4 * (8 * 32 + 32 * 16)  # at least its f32 inputs once


def test_a_device_lowering_without_cost_analysis_falls_back_to_the_host(monkeypatch):
  """As jax 0.11.2 on an H200 did: the device's lowered stage reports no FLOPs."""
  real_cost = roofline._cost  # pylint: disable=protected-access
  calls = []

  def first_lowering_has_no_cost(stage):
    calls.append(type(stage).__name__)
    if len(calls) == 1:
      return {}
    return real_cost(stage)

  monkeypatch.setattr(roofline, "_cost", first_lowering_has_no_cost)
  _, flops, _ = roofline.compile_with_cost(jax.jit(_matmul_then_conv), *_arguments())
  assert calls[0] == "Lowered" and flops == EXPECTED_FLOPS


def _measurement(f32: float, bf16: float, copy: float, cache_copy: float) -> dict:
  return {
      "device": "cpu",
      "backend": "cpu",
      "peak_flops": {"float32": f32, "bfloat16": bf16},
      "copy_bytes_per_s": copy,
      "cache_copy_bytes_per_s": cache_copy,
      "sizes": {"matmul": 512, "copy_mb": 256, "cache_copy_mb": 8, "last_level_cache_mb": 32},
  }


def test_the_interleaved_peak_is_the_best_of_each_figure_with_its_spread():
  before = _measurement(100e9, 80e9, 10e9, 40e9)
  after = _measurement(90e9, 50e9, 11e9, 40e9)
  peak = roofline.combine([before, after])
  assert peak["peak_flops"] == {"float32": 100e9, "bfloat16": 80e9}
  assert (peak["copy_bytes_per_s"], peak["cache_copy_bytes_per_s"]) == (11e9, 40e9)
  assert peak["measurements"] == 2
  assert peak["spread"]["flops/float32"] == pytest.approx(0.1)
  assert peak["spread"]["flops/bfloat16"] == pytest.approx(0.375)
  assert peak["spread"]["cache_copy"] == 0.0
  assert peak["peak_unstable"]  # bf16 moved 37.5 % > 20 %
  steady = roofline.combine([before, _measurement(95e9, 75e9, 9.5e9, 38e9)])
  assert not steady["peak_unstable"]
  with pytest.raises(ValueError, match="at least one"):
    roofline.combine([])


def test_the_bound_uses_the_cache_bandwidth_only_for_a_working_set_in_the_cache():
  peak = roofline.combine([_measurement(100e9, 80e9, 10e9, 40e9)])
  # 1 GFLOP over 1 GB: intensity 1 FLOP/B, done in 0.05 s (20 GFLOP/s).
  in_memory = roofline.roofline_row(1e9, 1e9, 0.05, peak, working_set=64 << 20)
  in_cache = roofline.roofline_row(1e9, 1e9, 0.05, peak, working_set=16 << 20)
  unknown = roofline.roofline_row(1e9, 1e9, 0.05, peak)
  assert in_memory["memory_level"] == unknown["memory_level"] == "memory"
  assert in_memory["roofline_bound_flops_per_s"] == pytest.approx(10e9)
  assert in_memory["fraction_of_roofline"] == pytest.approx(2.0)  # a bound that was wrong
  assert in_cache["memory_level"] == "cache"
  assert in_cache["roofline_bound_flops_per_s"] == pytest.approx(40e9)
  assert in_cache["fraction_of_roofline"] == pytest.approx(0.5)
  assert in_cache["fraction_of_peak"] == pytest.approx(0.2)


def test_rescore_recomputes_a_row_against_the_final_peak():
  first = roofline.combine([_measurement(100e9, 80e9, 10e9, 40e9)])
  row = {"size": "raw", **roofline.roofline_row(10e9, 1e8, 0.5, first, "float32")}
  assert row["fraction_of_peak"] == pytest.approx(0.2)
  final = roofline.combine(
      [_measurement(100e9, 80e9, 10e9, 40e9), _measurement(200e9, 80e9, 10e9, 40e9)]
  )
  rescored = roofline.rescore(row, final)
  assert rescored["size"] == "raw"
  assert rescored["fraction_of_peak"] == pytest.approx(0.1)


def test_last_level_cache_is_the_highest_level_sysfs_lists(tmp_path):
  for index, (level, size) in enumerate([(1, "48K"), (1, "32K"), (2, "1280K"), (3, "49152K")]):
    directory = tmp_path / f"index{index}"
    directory.mkdir()
    (directory / "level").write_text(f"{level}\n")
    (directory / "size").write_text(f"{size}\n")
  assert roofline.last_level_cache_bytes(str(tmp_path)) == 49152 << 10
  assert roofline.last_level_cache_bytes(str(tmp_path / "missing")) == 32 << 20


def test_the_memory_copy_is_larger_than_the_last_level_cache():
  sizes = roofline.default_sizes(smoke=True)
  assert sizes["copy_mb"] >= 4 * sizes["last_level_cache_mb"]
  assert sizes["cache_copy_mb"] <= sizes["last_level_cache_mb"] / 4


def test_working_set_counts_arguments_outputs_and_temporaries():
  compiled, _, _ = roofline.compile_with_cost(jax.jit(_matmul_then_conv), *_arguments())
  working_set = roofline.working_set_bytes(compiled)
  assert working_set >= 4 * (8 * 32 + 32 * 16 + 9 * 4 + 8 * 16 * 4)  # inputs and output, f32
