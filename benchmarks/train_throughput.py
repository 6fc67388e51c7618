r"""Training throughput of STAN on in-memory inputs: step time, examples/s and MFU.

  python benchmarks/train_throughput.py --quick           # < 2 min on 2 CPU cores
  python benchmarks/train_throughput.py                    # all sizes, f32 and bf16, T/N sweep
  python benchmarks/train_throughput.py --sizes=synthetic --dtypes=float32 --no_sweep \
      --model_config=name=joint_transformer,num_layers=2,token_pool=2   # another model

Sizes (per example):
  synthetic: 10 frames at 64² + [10,96,64] log-mel, resnet_tiny + vggish_tiny (the CPU default);
  features:  [10,7,7,512] visual + [10,128] audio maps (the AVE feature release);
  raw:       10 frames at 224² + [10,96,64] log-mel, ResNet-18 + VGGish.

The step is the trainer's own (`stt.train_step.train_step`: jit over a data mesh of all devices,
state donated), fed the same device-resident batch every step, so only the model is measured.
Model FLOPs come from XLA's cost analysis of the compiled step. Every row has its roofline
figures (benchmarks/roofline.py): achieved FLOP/s as a fraction of this device's peak measured
in the same process (a large matmul of the row's dtype) and of the roofline bound at the
step's arithmetic intensity. `mfu` is the fraction of the nominal datasheet peak, looked up
for known accelerators (dense bf16 / f32-via-TF32 tensor-core figures) or given with
--peak_tflops; on CPU there is none and it is null.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys
import time

import jax
import numpy as np

from configs import synthetic
from stt import sharding
from stt import state as state_lib
from stt import train_step

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import roofline  # pylint: disable=g-import-not-at-top,wrong-import-position

# Dense peak TFLOP/s per device: (bf16, float32). float32 matmuls run as TF32 on tensor cores.
PEAK_TFLOPS = {
    "H100": (989.0, 494.0),
    "H200": (989.0, 494.0),
    "A100": (312.0, 156.0),
    "TPU v5 lite": (197.0, 197.0),
    "TPU v4": (275.0, 275.0),
}

SIZES = {
    # name: (model overrides, per-example input shapes)
    "synthetic": (
        dict(
            visual_backbone="resnet_tiny", audio_backbone="vggish_tiny", width=64, grid_size=(8, 8)
        ),
        dict(frames=(10, 1, 64, 64, 3), log_mel=(10, 96, 64)),
    ),
    "features": (
        dict(
            visual_backbone="features",
            audio_backbone="features",
            width=128,
            visual_feature_dim=512,
            audio_feature_dim=128,
            grid_size=(7, 7),
        ),
        dict(visual_features=(10, 7, 7, 512), audio_features=(10, 128)),
    ),
    "raw": (
        dict(visual_backbone="resnet18", audio_backbone="vggish", width=128, grid_size=(7, 7)),
        dict(frames=(10, 1, 224, 224, 3), log_mel=(10, 96, 64)),
    ),
}


def device_peak_tflops(dtype: str, override: float | None) -> float | None:
  if override:
    return override
  kind = jax.devices()[0].device_kind
  for name, (bf16, f32) in PEAK_TFLOPS.items():
    if name.lower() in kind.lower():
      return bf16 if dtype == "bfloat16" else f32
  return None


def make_batch(
    shapes: dict, batch_size: int, num_segments: int, num_classes: int, rng: np.random.Generator
) -> dict:
  """Random inputs with the given per-example shapes, T replaced by `num_segments`."""
  batch = {}
  for key, shape in shapes.items():
    shape = (batch_size, num_segments) + tuple(shape[1:])
    batch[key] = (
        rng.integers(0, 256, shape, dtype=np.uint8)
        if key == "frames"
        else rng.standard_normal(shape, dtype=np.float32)
    )
  batch["segment_mask"] = np.ones((batch_size, num_segments), bool)
  batch["label"] = rng.integers(0, num_classes, batch_size).astype(np.int32)
  batch["valid"] = np.ones(batch_size, bool)
  return batch


def build_step(
    size: str,
    dtype: str,
    batch_size: int,
    *,
    num_segments: int = 10,
    grid: int | None = None,
    spec: tuple | None = None,
    model_config: dict | None = None,
):
  """(jitted train step, state, batch, config) of one configuration, not yet compiled.

  spec: (model overrides, per-example shapes) replacing SIZES[size] (e.g. shrunk for a smoke
  run); model_config: model fields set after the size's (e.g. another model.name).
  """
  overrides, shapes = spec or SIZES[size]
  shapes = dict(shapes)
  config = synthetic.get_config("")
  config.model.update(overrides)
  config.model.update(model_config or {})
  config.model.dtype = dtype
  config.model.num_segments = num_segments
  config.dataset.num_segments = num_segments
  if grid is not None:  # only for precomputed maps: the grid is the input's
    assert size == "features", "the grid sweep uses precomputed maps"
    config.model.grid_size = (grid, grid)
    shapes["visual_features"] = (num_segments, grid, grid, 512)
  num_classes = 28
  config.batch_size = batch_size

  mesh = sharding.make_mesh(config)
  graphdef, state, _ = state_lib.create_state(config, num_classes, mesh)
  batch = jax.device_put(
      make_batch(shapes, batch_size, num_segments, num_classes, np.random.default_rng(0)),
      sharding.batch_sharding(mesh),
  )
  step = jax.jit(
      functools.partial(train_step.train_step, graphdef, config=config), donate_argnums=(0,)
  )
  return step, state, batch, config


def compile_step(size: str, dtype: str, batch_size: int, **options):
  """(compiled train step, state, batch, (FLOPs, bytes) per step, config) of one configuration
  (`build_step`'s options); FLOPs and bytes as `roofline.compile_with_cost` counts them."""
  step, state, batch, config = build_step(size, dtype, batch_size, **options)
  compiled, flops, bytes_accessed = roofline.compile_with_cost(step, state, batch)
  return compiled, state, batch, (flops, bytes_accessed), config


def measure(
    size: str,
    dtype: str,
    batch_size: int,
    steps: int,
    *,
    num_segments: int = 10,
    grid: int | None = None,
    peak_tflops: float | None = None,
    peak: dict | None = None,
    spec: tuple | None = None,
    model_config: dict | None = None,
) -> dict:
  """Compiles and times `steps` training steps; returns the figures of one configuration.

  peak: the peak of this process so far (`roofline.PeakTracker.peak`), for the roofline figures
    (none if None; `roofline.rescore` recomputes them against the final peak);
  spec, model_config: as for `compile_step`.
  """
  start = time.perf_counter()
  compiled, state, batch, (flops, bytes_accessed), config = compile_step(
      size,
      dtype,
      batch_size,
      num_segments=num_segments,
      grid=grid,
      spec=spec,
      model_config=model_config,
  )
  compile_s = time.perf_counter() - start
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_time = float(np.median(times))
  nominal_peak = device_peak_tflops(dtype, peak_tflops)
  achieved_tflops = flops / step_time / 1e12 / jax.device_count() if flops else None
  row = {
      "size": size,
      "model": config.model.name,
      "model_config": dict(model_config or {}),
      "dtype": dtype,
      "batch_size": batch_size,
      "num_segments": num_segments,
      "grid": grid or config.model.grid_size[0],
      "compile_s": compile_s,  # trace, lower, compile and the cost analysis
      "step_time_s": step_time,
      "examples_per_s": batch_size / step_time,
      "gflops_per_step": flops / 1e9,
      "achieved_tflops_per_device": achieved_tflops,
      "mfu": (achieved_tflops / nominal_peak) if (nominal_peak and achieved_tflops) else None,
  }
  if peak is not None:
    row.update(
        roofline.roofline_row(
            flops,
            bytes_accessed,
            step_time,
            peak,
            dtype,
            jax.device_count(),
            roofline.working_set_bytes(compiled),
        )
    )
  return row


def parse_model_config(text: str) -> dict:
  """'name=avel,num_layers=2' -> {'name': 'avel', 'num_layers': 2}."""
  fields = {}
  for item in filter(None, text.split(",")):
    key, separator, value = item.partition("=")
    if not separator:
      raise SystemExit(f"--model_config: expected key=value, got {item!r}")
    fields[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
  return fields


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="small batches, few steps (CPU)")
  parser.add_argument(
      "--sizes", default=None, help="default synthetic,features,raw; features,raw with --quick"
  )
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--peak_tflops", type=float, default=None)
  parser.add_argument("--no_sweep", action="store_true", help="skip the T and N sweeps")
  parser.add_argument(
      "--model_config",
      default="",
      help="model fields key=value,... set on every size, e.g. name=avel (integers as such)",
  )
  args = parser.parse_args()
  model_config = parse_model_config(args.model_config)
  steps = args.steps or (1 if args.quick else 20)
  default_batch = {"synthetic": 32, "features": 64, "raw": 2 if args.quick else 32}
  if jax.default_backend() != "cpu" and not args.quick:
    default_batch = {"synthetic": 256, "features": 512, "raw": 64}

  tracker = roofline.PeakTracker()
  peak = tracker.measure()  # before the work; again after it, and every row rescored
  print(json.dumps(peak), flush=True)
  rows = []
  sizes = args.sizes or ("features,raw" if args.quick else "synthetic,features,raw")
  for size in sizes.split(","):
    for dtype in args.dtypes.split(","):
      batch = args.batch_size or default_batch[size]
      rows.append(
          measure(
              size,
              dtype,
              batch,
              steps,
              peak_tflops=args.peak_tflops,
              peak=peak,
              model_config=model_config,
          )
      )
      print(json.dumps(rows[-1]), flush=True)
  if not args.no_sweep:  # how step time grows with T and with N (precomputed maps, f32)
    batch = args.batch_size or default_batch["features"]
    # --quick: T=10 and N=7² are the features row above when its batch matches; not re-measured.
    for num_segments in (5, 20) if args.quick else (5, 10, 20, 40):
      rows.append(
          measure(
              "features",
              "float32",
              batch,
              steps,
              num_segments=num_segments,
              peak_tflops=args.peak_tflops,
              peak=peak,
          )
      )
      print(json.dumps(rows[-1]), flush=True)
    for grid in (4,) if args.quick else (4, 7, 14):
      rows.append(
          measure(
              "features",
              "float32",
              batch,
              steps,
              grid=grid,
              peak_tflops=args.peak_tflops,
              peak=peak,
          )
      )
      print(json.dumps(rows[-1]), flush=True)
  peak = tracker.measure()
  rows = [roofline.rescore(row, peak) for row in rows]
  print(
      json.dumps(
          {
              "benchmark": "train_throughput",
              "device": jax.devices()[0].device_kind,
              "backend": jax.default_backend(),
              "device_count": jax.device_count(),
              "quick": args.quick,
              "peak": peak,
              "rows": rows,
          }
      )
  )


if __name__ == "__main__":
  main()
