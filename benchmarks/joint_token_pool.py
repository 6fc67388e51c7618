r"""The joint transformer's (MBT's) training step at one visual token per cell (token_pool=1)
against 2 x 2-cell tokens (token_pool=2), with STAN beside them, at the synthetic size.

  PYTHONPATH=. python benchmarks/joint_token_pool.py [--steps=5] [--rounds=2]

Each configuration is `benchmarks/train_throughput.py`'s `measure` (the trainer's own jitted
step on a device-resident batch of 32; 10 frames of 64² + log-mel; float32), with the suites'
joint_transformer settings (`stt/reproduce_suites.py` MODEL_OVERRIDES: num_layers=2). The
configurations are measured in turn for `--rounds` rounds, so that a slow phase of a shared
machine falls on all of them; each figure is the median over rounds of the median step time.
On a shared CPU read the ratios, not the seconds. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train_throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

CONFIGS = {
    "stan": {"name": "stan"},
    "joint_transformer_token_pool_1": {"name": "joint_transformer", "num_layers": 2},
    "joint_transformer_token_pool_2": {
        "name": "joint_transformer",
        "num_layers": 2,
        "token_pool": 2,
    },
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--batch_size", type=int, default=32)
  args = parser.parse_args()
  step_times = {name: [] for name in CONFIGS}
  rows = {}
  for _ in range(args.rounds):
    for name, model_config in CONFIGS.items():
      row = train_throughput.measure(
          "synthetic", "float32", args.batch_size, args.steps, model_config=model_config
      )
      step_times[name].append(row["step_time_s"])
      rows[name] = row
      print(json.dumps({"config": name, **row}), flush=True)
  median = {name: float(np.median(times)) for name, times in step_times.items()}
  one, two = median["joint_transformer_token_pool_1"], median["joint_transformer_token_pool_2"]
  print(
      json.dumps(
          {
              "benchmark": "joint_token_pool",
              "device": jax.devices()[0].device_kind,
              "backend": jax.default_backend(),
              "step_time_s": median,
              "gflops_per_step": {name: row["gflops_per_step"] for name, row in rows.items()},
              "compile_s": {name: row["compile_s"] for name, row in rows.items()},
              "ratio_token_pool_1_to_2": one / two,
              "ratio_token_pool_1_to_stan": one / median["stan"],
              "ratio_token_pool_2_to_stan": two / median["stan"],
          }
      )
  )


if __name__ == "__main__":
  main()
