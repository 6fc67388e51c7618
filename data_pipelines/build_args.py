"""The build CLI's flags: which dataset reads which flag, their defaults, and the parser.

A flag given for a dataset that does not read it is an error, never silently ignored
(`flag_error`); `parse_args` fills in DEFAULTS after the checks.
"""

from __future__ import annotations

import argparse
import dataclasses

from data_pipelines import ave_features
from data_pipelines import catalogue
from data_pipelines import dataset_spec
from data_pipelines import vggss_format

BuildInputError = dataset_spec.BuildInputError  # the build's own input errors, named here too

# The flags a dataset may read (DatasetSpec.flags); given for another dataset, a flag is an
# error, never silently ignored. None in the parser means "not given"; DEFAULTS fills in the rest
# after the checks.
FLAGS = (
    "manual_dir",
    "visual_dtype",
    *dataset_spec.DECODE_FLAGS,
    "num_workers",
    "decode_timeout_s",
    "synthetic_config",
    "manifest",
    "tag",
    "beam_runner",
    "annotated_frame",
    "vggsound_dataset_dir",
)
DEFAULTS = dict(
    **dataclasses.asdict(dataset_spec.Decode()),
    num_workers=1,
    decode_timeout_s=300.0,
    **catalogue.OPTION_DEFAULTS,
)


def flag_datasets() -> dict[str, tuple[str, ...]]:
  """{flag: the datasets that read it}, from the catalogue."""
  return {
      flag: tuple(name for name, spec in catalogue.DATASETS.items() if flag in spec.flags)
      for flag in FLAGS
  }


def flag_error(args) -> str | None:
  """Why the given flags do not fit together (one line), or None."""
  spec = catalogue.spec(args.dataset)
  given = [flag for flag in FLAGS if getattr(args, flag) is not None]
  for flag in given:
    if flag in spec.flags:
      continue
    if spec.cli_decode is not None and flag in dataset_spec.DECODE_FLAGS:
      return (
          f"--{flag} does not apply to --dataset={args.dataset}: config.dataset.{flag} of "
          f"{spec.cli_decode[1]} sets it; to build and train another, pass "
          f"--config.dataset.{flag}=N to stt.main, which builds the set on first use"
      )
    return (
        f"--{flag} does not apply to --dataset={args.dataset}, only to "
        f"{', '.join(flag_datasets()[flag])}"
    )
  alternatives = [flag for flag in spec.manual_dir_alternatives if getattr(args, flag)]
  if args.manual_dir and alternatives:
    flag = alternatives[0]
    return (
        f"give --{flag}=FILE or --manual_dir=DIR, not both: "
        f"{spec.manual_dir_alternatives[flag]}"
    )
  if "manual_dir" in spec.flags and not args.manual_dir and not alternatives:
    return f"--dataset={args.dataset} needs --manual_dir" + "".join(
        f" or --{flag}" for flag in spec.manual_dir_alternatives
    )
  local = [
      f"--{flag}" for flag in ("num_workers", "decode_timeout_s") if getattr(args, flag) is not None
  ]
  if args.beam_runner and local:
    return (
        f"{' and '.join(local)} apply to the local build, not to --beam_runner (give "
        "--beam_num_workers; on Beam a clip decodes without a timeout)"
    )
  if args.beam_runner and args.vggsound_dataset_dir:
    return "--vggsound_dataset_dir reads a built dataset, it decodes nothing: no --beam_runner"
  if not args.beam_runner and args.beam_num_workers is not None:
    return "--beam_num_workers needs --beam_runner"
  if not args.beam_runner and args.beam_args:
    return (
        f"unrecognized arguments: {' '.join(args.beam_args)} (pass-through Beam options "
        "need --beam_runner)"
    )
  return None


def parse_args(argv, description: str):
  """The build CLI's arguments; a flag that does not fit exits 2 with one line."""
  parser = argparse.ArgumentParser(
      prog="python -m data_pipelines.build",
      description=description,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--dataset", required=True, choices=tuple(catalogue.DATASETS))
  parser.add_argument("--manual_dir", help="the downloaded files (all but synthetic)")
  parser.add_argument(
      "--data_dir",
      default=None,
      help="output TFDS data dir (default: $TFDS_DATA_DIR, ~/tensorflow_datasets)",
  )
  parser.add_argument(
      "--visual_dtype",
      choices=ave_features.VISUAL_DTYPES,
      help="ave_features: storage dtype of the visual maps (default: float16)",
  )
  parser.add_argument("--num_segments", type=int, help="video datasets: T (default: 10)")
  parser.add_argument("--frames_per_segment", type=int, help="video datasets: F (default: 1)")
  parser.add_argument(
      "--frame_size", type=int, help="video datasets: S, frames are SxS (default: 224)"
  )
  parser.add_argument(
      "--num_workers",
      type=int,
      help="video datasets, synthetic: local decode processes (default: 1)",
  )
  parser.add_argument(
      "--decode_timeout_s",
      type=float,
      help="video datasets (local): a clip still decoding after this many "
      "seconds is killed and listed as failed (default: 300)",
  )
  parser.add_argument(
      "--synthetic_config", help="synthetic: the argument of configs/synthetic.py, e.g. 'smoke'"
  )
  parser.add_argument(
      "--manifest", help="manifest: the CSV, instead of --manual_dir (DIR/manifest.csv)"
  )
  parser.add_argument(
      "--tag",
      help="manifest: names the built dataset (a config's dataset.tag; default: manifest)",
  )
  parser.add_argument(
      "--beam_runner",
      default=None,
      help="video datasets: build on Apache Beam with this runner, e.g. "
      "DirectRunner or DataflowRunner",
  )
  parser.add_argument(
      "--beam_num_workers",
      type=int,
      default=None,
      help="Beam workers (DirectRunner: local processes)",
  )
  parser.add_argument(
      "--annotated_frame",
      choices=tuple(vggss_format.ANNOTATED_FRAMES),
      help="vggss: the frame the boxes annotate, 'middle' (5.0 s, default) or "
      "'frame125' (4.96 s); see data_pipelines/vggss_format.py",
  )
  parser.add_argument(
      "--vggsound_dataset_dir",
      help="vggss: take the examples from this built vggsound dataset by video "
      "id instead of decoding the clips; see data_pipelines/"
      "vggss_from_built.py",
  )
  args, beam_args = parser.parse_known_args(argv)
  args.beam_args = beam_args
  error = flag_error(args)
  if error:
    parser.exit(2, f"build: error: {error}\n")
  for flag, default in DEFAULTS.items():
    if getattr(args, flag) is None:
      setattr(args, flag, default)
  return args
