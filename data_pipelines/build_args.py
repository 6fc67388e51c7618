"""The build CLI's flags: which dataset reads which flag, their defaults, and the parser.

A flag given for a dataset that does not read it is an error, never silently ignored
(`flag_error`); `parse_args` fills in DEFAULTS after the checks.
"""

from __future__ import annotations

import argparse

from data_pipelines import ave_features
from data_pipelines import manifest_builder
from data_pipelines import vggss_format

DATASETS = (
    "ave_features",
    "ave",
    "synthetic",
    *manifest_builder.MANIFEST_DATASETS,
    "vggss",
    "flickr_soundnet",
)
VIDEO_DATASETS = ("ave", *manifest_builder.MANIFEST_DATASETS, "vggss", "flickr_soundnet")


class BuildInputError(ValueError):
  """manual_dir lacks files or holds inconsistent ones. The message says what to do."""


# The datasets that read each flag; given for another dataset, a flag is an error, never silently
# ignored. None in the parser means "not given"; DEFAULTS fills in the rest after the checks.
FLAG_DATASETS = {
    "manual_dir": ("ave_features", *VIDEO_DATASETS),
    "visual_dtype": ("ave_features",),
    "num_segments": VIDEO_DATASETS,
    "frames_per_segment": VIDEO_DATASETS,
    "frame_size": VIDEO_DATASETS,
    "num_workers": VIDEO_DATASETS + ("synthetic",),
    "decode_timeout_s": VIDEO_DATASETS,
    "synthetic_config": ("synthetic",),
    "manifest": ("manifest",),
    "tag": ("manifest",),
    "beam_runner": VIDEO_DATASETS,
    "annotated_frame": ("vggss",),
    "vggsound_dataset_dir": ("vggss",),
}
DEFAULTS = dict(
    visual_dtype="float16",
    num_segments=10,
    frames_per_segment=1,
    frame_size=224,
    num_workers=1,
    decode_timeout_s=300.0,
    synthetic_config="",
    tag="manifest",
    annotated_frame=vggss_format.DEFAULT_ANNOTATED_FRAME,
)
SYNTHETIC_CONFIG_FLAGS = ("num_segments", "frames_per_segment", "frame_size")


def flag_error(args) -> str | None:
  """Why the given flags do not fit together (one line), or None."""
  given = [flag for flag in FLAG_DATASETS if getattr(args, flag) is not None]
  for flag in given:
    if args.dataset in FLAG_DATASETS[flag]:
      continue
    if args.dataset == "synthetic" and flag in SYNTHETIC_CONFIG_FLAGS:
      return (
          f"--{flag} does not apply to --dataset=synthetic: config.dataset.{flag} of "
          "configs/synthetic.py sets it; to build and train another, pass "
          f"--config.dataset.{flag}=N to stt.main, which builds the set on first use"
      )
    return (
        f"--{flag} does not apply to --dataset={args.dataset}, only to "
        f"{', '.join(FLAG_DATASETS[flag])}"
    )
  if args.dataset == "manifest" and args.manual_dir and args.manifest:
    return (
        "give --manifest=FILE or --manual_dir=DIR (which means DIR/manifest.csv), not both: "
        "relative clip paths are read relative to the manifest's directory"
    )
  if (
      args.dataset in FLAG_DATASETS["manual_dir"]
      and not args.manual_dir
      and not (args.dataset == "manifest" and args.manifest)
  ):
    return f"--dataset={args.dataset} needs --manual_dir" + (
        " or --manifest" if args.dataset == "manifest" else ""
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
  parser.add_argument("--dataset", required=True, choices=DATASETS)
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
      help="manifest: names the built dataset (a config's " "dataset.tag; default: manifest)",
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
