r"""What a training step is made of, per dtype, from its lowered computation (no run, seconds).

  python benchmarks/step_census.py                       # raw size, f32 and bf16, batch 2
  python benchmarks/step_census.py --size=features --batch_size=64

For each dtype, the train step (as benchmarks/train_throughput.py builds it) is lowered, not
compiled, and its StableHLO counted: convolutions and dot_generals by result element type,
their precision configs and convolution layouts (dimension numbers), and the element-type
converts, transposes and reductions around them. The same on every backend: it says what the
model asks of XLA (e.g. whether bf16 reaches every convolution, or what is cast back to f32),
not what a backend's compiler then fuses. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train_throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

_RESULT_TYPE = re.compile(r"->\s*tensor<([^>]*)>")
_PRECISION = re.compile(r"precision_config = \[([^\]]*)\]")
_LAYOUT = re.compile(r"dim_numbers = (\[[^\]]*\]x\[[^\]]*\]->\[[^\]]*\])")


def _element_type(line: str) -> str:
  match = _RESULT_TYPE.search(line)
  return match.group(1).split("x")[-1] if match else "?"


def census(stablehlo: str) -> dict:
  """Counts of the ops that decide a step's dtype behaviour in StableHLO text."""
  ops = collections.Counter()
  for line in stablehlo.splitlines():
    for op in ("convolution", "dot_general"):
      if f"stablehlo.{op}" in line:
        ops[f"{op}/{_element_type(line)}"] += 1
  return {
      "ops_by_result_type": dict(sorted(ops.items())),
      "precision_configs": dict(collections.Counter(_PRECISION.findall(stablehlo))),
      "convolution_layouts": dict(collections.Counter(_LAYOUT.findall(stablehlo))),
      "converts": stablehlo.count("stablehlo.convert"),
      "transposes": stablehlo.count("stablehlo.transpose"),
      "reduces": stablehlo.count("stablehlo.reduce"),
  }


def step_census(size: str, dtype: str, batch_size: int) -> dict:
  """`census` of the train step of one size, dtype and batch."""
  step, state, batch, _ = train_throughput.build_step(size, dtype, batch_size)
  return {"size": size, "dtype": dtype, "batch_size": batch_size}, census(
      step.lower(state, batch).as_text()
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="raw", choices=sorted(train_throughput.SIZES))
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--batch_size", type=int, default=2)
  args = parser.parse_args()
  rows = []
  for dtype in args.dtypes.split(","):
    key, counts = step_census(args.size, dtype, args.batch_size)
    rows.append({**key, **counts})
    print(json.dumps(rows[-1]), flush=True)
  print(json.dumps({"benchmark": "step_census", "rows": rows}))


if __name__ == "__main__":
  main()
