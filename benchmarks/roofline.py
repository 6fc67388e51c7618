r"""The device's own limits, measured in the running process, and a computation's share of them.

Every benchmark calls `measure_peak()` once in the same process as its own timings, so the
achieved figures are fractions of what this machine reaches right now (on a shared CPU the
load changes both alike):

  peak_flops[dtype]   FLOP/s of a large square matmul (f32 and bf16), best of a few runs;
  copy_bytes_per_s    bytes/s of a large elementwise copy (read + write), best of a few runs.

A computation's FLOPs and bytes come from XLA's cost analysis (`compile_with_cost`): the FLOPs
of the computation as lowered, before XLA's backend passes, so that every dot and convolution
is counted alike on every backend (the compiled executable's own count leaves out what a GPU
hands to cuBLAS/cuDNN library calls: on an H200 it reported 82 of the raw-size step's 9,405
GFLOP), and the bytes of the compiled, fused executable. `roofline_row` turns (FLOPs, bytes,
seconds) into:

  achieved_flops_per_s      FLOPs / seconds
  fraction_of_peak          achieved / peak_flops[dtype]  (on a GPU: MFU)
  arithmetic_intensity      FLOPs / byte accessed
  roofline_bound_flops_per_s  min(peak, intensity * copy bandwidth): the most a computation
                              of that intensity could reach
  fraction_of_roofline      achieved / that bound

XLA's "bytes accessed" counts every operand of every fused op as if it came from memory; what
stays in cache does not, so fraction_of_roofline can exceed 1 for small working sets.

  python benchmarks/roofline.py            # prints the peak of this machine as one JSON line
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

DTYPES = ("float32", "bfloat16")


def _cost(stage) -> dict:
  cost = stage.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return cost or {}


def host_lowered_flops(jitted, *args) -> float:
  """FLOPs of `jitted` on arrays shaped like `args`, lowered for the host CPU.

  The computation before XLA's backend passes is the same on every backend, so this is the
  model's FLOP count wherever `args` live (an accelerator's lowered stage may have no cost
  analysis: jax 0.11.2 on an H200 returned none).
  """
  host = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=host), args)
  return float(_cost(jitted.lower(*abstract)).get("flops", 0.0))


def compile_with_cost(jitted, *args) -> tuple:
  """(compiled executable, FLOPs, bytes accessed) of `jitted` (a `jax.jit` function) on args.

  FLOPs: the lowered computation's (every dot and convolution, the same on every backend; from
  the host CPU's lowering where the device's has no cost analysis); bytes: the compiled
  executable's (after fusion).
  """
  lowered = jitted.lower(*args)
  compiled = lowered.compile()
  flops = float(_cost(lowered).get("flops", 0.0)) or host_lowered_flops(jitted, *args)
  return compiled, flops, float(_cost(compiled).get("bytes accessed", 0.0))


def best_seconds(function, *args, repeats: int) -> float:
  """Fastest of `repeats` timed calls of a compiled function (after one warm-up call)."""
  jax.block_until_ready(function(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    times.append(time.perf_counter() - start)
  return min(times)


def matmul_flops_per_s(dtype: str, size: int, repeats: int = 3) -> float:
  """FLOP/s of a [size,size] x [size,size] matmul in `dtype` (float32 accumulation on GPU)."""
  keys = jax.random.split(jax.random.key(0))
  a, b = (jax.random.normal(k, (size, size), jnp.float32).astype(dtype) for k in keys)
  matmul = jax.jit(lambda x, y: x @ y).lower(a, b).compile()
  return 2.0 * size**3 / best_seconds(matmul, a, b, repeats=repeats)


def copy_bytes_per_s(megabytes: int, repeats: int = 3) -> float:
  """Bytes/s (read + write) of an elementwise pass over a float32 array of `megabytes`."""
  x = jnp.ones((megabytes * (1 << 20) // 4,), jnp.float32)
  copy = jax.jit(lambda v: v * 2.0).lower(x).compile()  # a bare copy could be elided
  return 2.0 * x.nbytes / best_seconds(copy, x, repeats=repeats)


def default_sizes(smoke: bool = False) -> dict:
  """Matmul side and copy size: large enough to saturate the device, small in a smoke run."""
  if smoke:
    return {"matmul": 512, "copy_mb": 8}
  if jax.default_backend() == "cpu":
    return {"matmul": 2048, "copy_mb": 256}
  return {"matmul": 8192, "copy_mb": 2048}


def measure_peak(smoke: bool = False, repeats: int = 3) -> dict:
  """{'device', 'backend', 'peak_flops': {dtype: FLOP/s}, 'copy_bytes_per_s', 'sizes'}."""
  sizes = default_sizes(smoke)
  return {
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "peak_flops": {
          dtype: matmul_flops_per_s(dtype, sizes["matmul"], repeats) for dtype in DTYPES
      },
      "copy_bytes_per_s": copy_bytes_per_s(sizes["copy_mb"], repeats),
      "sizes": sizes,
  }


def roofline_row(
    flops: float,
    bytes_accessed: float,
    seconds: float,
    peak: dict,
    dtype: str = "float32",
    devices: int = 1,
) -> dict:
  """A computation's achieved FLOP/s and its fractions of the peak and of the roofline.

  flops and bytes_accessed are the whole computation's (all `devices`), seconds its time.
  """
  achieved = flops / seconds / devices if seconds > 0 else 0.0
  peak_flops = peak["peak_flops"][dtype]
  intensity = flops / bytes_accessed if bytes_accessed else float("inf")
  bound = min(peak_flops, intensity * peak["copy_bytes_per_s"])
  return {
      "achieved_flops_per_s": achieved,
      "fraction_of_peak": achieved / peak_flops,
      "arithmetic_intensity": intensity if np.isfinite(intensity) else None,
      "roofline_bound_flops_per_s": bound,
      "fraction_of_roofline": achieved / bound if bound else None,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true", help="small sizes (a quick check)")
  args = parser.parse_args()
  print(json.dumps({"benchmark": "roofline", **measure_peak(args.smoke)}))


if __name__ == "__main__":
  main()
