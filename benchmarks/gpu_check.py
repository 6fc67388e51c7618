r"""Every benchmark at its accelerator size in one process, summarised in one JSON file.

  python benchmarks/gpu_check.py --out=gpu_check.json               # on the accelerator
  python benchmarks/gpu_check.py --out=smoke.json --cpu_smoke       # every size shrunk, CPU

Run through benchmarks/gpu_check.sh (which sets the platform and a time limit). In order:
  1. the device's peak (benchmarks/roofline.py): f32 and bf16 matmul FLOP/s, copy bandwidth;
  2. the training step (benchmarks/train_throughput.py) at the synthetic, features and raw sizes
     in float32 and bfloat16: step time, examples/s, fraction of the measured peak (MFU when
     the peak is the accelerator's), and `mfu_nominal` against the datasheet peak if known;
  3. the AVE-size explanation suite (benchmarks/perturbation_throughput.py): 402 videos x
     5 explainers x 2 tests x 2 directions x 10 fractions of perturbation tests in feature mode,
     plus the 5 explainers' maps, as seconds (all 402 videos in one batch, compilation
     excluded) and fraction of peak;
  4. the input pipeline (benchmarks/input_pipeline.py): examples/s read through the trainer's
     pipeline against the model's examples/s at the same size (f32 step above).
--cpu_smoke shrinks every size (T=2, small grids and widths, 32² and 48² frames, batch 2, 8 videos,
8 examples) so that the whole check runs on a CPU in well under a minute: it tests the
script, not the machine. Its figures are not results.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# pylint: disable=g-import-not-at-top,wrong-import-position
import input_pipeline as input_benchmark
import perturbation_throughput
import roofline
import train_throughput

# pylint: enable=g-import-not-at-top,wrong-import-position

TRAIN_SIZES = ("synthetic", "features", "raw")
DTYPES = ("float32", "bfloat16")
SUITE_EXPLAINERS = ("attention", "rollout", "gradcam", "grad_x_input", "random")
AVE_TEST_VIDEOS = 402
# Per-example shapes of the smoke run: (model overrides, shapes) as in train_throughput.SIZES.
SMOKE_SPECS = {
    "synthetic": (
        dict(
            visual_backbone="resnet_tiny", audio_backbone="vggish_tiny", width=32, grid_size=(4, 4)
        ),
        dict(frames=(2, 1, 32, 32, 3), log_mel=(2, 96, 64)),
    ),
    "features": (
        dict(
            visual_backbone="features",
            audio_backbone="features",
            width=32,
            visual_feature_dim=64,
            audio_feature_dim=128,
            grid_size=(2, 2),
        ),
        dict(visual_features=(2, 2, 2, 64), audio_features=(2, 128)),
    ),
    # ResNet-18 + VGGish take minutes to compile on 2 CPU cores: the smoke run's raw size
    # checks the code path with the tiny backbones.
    "raw": (
        dict(
            visual_backbone="resnet_tiny", audio_backbone="vggish_tiny", width=32, grid_size=(6, 6)
        ),
        dict(frames=(2, 1, 48, 48, 3), log_mel=(2, 96, 64)),
    ),
}


def plan(smoke: bool) -> dict:
  """Sizes of every part: accelerator sizes, or all shrunk for the CPU smoke run."""
  if smoke:
    return {
        "train_batch": dict.fromkeys(TRAIN_SIZES, 2),
        "train_steps": 1,
        "num_segments": 2,
        "suite_videos": 8,
        "suite_shape": dict(num_segments=2, grid=2, visual_dim=64, width=32),
        "input_examples": 8,
        "input_batch": 4,
    }
  return {
      "train_batch": {"synthetic": 256, "features": 512, "raw": 64},
      "train_steps": 10,
      "num_segments": 10,
      "suite_videos": AVE_TEST_VIDEOS,
      "suite_shape": {},
      "input_examples": 128,
      "input_batch": 32,
  }


def training(peak: dict, sizes: dict, smoke: bool) -> list[dict]:
  rows = []
  for size in TRAIN_SIZES:
    for dtype in DTYPES:
      row = train_throughput.measure(
          size,
          dtype,
          sizes["train_batch"][size],
          sizes["train_steps"],
          num_segments=sizes["num_segments"],
          peak=peak,
          spec=SMOKE_SPECS[size] if smoke else None,
      )
      row["mfu_nominal"] = row.pop("mfu")
      rows.append(row)
      print(json.dumps(row), flush=True)
  return rows


def explanation_suite(peak: dict, sizes: dict) -> dict:
  """Seconds of the AVE-size suite (perturbation tests + maps) of SUITE_EXPLAINERS."""
  num_videos = sizes["suite_videos"]
  model, inputs, labels, where, when = perturbation_throughput.make_model_and_data(
      num_videos, **sizes["suite_shape"]
  )
  # All videos in one batch.
  suite = perturbation_throughput.compile_suite(model, inputs, labels, where, when)
  mflop, _, bytes_per_pass = perturbation_throughput.suite_cost(
      model, inputs, labels, where, when, suite
  )
  jax.block_until_ready([compiled(*arguments) for compiled, arguments in suite])  # warm-up
  start = time.perf_counter()
  jax.block_until_ready([compiled(*arguments) for compiled, arguments in suite])
  tests_s = time.perf_counter() - start
  passes = num_videos * len(perturbation_throughput.TESTS) * 10
  maps = perturbation_throughput.explainer_rows(model, inputs, SUITE_EXPLAINERS, peak, repeats=1)
  maps_s = sum(row["seconds"] for row in maps)
  explainers = len(SUITE_EXPLAINERS)
  return {
      "videos": num_videos,
      "explainers": list(SUITE_EXPLAINERS),
      "tests": 2,
      "directions": 2,
      "fractions": 10,
      "perturbation_tests_s": tests_s * explainers,
      "maps_s": maps_s,
      "seconds": tests_s * explainers + maps_s,
      "perturbation_roofline": roofline.roofline_row(
          mflop * 1e6 * passes, bytes_per_pass * passes, tests_s, peak
      ),
      "maps_rows": maps,
  }


def input_rates(train_rows: list[dict], sizes: dict) -> list[dict]:
  """The trainer's pipeline against the model's f32 rate at the features and raw sizes."""
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for size in ("features", "raw"):
      source, megabytes = input_benchmark.write_dataset(
          size, sizes["input_examples"], pathlib.Path(tmp)
      )
      num_batches = max(2, 2 * sizes["input_examples"] // sizes["input_batch"])
      rate = input_benchmark.examples_per_second(source, sizes["input_batch"], 0, num_batches)
      model_rate = next(
          r["examples_per_s"] for r in train_rows if r["size"] == size and r["dtype"] == "float32"
      )
      rows.append(
          {
              "size": size,
              "workers": 0,
              "examples_per_s": rate,
              "mb_per_example": megabytes,
              "model_examples_per_s": model_rate,
              "input_over_model": rate / model_rate,
          }
      )
      print(json.dumps(rows[-1]), flush=True)
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="path of the JSON file written")
  parser.add_argument("--cpu_smoke", action="store_true", help="shrink every size (CPU test)")
  args = parser.parse_args()
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  start = time.perf_counter()
  sizes = plan(args.cpu_smoke)
  part_seconds = {}

  def timed(name, function, *arguments):
    part_start = time.perf_counter()
    result = function(*arguments)
    part_seconds[name] = time.perf_counter() - part_start
    return result

  peak = timed("peak", roofline.measure_peak, args.cpu_smoke)
  print(json.dumps(peak), flush=True)
  train_rows = timed("training", training, peak, sizes, args.cpu_smoke)
  suite = timed("ave_suite", explanation_suite, peak, sizes)
  inputs = timed("input_pipeline", input_rates, train_rows, sizes)
  result = {
      "benchmark": "gpu_check",
      "cpu_smoke": args.cpu_smoke,
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "device_count": jax.device_count(),
      "jax": jax.__version__,
      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "peak": peak,
      "sizes": sizes,
      "training": [
          {
              key: row[key]
              for key in (
                  "size",
                  "dtype",
                  "batch_size",
                  "step_time_s",
                  "examples_per_s",
                  "gflops_per_step",
                  "fraction_of_peak",
                  "fraction_of_roofline",
                  "mfu_nominal",
              )
          }
          for row in train_rows
      ],
      "mfu": {f"{row['size']}/{row['dtype']}": row["fraction_of_peak"] for row in train_rows},
      "ave_suite": suite,
      "ave_suite_seconds": suite["seconds"],
      "input_pipeline": inputs,
      "part_seconds": part_seconds,
      "total_s": time.perf_counter() - start,
  }
  finite = all(math.isfinite(v) for v in result["mfu"].values())
  assert finite and np.isfinite(result["ave_suite_seconds"]), "non-finite figures"
  pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
  print(json.dumps(result))


if __name__ == "__main__":
  main()
