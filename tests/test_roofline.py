"""benchmarks/roofline.py counts a computation's FLOPs as written, on every backend."""

import pathlib
import sys

import jax
import jax.numpy as jnp

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
