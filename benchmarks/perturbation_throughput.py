r"""The perturbation suite, jitted and batched, against the plain per-sample, per-fraction loop.

  python benchmarks/perturbation_throughput.py --quick      # < 2 min on 2 CPU cores
  python benchmarks/perturbation_throughput.py --videos=402 --explainers=5

Both run the same tests on the same model and maps: spatial and temporal (both modalities),
positive and negative, feature mode, fractions 0..0.9. The batched suite is
`stt.explain.perturbation.perturbation_curves` (one jitted computation per test, vmapped over
fractions, whole batches); the loop is `perturbation_reference` (one video and one fraction at
a time through the model, as per-sample explanation tools do). The model is STAN on AVE-size
feature inputs ([10,7,7,512] + [10,128]). Compilation is excluded (one warm-up call).

Roofline (benchmarks/roofline.py): the device's f32 matmul peak is measured in the same
process, before and after the timings (`roofline.PeakTracker`: the best of both, its spread,
`peak_unstable` over 20 %); the batched suite's and every explainer's achieved FLOP/s (XLA cost analysis,
`roofline.compile_with_cost`, over the measured time) are reported as fractions of it
(`suite_roofline`, `explainers`). --explainer_names picks the explainers (default: the
config's, configs/common.py); each is timed on one batch of `--batch_size` videos.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from flax import nnx
import jax
import numpy as np

from configs import synthetic
from stt.explain import explainers as explainer_lib
from stt.explain import perturbation
from stt.models import stan

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import roofline  # pylint: disable=g-import-not-at-top,wrong-import-position

TESTS = (
    ("spatial", "positive"),
    ("spatial", "negative"),
    ("temporal", "positive"),
    ("temporal", "negative"),
)


def make_model_and_data(
    num_videos: int,
    seed: int = 0,
    *,
    num_segments: int = 10,
    grid: int = 7,
    visual_dim: int = 512,
    width: int = 128,
):
  """STAN on random feature inputs [V,T,grid,grid,visual_dim] + [V,T,128] (AVE sizes by
  default), labels [V] and random maps where [V,T,grid,grid], when [V,T]."""
  config = synthetic.get_config("").model
  config.update(
      visual_backbone="features",
      audio_backbone="features",
      width=width,
      visual_feature_dim=visual_dim,
      audio_feature_dim=128,
      grid_size=(grid, grid),
      num_segments=num_segments,
  )
  model = stan.Stan(config, 28, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  t = num_segments
  inputs = {
      "visual_features": rng.standard_normal((num_videos, t, grid, grid, visual_dim), np.float32),
      "audio_features": rng.standard_normal((num_videos, t, 128), np.float32),
      "segment_mask": np.ones((num_videos, t), bool),
  }
  labels = rng.integers(0, 28, num_videos)
  where = rng.random((num_videos, t, grid, grid), np.float32)
  when = rng.random((num_videos, t), np.float32)
  return model, inputs, labels, where, when


def compile_suite(model, inputs, labels, where, when) -> list[tuple]:
  """[(compiled test, FLOPs, bytes, its arguments)] of every test in TESTS on one batch.

  Feature mode; FLOPs and bytes as `roofline.compile_with_cost` counts them.
  """
  graphdef, state = nnx.split(model)
  # On the device once: timing a call on host (numpy) arrays would time their copy too.
  inputs, labels, where, when = jax.device_put((inputs, labels, where, when))
  suite = []
  for test, order in TESTS:
    curves = lambda s, i, labels, w, t, test=test, order=order: perturbation.curves(
        nnx.merge(graphdef, s), i, labels, w, t, test=test, order=order
    )
    arguments = (state, inputs, labels, where, when)
    suite.append((*roofline.compile_with_cost(jax.jit(curves), *arguments), arguments))
  return suite


def suite_cost(model, inputs, labels, where, when, suite=None) -> tuple[float, float, float]:
  """XLA cost analysis: (MFLOP per video and perturbation of the batched suite, the same of
  the loop, bytes accessed per video and perturbation of the batched suite).

  suite: `compile_suite` of these arguments, if already compiled.
  """
  graphdef, state = nnx.split(model)
  batched_flops = batched_bytes = 0.0
  for _, flops, bytes_accessed, _ in suite or compile_suite(model, inputs, labels, where, when):
    batched_flops, batched_bytes = batched_flops + flops, batched_bytes + bytes_accessed
  one = {k: v[:1] for k, v in inputs.items()}
  head = lambda s, v, a, m: nnx.merge(graphdef, s).head(v, a, m)["logits"]
  _, loop_flops, _ = roofline.compile_with_cost(
      jax.jit(head), state, one["visual_features"], one["audio_features"], one["segment_mask"]
  )
  passes = len(labels) * len(TESTS) * len(perturbation.FRACTIONS)
  return batched_flops / passes / 1e6, loop_flops / 1e6, batched_bytes / passes


def explainer_rows(model, inputs, names, peak: dict, repeats: int) -> list[dict]:
  """Per explainer: seconds for the maps of one batch (median of `repeats`) and roofline."""
  graphdef, state = nnx.split(model)
  # On the device once: a call on host (numpy) arrays copies them first (on CPU, half of the
  # attention maps' time at 64 AVE-size videos).
  inputs = jax.device_put(inputs)
  rows = []
  for name in names:
    maps = lambda s, i, name=name: explainer_lib.EXPLAINERS[name](nnx.merge(graphdef, s), i)
    compiled, flops, bytes_accessed = roofline.compile_with_cost(jax.jit(maps), state, inputs)
    jax.block_until_ready(compiled(state, inputs))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(state, inputs))
      times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    rows.append(
        {
            "explainer": name,
            "videos": len(inputs["segment_mask"]),
            "seconds": seconds,
            "gflops": flops / 1e9,
            **roofline.roofline_row(
                flops,
                bytes_accessed,
                seconds,
                peak,
                working_set=roofline.working_set_bytes(compiled),
            ),
        }
    )
  return rows


def suite_working_set(suite: list[tuple]) -> float | None:
  """The largest working set (`roofline.working_set_bytes`) of the suite's compiled tests."""
  sets = [roofline.working_set_bytes(compiled) for compiled, _, _, _ in suite]
  return None if None in sets else max(sets)


def time_batched(model, inputs, labels, where, when, batch_size: int, repeats: int) -> float:
  """Seconds for every test over every video, jitted and batched (median of `repeats`)."""
  inputs, labels, where, when = jax.device_put((inputs, labels, where, when))  # untimed

  def run_all():
    for start in range(0, len(labels), batch_size):
      part = slice(start, start + batch_size)
      batch = {k: v[part] for k, v in inputs.items()}
      for test, order in TESTS:
        out = perturbation.perturbation_curves(
            model, batch, labels[part], where[part], when[part], test=test, order=order
        )
    jax.block_until_ready(out)

  run_all()  # compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run_all()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def time_loop(model, inputs, labels, where, when, num_videos: int) -> float:
  """Seconds per video for every test with the per-sample, per-fraction loop."""
  one = lambda n: ({k: v[:n] for k, v in inputs.items()}, labels[:n], where[:n], when[:n])
  for test, order in TESTS:  # warm-up: compile the single-video forward passes
    perturbation.perturbation_reference(model, *one(1), test=test, order=order)
  start = time.perf_counter()
  for test, order in TESTS:
    perturbation.perturbation_reference(model, *one(num_videos), test=test, order=order)
  return (time.perf_counter() - start) / num_videos


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--videos", type=int, default=None, help="videos in the batched suite")
  parser.add_argument("--loop_videos", type=int, default=None, help="videos timed in the loop")
  parser.add_argument(
      "--explainers", type=int, default=1, help="how many explainers' maps (each reruns the suite)"
  )
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument(
      "--explainer_names",
      default=None,
      help="comma-separated; default the config's; 'none' skips them",
  )
  parser.add_argument("--no_loop", action="store_true", help="skip the per-sample loop")
  parser.add_argument("--smoke", action="store_true", help="small peak sizes (a quick check)")
  args = parser.parse_args()
  tracker = roofline.PeakTracker(smoke=args.smoke)
  peak = tracker.measure()  # before the work; again after it, and every row rescored
  num_videos = args.videos or (64 if args.quick else 402)
  loop_videos = args.loop_videos or (2 if args.quick else 8)
  model, inputs, labels, where, when = make_model_and_data(num_videos)
  repeats = 1 if args.quick else 3
  batched = (
      time_batched(model, inputs, labels, where, when, args.batch_size, repeats=repeats)
      * args.explainers
  )
  first = slice(0, args.batch_size)
  first_batch = {k: v[first] for k, v in inputs.items()}
  first_arguments = (model, first_batch, labels[first], where[first], when[first])
  suite = compile_suite(*first_arguments)
  batched_mflop, loop_mflop, batched_bytes = suite_cost(*first_arguments, suite)
  passes = num_videos * args.explainers * len(TESTS) * len(perturbation.FRACTIONS)
  figures = {
      "benchmark": "perturbation_throughput",
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "videos": num_videos,
      "explainers": args.explainers,
      "tests": len(TESTS),
      "fractions": len(perturbation.FRACTIONS),
      "batched_s": batched,
      "batched_mflop_per_pass": batched_mflop,
      "loop_mflop_per_pass": loop_mflop,
      "peak": peak,
      "suite_roofline": roofline.roofline_row(
          batched_mflop * 1e6 * passes,
          batched_bytes * passes,
          batched,
          peak,
          working_set=suite_working_set(suite),
      ),
  }
  if not args.no_loop:
    per_video_loop = time_loop(model, inputs, labels, where, when, loop_videos)
    loop_total = per_video_loop * num_videos * args.explainers
    figures.update(
        loop_s_per_video=per_video_loop,
        loop_s_extrapolated=loop_total,
        speedup=loop_total / batched,
    )
  names = args.explainer_names or ",".join(synthetic.get_config("").explain.explainers)
  if names != "none":
    figures["explainers_rows"] = explainer_rows(model, first_batch, names.split(","), peak, repeats)
  figures["peak"] = peak = tracker.measure()
  figures["suite_roofline"] = roofline.rescore(figures["suite_roofline"], peak)
  figures["explainers_rows"] = [
      roofline.rescore(r, peak) for r in figures.get("explainers_rows", [])
  ]
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
