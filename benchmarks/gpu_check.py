r"""Every benchmark at its accelerator size in one process, summarised in one JSON file.

  python benchmarks/gpu_check.py --out=gpu_check.json               # on the accelerator
  python benchmarks/gpu_check.py --out=cpu.json --cpu               # real shapes, CPU batches
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
     pipeline (0, 8 and 16 worker processes, start-up excluded, and the device-resident split of
     `input.device_resident`) against the model's examples/s at the same size (the faster
     dtype): `device_waits` says whether the device would wait on its input.
  5. the peak again (the interleaved peak: every fraction against the best of both, their
     spread, `peak_unstable` when it moved more than 20 %).
Also: `raw_bf16_mfu_by_batch`, the raw-size bf16 fraction of peak at two batch sizes
(`raw_bf16_batches`), and `versions`, the Python, jax, jaxlib, flax, ... it ran with.
--cpu_smoke shrinks every size (T=2, small grids and widths, 32² and 48² frames, batch 2, 8 videos,
8 examples) and runs each code path once (bfloat16 at the features size and, for the raw-size
batch sweep, at one more raw batch; compiling the train step is most of a smoke run's time; one
host worker process), so that the whole check runs on 2 idle CPU cores in about a minute and a
half: it tests the script, not the machine. Its figures are not results.
--cpu keeps every real per-example shape (ResNet-18 + VGGish at the raw size) with batches a
CPU runs in minutes (32 / 64 / 2, 64 suite videos): the CPU's fraction-of-peak figures of
benchmarks/RESULTS.md, every training size and the perturbation suite in one process.
"""

from __future__ import annotations

import argparse
from importlib import metadata
import json
import math
import pathlib
import sys
import tempfile
import time
import traceback

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# pylint: disable=g-import-not-at-top,wrong-import-position
import perturbation_throughput
import roofline
import train_throughput

try:
  # Writing its datasets needs tensorflow_datasets (and TensorFlow's Example proto), which an
  # accelerator image may lack: then that part is reported as an error, the others still run.
  import input_pipeline as input_benchmark
except ImportError as import_error:
  input_benchmark, INPUT_IMPORT_ERROR = None, import_error
# pylint: enable=g-import-not-at-top,wrong-import-position

TRAIN_SIZES = ("synthetic", "features", "raw")
DTYPES = ("float32", "bfloat16")
TRAINING_KEYS = (
    "size",
    "dtype",
    "batch_size",
    "step_time_s",
    "examples_per_s",
    "gflops_per_step",
    "fraction_of_peak",
    "fraction_of_roofline",
    "memory_level",
    "mfu_nominal",
    "roofline_inputs",
)
# Distributions whose versions every run prints (and the accelerator plugin, whatever its name).
VERSIONED = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "grain",
    "numpy",
    "tensorflow-datasets",
    "array_record",
)
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


def plan(mode: str) -> dict:
  """Sizes of every part in `mode`: 'accelerator', 'cpu' (real shapes, CPU batches) or
  'cpu_smoke' (all shrunk)."""
  if mode == "cpu_smoke":
    return {
        "train_batch": dict.fromkeys(TRAIN_SIZES, 2),
        "train_dtypes": {"features": DTYPES, "synthetic": ("float32",), "raw": ("float32",)},
        "raw_bf16_batches": (4,),  # one more compile: the path, not the figure
        "train_steps": 1,
        "num_segments": 2,
        "suite_videos": 8,
        "suite_shape": dict(num_segments=2, grid=2, visual_dim=64, width=32),
        "input_examples": 8,
        "input_batch": 4,
        "input_workers": (0, 1, "resident"),  # one worker process: the path
    }
  if mode == "cpu":
    return {
        "train_batch": {"synthetic": 32, "features": 64, "raw": 2},
        "train_dtypes": {"synthetic": DTYPES, "features": DTYPES, "raw": ("float32",)},
        "raw_bf16_batches": (2,),  # ResNet-18 compiles for minutes on 2 CPU cores
        "train_steps": 3,
        "num_segments": 10,
        "suite_videos": 64,
        "suite_shape": {},
        "input_examples": 64,
        "input_batch": 16,
        "input_workers": (0, 2, "resident"),
    }
  assert mode == "accelerator", mode
  return {
      "train_batch": {"synthetic": 256, "features": 512, "raw": 64},
      "train_dtypes": dict.fromkeys(TRAIN_SIZES, DTYPES),
      # Raw-size bf16 MFU at two batch sizes: does a larger batch lift the 0.28-0.30 of 2026-12-04?
      "raw_bf16_batches": (64, 128),
      "train_steps": 10,
      "num_segments": 10,
      "suite_videos": AVE_TEST_VIDEOS,
      "suite_shape": {},
      "input_examples": 256,
      "input_batch": 32,
      "input_workers": (0, 8, 16, "resident"),
  }


def versions() -> dict:
  """Python's and each VERSIONED distribution's version (None: not installed), plus every
  installed jax plugin (jax-cuda12-plugin, jax-cuda13-pjrt, ...)."""
  found = {"python": sys.version.split()[0]}
  for name in VERSIONED:
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      found[name] = None
  for distribution in metadata.distributions():
    name = (distribution.metadata["Name"] or "").lower().replace("_", "-")
    if name.startswith(("jax-cuda", "jax-rocm", "libtpu")):
      found[name] = distribution.version
  return found


def training_row(
    peak: dict, sizes: dict, smoke: bool, size: str, dtype: str, batch: int | None = None
) -> dict:
  """One training size and dtype (at `batch`, default the plan's): step time, examples/s,
  fraction of the measured peak."""
  row = train_throughput.measure(
      size,
      dtype,
      batch or sizes["train_batch"][size],
      sizes["train_steps"],
      num_segments=sizes["num_segments"],
      peak=peak,
      spec=SMOKE_SPECS[size] if smoke else None,
  )
  row["mfu_nominal"] = row.pop("mfu")
  print(json.dumps(row), flush=True)
  return {key: row.get(key) for key in TRAINING_KEYS}


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
  jax.block_until_ready([compiled(*arguments) for compiled, _, _, arguments in suite])  # warm-up
  start = time.perf_counter()
  jax.block_until_ready([compiled(*arguments) for compiled, _, _, arguments in suite])
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
          mflop * 1e6 * passes,
          bytes_per_pass * passes,
          tests_s,
          peak,
          working_set=perturbation_throughput.suite_working_set(suite),
      ),
      "maps_rows": maps,
  }


def input_rates(train_rows: list[dict], sizes: dict) -> list[dict]:
  """The trainer's pipeline (0 / N workers, start-up excluded, and the device-resident split)
  against the model's fastest rate at the features and raw sizes (the faster of f32 and bf16
  at the plan's batch): `device_waits` when the input is slower (the goal: it never is)."""
  if input_benchmark is None:
    raise INPUT_IMPORT_ERROR
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for size in ("features", "raw"):
      source, megabytes = input_benchmark.write_dataset(
          size, sizes["input_examples"], pathlib.Path(tmp)
      )
      num_batches = max(2, 2 * sizes["input_examples"] // sizes["input_batch"])
      model_rate = max(
          r["examples_per_s"]
          for r in train_rows
          if r["size"] == size and r["batch_size"] == sizes["train_batch"][size]
      )
      for workers in sizes["input_workers"]:
        rate = (
            input_benchmark.resident_examples_per_second(source, sizes["input_batch"], num_batches)
            if workers == "resident"
            else input_benchmark.examples_per_second(
                source, sizes["input_batch"], workers, num_batches
            )
        )
        rows.append(
            {
                "size": size,
                "workers": workers,
                "examples_per_s": rate,
                "mb_per_example": megabytes,
                "model_examples_per_s": model_rate,
                "input_over_model": rate / model_rate,
                "device_waits": rate < model_rate,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
  return rows


def rescore_all(result: dict, peak: dict) -> None:
  """Every roofline figure of `result` recomputed against the final interleaved `peak`."""
  result["training"] = [roofline.rescore(row, peak) for row in result["training"]]
  result["mfu"] = {
      f"{row['size']}/{row['dtype']}": row["fraction_of_peak"]
      for row in result["training"]
      if row["batch_size"] == result["sizes"]["train_batch"][row["size"]]
      and row["dtype"] in result["sizes"]["train_dtypes"][row["size"]]
  }
  result["raw_bf16_mfu_by_batch"] = {
      str(row["batch_size"]): row["fraction_of_peak"]
      for row in result["training"]
      if (row["size"], row["dtype"]) == ("raw", "bfloat16")
  }
  if "ave_suite" in result:
    suite = result["ave_suite"]
    suite["perturbation_roofline"] = roofline.rescore(suite["perturbation_roofline"], peak)
    suite["maps_rows"] = [roofline.rescore(row, peak) for row in suite["maps_rows"]]
  result["peak_unstable"] = peak["peak_unstable"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="path of the JSON file written")
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--cpu_smoke", action="store_true", help="shrink every size (CPU test)")
  mode.add_argument("--cpu", action="store_true", help="real shapes at CPU batch sizes")
  args = parser.parse_args()
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  start = time.perf_counter()
  smoke = args.cpu_smoke
  sizes = plan("cpu_smoke" if smoke else "cpu" if args.cpu else "accelerator")
  result = {
      "benchmark": "gpu_check",
      "cpu_smoke": args.cpu_smoke,
      "cpu": args.cpu,
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "device_count": jax.device_count(),
      "jax": jax.__version__,
      "versions": versions(),
      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "sizes": sizes,
      "training": [],
      "mfu": {},
      "errors": {},
      "part_seconds": {},
  }
  out = pathlib.Path(args.out)

  def part(name, store, function, *arguments):
    """Runs one part and `store`s its value in the result; a failure is recorded, not fatal.

    The JSON is rewritten after each part, so a run stopped by its time limit keeps what it
    measured.
    """
    part_start = time.perf_counter()
    try:
      value = function(*arguments)
    except Exception as error:  # pylint: disable=broad-exception-caught
      traceback.print_exc()
      result["errors"][name] = f"{type(error).__name__}: {error}"[:2000]
      value = None
    if value is not None:
      store(value)
    result["part_seconds"][name] = time.perf_counter() - part_start
    result["total_s"] = time.perf_counter() - start
    out.write_text(json.dumps(result, indent=1))
    return value

  def store_training(row):
    result["training"].append(row)
    result["mfu"][f"{row['size']}/{row['dtype']}"] = row["fraction_of_peak"]

  def store_suite(suite):
    result["ave_suite"], result["ave_suite_seconds"] = suite, suite["seconds"]

  print(json.dumps({"versions": result["versions"]}), flush=True)
  # The peak interleaved with the work: measured first and again last; every fraction is
  # recomputed against the best of both (roofline.PeakTracker).
  tracker = roofline.PeakTracker(smoke)
  peak = part("peak", lambda value: result.update(peak=value), tracker.measure)
  if peak is None:
    sys.exit(f"gpu_check: the peak measurement failed: {result['errors']['peak']}")
  print(json.dumps(peak), flush=True)
  # Most valuable first.
  for size in ("features", "synthetic", "raw"):
    for dtype in sizes["train_dtypes"][size]:
      part(
          f"training/{size}/{dtype}", store_training, training_row, peak, sizes, smoke, size, dtype
      )
  for batch in sizes["raw_bf16_batches"]:  # raw-size bf16 MFU at two batch sizes
    if batch != sizes["train_batch"]["raw"] or "bfloat16" not in sizes["train_dtypes"]["raw"]:
      part(
          f"training/raw/bfloat16@{batch}",
          result["training"].append,
          training_row,
          peak,
          sizes,
          smoke,
          "raw",
          "bfloat16",
          batch,
      )
  part("ave_suite", store_suite, explanation_suite, peak, sizes)
  part(
      "input_pipeline",
      lambda rows: result.update(input_pipeline=rows),
      input_rates,
      result["training"],
      sizes,
  )
  peak = part("peak_after", lambda value: result.update(peak=value), tracker.measure)
  if peak is not None:
    rescore_all(result, peak)
    out.write_text(json.dumps(result, indent=1))
  print(json.dumps(result))
  # A fraction of 0 means the FLOPs were not counted (as an accelerator's cost analysis can do).
  counted = all(math.isfinite(v) and v > 0 for v in result["mfu"].values())
  if result["errors"] or not counted:
    sys.exit(f"gpu_check: parts failed or gave no FLOP count: {result['errors']}, {result['mfu']}")


if __name__ == "__main__":
  main()
