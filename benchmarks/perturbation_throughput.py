r"""The perturbation suite, jitted and batched, against the plain per-sample, per-fraction loop.

  python benchmarks/perturbation_throughput.py --quick      # < 2 min on 2 CPU cores
  python benchmarks/perturbation_throughput.py --videos=402 --explainers=5

Both run the same tests on the same model and maps: spatial and temporal (both modalities),
positive and negative, feature mode, fractions 0..0.9. The batched suite is
`stt.explain.perturbation.perturbation_curves` (one jitted computation per test, vmapped over
fractions, whole batches); the loop is `perturbation_reference` (one video and one fraction at
a time through the model, as per-sample explanation tools do). The model is STAN on AVE-size
feature inputs ([10,7,7,512] + [10,128]). Compilation is excluded (one warm-up call).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from flax import nnx

from configs import synthetic
from stt.explain import perturbation
from stt.models import stan

TESTS = (("spatial", "positive"), ("spatial", "negative"), ("temporal", "positive"),
         ("temporal", "negative"))


def make_model_and_data(num_videos: int, seed: int = 0):
  config = synthetic.get_config("").model
  config.update(visual_backbone="features", audio_backbone="features", width=128,
                visual_feature_dim=512, audio_feature_dim=128, grid_size=(7, 7))
  model = stan.Stan(config, 28, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  inputs = {
      "visual_features": rng.standard_normal((num_videos, 10, 7, 7, 512), np.float32),
      "audio_features": rng.standard_normal((num_videos, 10, 128), np.float32),
      "segment_mask": np.ones((num_videos, 10), bool),
  }
  labels = rng.integers(0, 28, num_videos)
  where = rng.random((num_videos, 10, 7, 7), np.float32)
  when = rng.random((num_videos, 10), np.float32)
  return model, inputs, labels, where, when


def mflop_per_pass(model, inputs, labels, where, when) -> tuple[float, float]:
  """XLA cost analysis: MFLOP per video and perturbation of (the batched suite, the loop)."""
  graphdef, state = nnx.split(model)
  batch = len(labels)

  def flops(function, *args) -> float:
    cost = jax.jit(function).lower(state, *args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])

  batched = 0.0
  for test, order in TESTS:
    curves = lambda s, i, l, w, t, test=test, order=order: perturbation.curves(
        nnx.merge(graphdef, s), i, l, w, t, test=test, order=order)
    batched += flops(curves, inputs, labels, where, when)
  one = {k: v[:1] for k, v in inputs.items()}
  head = lambda s, v, a, m: nnx.merge(graphdef, s).head(v, a, m)["logits"]
  loop = flops(head, one["visual_features"], one["audio_features"], one["segment_mask"])
  passes = len(TESTS) * len(perturbation.FRACTIONS)
  return batched / batch / passes / 1e6, loop / 1e6


def time_batched(model, inputs, labels, where, when, batch_size: int, repeats: int) -> float:
  """Seconds for every test over every video, jitted and batched (median of `repeats`)."""
  def run_all():
    for start in range(0, len(labels), batch_size):
      part = slice(start, start + batch_size)
      batch = {k: v[part] for k, v in inputs.items()}
      for test, order in TESTS:
        out = perturbation.perturbation_curves(model, batch, labels[part], where[part],
                                               when[part], test=test, order=order)
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
  parser.add_argument("--explainers", type=int, default=1,
                      help="how many explainers' maps (each reruns the suite)")
  parser.add_argument("--batch_size", type=int, default=64)
  args = parser.parse_args()
  num_videos = args.videos or (64 if args.quick else 402)
  loop_videos = args.loop_videos or (2 if args.quick else 8)
  model, inputs, labels, where, when = make_model_and_data(num_videos)
  batched = time_batched(model, inputs, labels, where, when, args.batch_size,
                         repeats=1 if args.quick else 3) * args.explainers
  per_video_loop = time_loop(model, inputs, labels, where, when, loop_videos)
  loop_total = per_video_loop * num_videos * args.explainers
  first = slice(0, args.batch_size)
  batched_mflop, loop_mflop = mflop_per_pass(
      model, {k: v[first] for k, v in inputs.items()}, labels[first], where[first], when[first])
  print(json.dumps({
      "benchmark": "perturbation_throughput", "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(), "videos": num_videos, "explainers": args.explainers,
      "tests": len(TESTS), "fractions": len(perturbation.FRACTIONS),
      "batched_s": batched, "loop_s_per_video": per_video_loop,
      "loop_s_extrapolated": loop_total, "speedup": loop_total / batched,
      "batched_mflop_per_pass": batched_mflop, "loop_mflop_per_pass": loop_mflop,
  }))


if __name__ == "__main__":
  main()
