r"""Builds a dataset as TFDS array_record under a data dir, with a progress bar and a summary.

  python -m data_pipelines.build --dataset=ave_features --manual_dir=DIR --data_dir=OUT
  python -m data_pipelines.build --dataset=ave --manual_dir=DIR --data_dir=OUT [--frame_size=224]
  python -m data_pipelines.build --dataset=synthetic --data_dir=OUT [--synthetic_config=smoke]

Datasets:
  ave_features  the AVE feature release (h5 files), see data_pipelines/ave_features.py
  ave           an AVE-format directory of MP4s, decoded by data_pipelines/ave_builder.py
  synthetic     generated here (no download), as `configs/synthetic.py:<synthetic_config>` needs it

When manual_dir lacks files, the message says where to download them and where to put them.
An already built dataset is kept. The last line is the summary:
`<dataset>: built N (train=..., val=..., test=...), skipped S, failed F -> <dataset dir>`;
skipped counts the examples of a dataset that was already built, failed the videos that could
not be read (listed in failures.jsonl next to the dataset). Exit status 2 on bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys

from absl import logging as absl_logging
import tensorflow_datasets as tfds
import tqdm

from data_pipelines import ave_builder
from data_pipelines import ave_features
from data_pipelines import ave_format

DATASETS = ("ave_features", "ave", "synthetic")
AVE_VIDEOS_INSTRUCTIONS = """\
Download AVE_Dataset.zip from https://drive.google.com/open?id=1FjKwe79e0u96vdjIVwfRQ1V6SoDHe7kK
(linked from https://github.com/YapengTian/AVE-ECCV18) and unzip it into {manual_dir}, so that it
holds AVE/<video_id>.mp4, Annotations.txt, trainSet.txt, valSet.txt and testSet.txt."""


class BuildInputError(ValueError):
  """manual_dir lacks files or holds inconsistent ones. The message says what to do."""


def _parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m data_pipelines.build", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", required=True, choices=DATASETS)
  parser.add_argument("--manual_dir", help="the downloaded files (ave_features, ave)")
  parser.add_argument("--data_dir", default=None,
                      help="output TFDS data dir (default: $TFDS_DATA_DIR, ~/tensorflow_datasets)")
  parser.add_argument("--visual_dtype", default="float16", choices=ave_features.VISUAL_DTYPES,
                      help="ave_features: storage dtype of the visual maps")
  parser.add_argument("--num_segments", type=int, default=10, help="ave: T")
  parser.add_argument("--frames_per_segment", type=int, default=1, help="ave: F")
  parser.add_argument("--frame_size", type=int, default=224, help="ave: S, frames are SxS")
  parser.add_argument("--num_workers", type=int, default=1, help="ave, synthetic: decode processes")
  parser.add_argument("--synthetic_config", default="",
                      help="synthetic: the argument of configs/synthetic.py, e.g. 'smoke'")
  args = parser.parse_args(argv)
  if args.dataset != "synthetic" and not args.manual_dir:
    parser.error(f"--dataset={args.dataset} needs --manual_dir")
  return args


def _ave_videos_dir(args, data_dir: pathlib.Path) -> pathlib.Path:
  name = ave_builder.config_name("ave", args.num_segments, args.frames_per_segment,
                                 args.frame_size)
  return data_dir / "ave_videos" / name / str(ave_builder.AveVideos.VERSION)


def _synthetic_config(args):
  from configs import synthetic as synthetic_config  # pylint: disable=g-import-not-at-top
  config = synthetic_config.get_config(args.synthetic_config)
  config.dataset.build_workers = args.num_workers
  return config


def rows_to_build(args, data_dir: pathlib.Path) -> int:
  """Rows the build will write (0: already built). Raises BuildInputError / ReleaseError naming
  the download when manual_dir lacks files."""
  if args.dataset == "ave_features":
    if (ave_features.dataset_dir(data_dir, args.visual_dtype) / "dataset_info.json").exists():
      return 0
    release = ave_features.check_release(args.manual_dir)  # says what to download if needed
    return sum(len(order) for order in release.orders.values())
  if args.dataset == "ave":
    if (_ave_videos_dir(args, data_dir) / "dataset_info.json").exists():
      return 0
    manual_dir = pathlib.Path(args.manual_dir)
    needed = ["Annotations.txt", *ave_format.SPLIT_FILES.values(), "AVE"]
    missing = [name for name in needed if not (manual_dir / name).exists()]
    if missing:
      raise BuildInputError(f"{manual_dir} lacks {', '.join(missing)}.\n"
                            + AVE_VIDEOS_INSTRUCTIONS.format(manual_dir=manual_dir))
    return sum(len(ave_format.read_split(manual_dir, split)) for split in ave_format.SPLIT_FILES)
  from stt import datasets  # pylint: disable=g-import-not-at-top
  config = _synthetic_config(args)
  if (datasets.synthetic_dataset_dir(config, data_dir) / "dataset_info.json").exists():
    return 0
  return config.synthetic.num_train + config.synthetic.num_val + config.synthetic.num_test


def build(args, data_dir: pathlib.Path, on_row) -> pathlib.Path:
  """Builds (or keeps) the dataset; returns its directory."""
  if args.dataset == "ave_features":
    return ave_features.build(args.manual_dir, data_dir, visual_dtype=args.visual_dtype,
                              on_row=on_row).dataset_dir
  if args.dataset == "ave":
    return ave_builder.build(
        args.manual_dir, data_dir, tag="ave", num_segments=args.num_segments,
        frames_per_segment=args.frames_per_segment, frame_size=args.frame_size,
        num_workers=args.num_workers, on_row=on_row).dataset_dir
  # The trainer's own preparation step, so the result is exactly what the config looks for.
  from stt import datasets  # pylint: disable=g-import-not-at-top
  return datasets.prepare_synthetic(_synthetic_config(args), data_dir, on_row=on_row)


def summary_of(dataset_dir: pathlib.Path, reused: bool) -> ave_builder.BuildSummary:
  """The summary of a built dataset directory (split sizes and failures.jsonl)."""
  info = tfds.builder_from_directory(str(dataset_dir)).info
  failures = dataset_dir / "failures.jsonl"
  failed = len(failures.read_text().splitlines()) if failures.exists() else 0
  built = {split: info.splits[split].num_examples for split in ave_format.SPLIT_FILES}
  return ave_builder.BuildSummary(dataset_dir, built, failed, reused)


def summary_line(dataset: str, summary: ave_builder.BuildSummary) -> str:
  """`<dataset>: built N (train=..), skipped S, failed F -> <dir>`."""
  total = sum(summary.built.values())
  splits = ", ".join(f"{split}={n}" for split, n in summary.built.items())
  counts = (f"built 0, skipped {total} (already built: {splits})" if summary.reused
            else f"built {total} ({splits}), skipped 0")
  return f"{dataset}: {counts}, failed {summary.failed} -> {summary.dataset_dir}"


def main(argv=None) -> int:
  args = _parse_args(argv)
  data_dir = pathlib.Path(args.data_dir or os.environ.get("TFDS_DATA_DIR")
                          or "~/tensorflow_datasets").expanduser()
  tfds.disable_progress_bar()  # ours counts rows over all splits
  absl_logging.set_verbosity(absl_logging.ERROR)
  logging.getLogger().setLevel(logging.ERROR)  # unreadable videos are counted and listed instead
  try:
    total = rows_to_build(args, data_dir)
    with tqdm.tqdm(total=total, desc=f"building {args.dataset}", unit="video", file=sys.stderr,
                   disable=total == 0) as progress:
      failed = 0

      def on_row(row_failed: bool):
        nonlocal failed
        failed += row_failed
        progress.update(1)
        if row_failed:
          progress.set_postfix(failed=failed)

      dataset_dir = build(args, data_dir, on_row)
  except (BuildInputError, ave_features.ReleaseError, ave_format.AnnotationError,
          FileExistsError) as error:
    print(f"build: error: {error}", file=sys.stderr)
    return 2
  print(summary_line(args.dataset, summary_of(pathlib.Path(dataset_dir), reused=total == 0)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
