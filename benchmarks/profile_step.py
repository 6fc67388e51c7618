r"""Where the time of a training step goes: a jax.profiler trace, summarised.

  python benchmarks/profile_step.py --quick                  # features size, < 2 min on 2 CPUs
  python benchmarks/profile_step.py --size=raw --batch_size=32 --steps=5 --trace_dir=/tmp/t

Runs the trainer's step (as benchmarks/train_throughput.py builds it) under
`jax.profiler.trace(create_perfetto_trace=True)`, reads the Perfetto trace of the XLA ops that
ran, joins every op with its HLO instruction in the compiled module (shape and the JAX
`op_name` it came from) and sums the time per category:

  matmul/conv     dot_general / convolution (the model FLOPs)
  dropout RNG     random bits for dropout masks (threefry / rng-bit-generator)
  softmax/reduce  reductions (softmax, norms, means)
  elementwise     the rest (adds, activations, layout copies)

The trace directory can be opened in TensorBoard's profile plugin or Perfetto for the full
picture. The last line printed is one JSON object with the summary.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import re
import sys
import tempfile

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train_throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ")
_OP_NAME = re.compile(r"metadata=\{op_name=\"([^\"]*)\"")


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
  """{instruction name: (result shape, JAX op_name)} of a compiled module's HLO text."""
  found = {}
  for line in hlo_text.splitlines():
    match = _INSTRUCTION.match(line)
    if match:
      op_name = _OP_NAME.search(line)
      found[match.group(1)] = (match.group(2), op_name.group(1) if op_name else "")
  return found


def category(op_name: str, instruction: str) -> str:
  if re.search(r"bernoulli|_uniform|threefry|random_bits|rng", op_name + instruction):
    return "dropout RNG"
  if re.search(r"dot_general|conv", op_name) or re.search(r"^(ynn_fusion|dot|conv)", instruction):
    return "matmul/conv"
  if re.search(r"reduce|softmax|argmax|mean|sum|max", op_name):
    return "softmax/reduce"
  return "elementwise"


def trace_op_times(trace_dir: pathlib.Path, instructions: dict) -> collections.Counter:
  """Microseconds per HLO instruction over the whole trace (ops of the compiled step only)."""
  path = sorted(trace_dir.glob("**/*perfetto_trace.json.gz"))[-1]
  trace = json.loads(gzip.open(path).read())
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  times = collections.Counter()
  for event in events:
    if event.get("ph") == "X" and event.get("name") in instructions:
      times[event["name"]] += float(event.get("dur", 0.0))
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--size", default="features", choices=sorted(train_throughput.SIZES))
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--top", type=int, default=8)
  parser.add_argument("--trace_dir", default=None, help="keep the trace here (default: a temp dir)")
  args = parser.parse_args()
  batch_size = args.batch_size or (64 if args.size != "raw" else 2)
  steps = args.steps or (2 if args.quick else 5)

  compiled, state, batch, (flops, _), _ = train_throughput.compile_step(
      args.size, args.dtype, batch_size
  )
  instructions = hlo_instructions(compiled.as_text())
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  trace_dir = pathlib.Path(args.trace_dir or tempfile.mkdtemp(prefix="stt_trace_"))
  with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
    for _ in range(steps):
      state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)

  times = trace_op_times(trace_dir, instructions)
  total = sum(times.values()) or 1.0
  by_category = collections.Counter()
  for name, micros in times.items():
    by_category[category(instructions[name][1], name)] += micros
  top_ops = [
      {
          "op": name,
          "shape": instructions[name][0],
          "op_name": instructions[name][1],
          "share": micros / total,
      }
      for name, micros in times.most_common(args.top)
  ]
  for row in top_ops:
    print(f"{100 * row['share']:5.1f}%  {row['op']:<28} {row['shape']:<28} {row['op_name']}")
  shares = {name: micros / total for name, micros in by_category.most_common()}
  for name, share in shares.items():
    print(f"{100 * share:5.1f}%  {name}")
  print(
      json.dumps(
          {
              "benchmark": "profile_step",
              "device": jax.devices()[0].device_kind,
              "size": args.size,
              "dtype": args.dtype,
              "batch_size": batch_size,
              "steps": steps,
              "gflops_per_step": flops / 1e9,
              "op_time_per_step_s": total / steps / 1e6,
              "category_share": shares,
              "top_ops": top_ops,
              "trace_dir": str(trace_dir),
          }
      )
  )


if __name__ == "__main__":
  main()
