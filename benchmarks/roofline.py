r"""The device's own limits, measured in the running process, and a computation's share of them.

The peak is measured interleaved with the work (`PeakTracker`): before it and again after it,
each time the best of a few short runs, and every figure is a fraction of the best of all
those (on a shared machine the load changes the peak and the work alike). The spread between
the measurements, (max - min) / max, is reported, and a run whose peak varied more than
PEAK_SPREAD_LIMIT (20 %) is flagged `peak_unstable`: its fractions are not to be quoted.

  peak_flops[dtype]   FLOP/s of a large square matmul (f32 and bf16);
  copy_bytes_per_s    bytes/s (read + write) of an elementwise pass over an array at least
                      4x the last-level cache (`last_level_cache_bytes`): memory, not cache;
  cache_copy_bytes_per_s  the same on an array of a quarter of the last-level cache.

A computation's FLOPs and bytes come from XLA's cost analysis (`compile_with_cost`): the FLOPs
of the computation as lowered, before XLA's backend passes, so that every dot and convolution
is counted alike on every backend (the compiled executable's own count leaves out what a GPU
hands to cuBLAS/cuDNN library calls: on an H200 it reported 82 of the raw-size step's 9,405
GFLOP), and the bytes of the compiled, fused executable. `roofline_row` turns (FLOPs, bytes,
seconds, working set) into:

  achieved_flops_per_s      FLOPs / seconds
  fraction_of_peak          achieved / peak_flops[dtype]  (on a GPU: MFU)
  arithmetic_intensity      FLOPs / byte accessed
  memory_level              'cache' when the computation's working set (arguments, outputs and
                            temporaries of the compiled executable) fits in the last-level
                            cache, else 'memory'
  roofline_bound_flops_per_s  min(peak, intensity * that level's bandwidth): the most a
                              computation of that intensity could reach
  fraction_of_roofline      achieved / that bound

XLA's "bytes accessed" counts every operand of every fused op as traffic; for a working set
that stays in the last-level cache that traffic runs at the cache's bandwidth, not memory's,
which is why the bound takes the level into account (with memory bandwidth alone, the small
training steps showed fractions of roofline of 1.1-1.25). `rescore` recomputes rows against
the final (interleaved) peak.

  python benchmarks/roofline.py            # this machine's peak, 3 measurements, one JSON line
"""

from __future__ import annotations

import argparse
import json
import pathlib
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


def copy_bytes_per_s(megabytes: float, repeats: int = 3) -> float:
  """Bytes/s (read + write) of an elementwise pass over a float32 array of `megabytes`."""
  x = jnp.ones((int(megabytes * (1 << 20)) // 4,), jnp.float32)
  copy = jax.jit(lambda v: v * 2.0).lower(x).compile()  # a bare copy could be elided
  return 2.0 * x.nbytes / best_seconds(copy, x, repeats=repeats)


# Accelerators: the largest L2 of the GPUs we run on (H100 50 MB, H200 50 MB), rounded up.
ACCELERATOR_CACHE_BYTES = 64 << 20
PEAK_SPREAD_LIMIT = 0.2


def last_level_cache_bytes(cache_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
  """Size of the CPU's last-level cache (the highest cache level sysfs lists; 32 MiB when it
  lists none), or ACCELERATOR_CACHE_BYTES off-CPU."""
  if jax.default_backend() != "cpu":
    return ACCELERATOR_CACHE_BYTES
  levels = {}
  for index in pathlib.Path(cache_dir).glob("index*"):
    try:
      level = int((index / "level").read_text())
      size = (index / "size").read_text().strip()
    except (OSError, ValueError):
      continue
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    value = int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    levels[level] = max(levels.get(level, 0), value)
  return levels[max(levels)] if levels else 32 << 20


def default_sizes(smoke: bool = False) -> dict:
  """Matmul side and copy sizes: the memory copy at least 4x the last-level cache (so it
  measures memory, not cache), the cache copy a quarter of it; the matmul small in a smoke run."""
  cache_mb = last_level_cache_bytes() / (1 << 20)
  if smoke:
    matmul, copy_mb = 512, 8
  elif jax.default_backend() == "cpu":
    matmul, copy_mb = 2048, 256
  else:
    matmul, copy_mb = 8192, 2048
  return {
      "matmul": matmul,
      "copy_mb": max(copy_mb, 4 * cache_mb),
      "cache_copy_mb": cache_mb / 4,
      "last_level_cache_mb": cache_mb,
  }


def measure_peak(smoke: bool = False, repeats: int = 3) -> dict:
  """One measurement, best of `repeats` runs each: {'device', 'backend', 'peak_flops':
  {dtype: FLOP/s}, 'copy_bytes_per_s', 'cache_copy_bytes_per_s', 'sizes'}."""
  sizes = default_sizes(smoke)
  return {
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "peak_flops": {
          dtype: matmul_flops_per_s(dtype, sizes["matmul"], repeats) for dtype in DTYPES
      },
      "copy_bytes_per_s": copy_bytes_per_s(sizes["copy_mb"], repeats),
      "cache_copy_bytes_per_s": copy_bytes_per_s(sizes["cache_copy_mb"], repeats),
      "sizes": sizes,
  }


def _figures(measurement: dict) -> dict:
  return {
      **{f"flops/{dtype}": value for dtype, value in measurement["peak_flops"].items()},
      "copy": measurement["copy_bytes_per_s"],
      "cache_copy": measurement["cache_copy_bytes_per_s"],
  }


def combine(measurements: list[dict]) -> dict:
  """The interleaved peak of several `measure_peak` results: the best of each figure, its
  spread (max - min) / max, and `peak_unstable` when any spread exceeds PEAK_SPREAD_LIMIT."""
  if not measurements:
    raise ValueError("combine needs at least one peak measurement")
  figures = [_figures(m) for m in measurements]
  spread = {
      name: (max(f[name] for f in figures) - min(f[name] for f in figures))
      / max(f[name] for f in figures)
      for name in figures[0]
  }
  return {
      **measurements[0],
      "peak_flops": {dtype: max(m["peak_flops"][dtype] for m in measurements) for dtype in DTYPES},
      "copy_bytes_per_s": max(m["copy_bytes_per_s"] for m in measurements),
      "cache_copy_bytes_per_s": max(m["cache_copy_bytes_per_s"] for m in measurements),
      "measurements": len(measurements),
      "spread": spread,
      "peak_unstable": max(spread.values()) > PEAK_SPREAD_LIMIT,
  }


class PeakTracker:
  """The peak interleaved with the work: `measure()` before it and again after it (each a
  `measure_peak`), `peak` the combination of all so far."""

  def __init__(self, smoke: bool = False, repeats: int = 3):
    self.smoke, self.repeats, self.measurements = smoke, repeats, []

  def measure(self) -> dict:
    self.measurements.append(measure_peak(self.smoke, self.repeats))
    return self.peak

  @property
  def peak(self) -> dict:
    return combine(self.measurements)


def working_set_bytes(compiled) -> float | None:
  """Arguments + outputs + temporaries of a compiled executable (None where the backend does
  not say): what must fit in a cache for the computation to run from it."""
  try:
    stats = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-exception-caught  (backends without the analysis)
    return None
  if stats is None:
    return None
  total = (
      stats.argument_size_in_bytes
      + stats.output_size_in_bytes
      + stats.temp_size_in_bytes
      - stats.alias_size_in_bytes
  )
  return float(total) if total > 0 else None


def roofline_row(
    flops: float,
    bytes_accessed: float,
    seconds: float,
    peak: dict,
    dtype: str = "float32",
    devices: int = 1,
    working_set: float | None = None,
) -> dict:
  """A computation's achieved FLOP/s and its fractions of the peak and of the roofline.

  flops and bytes_accessed are the whole computation's (all `devices`), seconds its time;
  working_set (bytes, per device; `working_set_bytes`) picks the cache's bandwidth for the
  bound when it fits in the last-level cache (None: memory's). The inputs are kept in the row
  (`rescore` recomputes it against another peak).
  """
  achieved = flops / seconds / devices if seconds > 0 else 0.0
  peak_flops = peak["peak_flops"][dtype]
  intensity = flops / bytes_accessed if bytes_accessed else float("inf")
  cache_bytes = peak["sizes"].get("last_level_cache_mb", 0) * (1 << 20)
  in_cache = working_set is not None and working_set <= cache_bytes
  bandwidth = peak["cache_copy_bytes_per_s"] if in_cache else peak["copy_bytes_per_s"]
  bound = min(peak_flops, intensity * bandwidth)
  return {
      "achieved_flops_per_s": achieved,
      "fraction_of_peak": achieved / peak_flops,
      "arithmetic_intensity": intensity if np.isfinite(intensity) else None,
      "memory_level": "cache" if in_cache else "memory",
      "roofline_bound_flops_per_s": bound,
      "fraction_of_roofline": achieved / bound if bound else None,
      "roofline_inputs": {
          "flops": flops,
          "bytes_accessed": bytes_accessed,
          "seconds": seconds,
          "dtype": dtype,
          "devices": devices,
          "working_set": working_set,
      },
  }


def rescore(row: dict, peak: dict) -> dict:
  """`row` (anything holding `roofline_row`'s keys) with its roofline figures recomputed
  against `peak` (the final interleaved peak)."""
  return {**row, **roofline_row(peak=peak, **row["roofline_inputs"])}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true", help="small sizes (a quick check)")
  parser.add_argument("--measurements", type=int, default=3, help="peaks combined (spread)")
  args = parser.parse_args()
  tracker = PeakTracker(args.smoke)
  for _ in range(args.measurements):
    tracker.measure()
  print(json.dumps({"benchmark": "roofline", **tracker.peak}))


if __name__ == "__main__":
  main()
