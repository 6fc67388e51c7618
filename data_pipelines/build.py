r"""Builds a dataset as TFDS array_record under a data dir, with a progress bar and a summary.

  python -m data_pipelines.build --dataset=ave_features --manual_dir=DIR --data_dir=OUT
  python -m data_pipelines.build --dataset=ave --manual_dir=DIR --data_dir=OUT [--frame_size=224]
  python -m data_pipelines.build --dataset=synthetic --data_dir=OUT [--synthetic_config=smoke]
  python -m data_pipelines.build --dataset=manifest --manual_dir=DIR --tag=NAME --data_dir=OUT
  python -m data_pipelines.build --dataset=manifest --manifest=CSV --tag=NAME --data_dir=OUT
  python -m data_pipelines.build --dataset=kinetics_sounds --manual_dir=DIR --data_dir=OUT
  python -m data_pipelines.build --dataset=vggsound --manual_dir=DIR --data_dir=OUT
  python -m data_pipelines.build --dataset=vggss --manual_dir=DIR --data_dir=OUT \
      [--annotated_frame=middle|frame125] [--vggsound_dataset_dir=BUILT_VGGSOUND]
  python -m data_pipelines.build --dataset=flickr_soundnet --manual_dir=DIR --data_dir=OUT

Datasets:
  ave_features     the AVE feature release (h5 files), see data_pipelines/ave_features.py
  ave              an AVE-format directory of videos, decoded by data_pipelines/ave_builder.py
  synthetic        generated here (no download), as `configs/synthetic.py:<synthetic_config>` needs
  manifest         the clips of a CSV manifest `path,label[,start,end][,split]` (DIR/manifest.csv
                   or --manifest=CSV; a relative clip path is relative to the CSV's directory),
                   see data_pipelines/manifest_format.py
  kinetics_sounds  Kinetics-400 CSVs + clips → the classes of configs/kinetics_sounds.py
  vggsound         vggsound.csv + clips, see configs/vggsound.py
  vggss            VGG-SS vggss.json (+ vggss_test.csv, vggsound.csv) + the VGGSound clips, a test
                   split with boxes, see data_pipelines/vggss_builder.py
  flickr_soundnet  flickr_test.csv + Annotations/<id>.xml + <id>.jpg/<id>.wav (or <id>.mp4), an
                   unlabelled test split with boxes, see data_pipelines/flickr_soundnet_builder.py

The video datasets (ave, manifest, kinetics_sounds, vggsound) decode in --num_workers local
child processes (a clip whose decoder crashes, or is still decoding after --decode_timeout_s,
fails alone), or on Apache Beam with --beam_runner=DirectRunner|DataflowRunner|...
[--beam_num_workers=N]; other --flags are passed to Beam's PipelineOptions (e.g. --project,
--region, --temp_location, --setup_file=./pyproject.toml for Dataflow). Beam needs
`pip install -e .[beam]`.

When manual_dir lacks files, the message says where to download them and where to put them.
An already built dataset is kept. The last line is the summary:
`<dataset>: built N (train=..., val=..., test=...), skipped S, failed F[, warned W] -> <dir>`;
skipped counts the examples of a dataset that was already built, failed the rows and videos that
could not be used (listed with their reasons in failures.jsonl next to the dataset; for
kinetics_sounds and vggsound this includes clips that were not downloaded), warned (shown when
not 0) the clips built despite decoder notes such as skipped corrupt data (listed in
warnings.jsonl; their damaged segments are marked in the `damaged_segments` feature). A flag
that the dataset does not read (e.g. --frame_size for synthetic, whose size is its config's) is
an error, never ignored. Exit status 2 on bad input, with a one-line message.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import logging as absl_logging
from etils import epath
import tensorflow_datasets as tfds
import tqdm

from data_pipelines import ave_builder
from data_pipelines import ave_features
from data_pipelines import ave_format
from data_pipelines import build_args
from data_pipelines import flickr_soundnet_builder
from data_pipelines import flickr_soundnet_format
from data_pipelines import kinetics_sounds_classes
from data_pipelines import manifest_builder
from data_pipelines import manifest_converters
from data_pipelines import manifest_format
from data_pipelines import synthetic
from data_pipelines import synthetic_dataset
from data_pipelines import vggss_builder
from data_pipelines import vggss_format
from data_pipelines import vggss_from_built
from data_pipelines import video_examples
from data_pipelines.build_args import BuildInputError

AVE_VIDEOS_INSTRUCTIONS = """\
Download AVE_Dataset.zip from https://drive.google.com/open?id=1FjKwe79e0u96vdjIVwfRQ1V6SoDHe7kK
(linked from https://github.com/YapengTian/AVE-ECCV18) and unzip it into {manual_dir}, so that it
holds AVE/<video_id>.mp4, Annotations.txt, trainSet.txt, valSet.txt and testSet.txt."""
MANIFEST_INSTRUCTIONS = """\
Write a CSV manifest with the header path,label[,start,end][,split] to {manifest} (or pass
--manifest=FILE): one row per clip, path relative to the manifest's directory or absolute, start
and end the event in seconds (empty: the whole clip), split train|val|test (empty: by a hash of
the path). See data_pipelines/manifest_format.py."""
KINETICS_SOUNDS_INSTRUCTIONS = """\
Download the Kinetics-400 annotations train.csv, validate.csv (or val.csv) and test.csv from
https://github.com/cvdfoundation/kinetics-dataset (k400 annotations; or the 2017 release
https://storage.googleapis.com/deepmind-media/Datasets/kinetics400.tar.gz) into {manual_dir}
(or {manual_dir}/annotations). Put the clips of the 31 classes of configs/kinetics_sounds.py
anywhere under {manual_dir}, named <youtube_id>_<time_start:06d>_<time_end:06d>.mp4: the
cvdfoundation k400 video archives use these names; to fetch only these classes from YouTube,
cut [time_start, time_end] of each row (e.g. yt-dlp --download-sections)."""
VGGSOUND_INSTRUCTIONS = """\
Download vggsound.csv from https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (also in
https://github.com/hche11/VGGSound, data/vggsound.csv) into {manual_dir}. Put the 10 s clips
anywhere under {manual_dir}, named <ytid>_<start:06d>.mp4: for each row, seconds
[start, start+10) of https://www.youtube.com/watch?v=<ytid> (e.g. yt-dlp --download-sections)."""
KINETICS_CSV_NAMES = ("train.csv", "validate.csv", "val.csv", "test.csv")


def _beam_options(args):
  """PipelineOptions for --beam_runner, or None for the local process pool."""
  if not args.beam_runner:
    return None
  try:
    from data_pipelines import video_beam  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise BuildInputError(
        f"--beam_runner needs apache-beam ({error}); install it with " "pip install -e .[beam]"
    ) from None
  return video_beam.pipeline_options(args.beam_runner, args.beam_num_workers, args.beam_args)


def _ave_videos_dir(args, data_dir: epath.Path) -> epath.Path:
  name = ave_builder.config_name("ave", args.num_segments, args.frames_per_segment, args.frame_size)
  return data_dir / "ave_videos" / name / str(ave_builder.AveVideos.VERSION)


def _manifest_tag(args) -> str:
  return args.tag if args.dataset == "manifest" else args.dataset


def _manifest_dataset_dir(args, data_dir: epath.Path) -> epath.Path:
  return manifest_builder.dataset_dir(
      data_dir, _manifest_tag(args), args.num_segments, args.frames_per_segment, args.frame_size
  )


def _vggss_dataset_dir(args, data_dir: epath.Path) -> epath.Path:
  return vggss_builder.dataset_dir(
      data_dir, args.annotated_frame, args.num_segments, args.frames_per_segment, args.frame_size
  )


def _synthetic_settings(args) -> dict:
  """The generator settings of `configs/synthetic.py:<--synthetic_config>`."""
  presets = [a.strip() for a in args.synthetic_config.split(",") if a.strip()]
  unknown = sorted(set(presets) - set(synthetic.PRESETS))
  if unknown:
    known = ", ".join(p for p in synthetic.PRESETS if p)
    raise BuildInputError(
        f"--synthetic_config={args.synthetic_config}: configs/synthetic.py: "
        f"unknown arguments {unknown}; known: {known}"
    )
  return synthetic.default_settings("smoke" if "smoke" in presets else "")


def _prepare_synthetic(args, data_dir: epath.Path, on_row=None) -> epath.Path:
  """Builds (or finds) the synthetic set exactly where configs/synthetic.py looks for it."""
  return synthetic_dataset.prepare(
      data_dir,
      _synthetic_settings(args),
      num_workers=args.num_workers,
      on_row=on_row,
      **synthetic.BUILD_SIZES,
  )


def _kinetics_csvs(manual_dir: epath.Path) -> list[epath.Path]:
  found = [
      directory / name
      for directory in (manual_dir, manual_dir / "annotations")
      for name in KINETICS_CSV_NAMES
      if (directory / name).exists()
  ]
  names = {path.name for path in found}
  if "train.csv" not in names or not names & {"validate.csv", "val.csv"}:
    raise BuildInputError(
        f"{manual_dir} lacks the Kinetics-400 train.csv and validate.csv.\n"
        + KINETICS_SOUNDS_INSTRUCTIONS.format(manual_dir=manual_dir)
    )
  return found


def _convert(args, data_dir: epath.Path) -> manifest_converters.Conversion:
  """Writes the manifest of kinetics_sounds / vggsound under the data dir; prints its counts."""
  manual_dir = epath.Path(args.manual_dir)
  out_path = data_dir / "downloads" / "manual" / args.dataset / "manifest.csv"
  if args.dataset == "kinetics_sounds":
    conversion = manifest_converters.kinetics_sounds(
        _kinetics_csvs(manual_dir), manual_dir, out_path, kinetics_sounds_classes.CLASS_NAMES
    )
    instructions = KINETICS_SOUNDS_INSTRUCTIONS
  else:
    if not (manual_dir / "vggsound.csv").exists():
      raise BuildInputError(
          f"{manual_dir} lacks vggsound.csv.\n"
          + VGGSOUND_INSTRUCTIONS.format(manual_dir=manual_dir)
      )
    conversion = manifest_converters.vggsound(manual_dir / "vggsound.csv", manual_dir, out_path)
    instructions = VGGSOUND_INSTRUCTIONS
  if conversion.missing_clips == sum(conversion.rows.values()):
    raise BuildInputError(
        f"no clip of the {args.dataset} annotations is under {manual_dir}.\n"
        + instructions.format(manual_dir=manual_dir)
    )
  print(f"{args.dataset}: {conversion}", file=sys.stderr)
  return conversion


def plan(args, data_dir: epath.Path) -> tuple[int, dict]:
  """(rows the build will write or refuse, 0 when already built; what build() needs).

  Raises BuildInputError / ReleaseError / ManifestError naming the download when files lack."""
  if args.dataset == "ave_features":
    if (ave_features.dataset_dir(data_dir, args.visual_dtype) / "dataset_info.json").exists():
      return 0, {}
    release = ave_features.check_release(args.manual_dir)  # says what to download if needed
    return sum(len(order) for order in release.orders.values()), {}
  if args.dataset == "ave":
    if (_ave_videos_dir(args, data_dir) / "dataset_info.json").exists():
      return 0, {}
    manual_dir = epath.Path(args.manual_dir)
    needed = ["Annotations.txt", *ave_format.SPLIT_FILES.values(), "AVE"]
    missing = [name for name in needed if not (manual_dir / name).exists()]
    if missing:
      raise BuildInputError(
          f"{manual_dir} lacks {', '.join(missing)}.\n"
          + AVE_VIDEOS_INSTRUCTIONS.format(manual_dir=manual_dir)
      )
    rows = sum(len(ave_format.read_split(manual_dir, split)) for split in ave_format.SPLIT_FILES)
    return rows, {}
  if args.dataset == "vggss":
    if (_vggss_dataset_dir(args, data_dir) / "dataset_info.json").exists():
      return 0, {}
    annotations, _, classes_from = vggss_builder.read_manual_dir(args.manual_dir)
    if args.vggsound_dataset_dir:
      classes_from = f"the built VGGSound {args.vggsound_dataset_dir}"
    print(
        f"vggss: {len(annotations.entries)} entries ({annotations.summary()}); classes from "
        f"{classes_from}",
        file=sys.stderr,
    )
    return len(annotations.entries), {}
  if args.dataset == "flickr_soundnet":
    if (
        flickr_soundnet_builder.dataset_dir(
            data_dir, args.num_segments, args.frames_per_segment, args.frame_size
        )
        / "dataset_info.json"
    ).exists():
      return 0, {}
    return flickr_soundnet_builder.read_manual_dir(args.manual_dir).counts["ids"], {}
  if args.dataset in manifest_builder.MANIFEST_DATASETS:
    if (_manifest_dataset_dir(args, data_dir) / "dataset_info.json").exists():
      return 0, {}
    if args.dataset == "manifest":
      path = epath.Path(args.manifest or epath.Path(args.manual_dir) / "manifest.csv")
      # Relative clip paths are read relative to the manifest's directory (manifest_format).
      if not path.exists():
        raise BuildInputError(
            f"no manifest at {path}.\n" + MANIFEST_INSTRUCTIONS.format(manifest=path)
        )
      class_names = None  # the sorted labels of the manifest
    else:
      conversion = _convert(args, data_dir)
      path, class_names = conversion.manifest_path, conversion.class_names
    manifest = manifest_format.read(path)
    return manifest.num_lines, {"manifest": manifest, "class_names": class_names}
  settings = _synthetic_settings(args)
  if (
      synthetic_dataset.dataset_dir(data_dir, settings, **synthetic.BUILD_SIZES)
      / "dataset_info.json"
  ).exists():
    return 0, {}
  return settings["num_train"] + settings["num_val"] + settings["num_test"], {}


def build(args, data_dir: epath.Path, planned: dict, on_row, beam_options=None) -> epath.Path:
  """Builds (or keeps) the dataset; returns its directory."""
  video = dict(
      num_segments=args.num_segments,
      frames_per_segment=args.frames_per_segment,
      frame_size=args.frame_size,
      num_workers=args.num_workers,
      decode_timeout_s=args.decode_timeout_s,
      on_row=on_row,
      beam_options=beam_options,
  )
  if args.dataset == "ave_features":
    return ave_features.build(
        args.manual_dir, data_dir, visual_dtype=args.visual_dtype, on_row=on_row
    ).dataset_dir
  if args.dataset == "ave":
    return ave_builder.build(args.manual_dir, data_dir, tag="ave", **video).dataset_dir
  if args.dataset == "vggss" and args.vggsound_dataset_dir:
    return vggss_from_built.build(
        args.manual_dir,
        data_dir,
        args.vggsound_dataset_dir,
        annotated_frame=args.annotated_frame,
        num_segments=args.num_segments,
        frames_per_segment=args.frames_per_segment,
        frame_size=args.frame_size,
        on_row=on_row,
    ).dataset_dir
  if args.dataset == "vggss":
    return vggss_builder.build(
        args.manual_dir, data_dir, annotated_frame=args.annotated_frame, **video
    ).dataset_dir
  if args.dataset == "flickr_soundnet":
    return flickr_soundnet_builder.build(args.manual_dir, data_dir, **video).dataset_dir
  if args.dataset in manifest_builder.MANIFEST_DATASETS:
    if not planned:  # already built
      return _manifest_dataset_dir(args, data_dir)
    return manifest_builder.build(
        planned["manifest"],
        data_dir,
        tag=_manifest_tag(args),
        class_names=planned["class_names"],
        **video,
    ).dataset_dir
  # The trainer's own preparation step, so the result is exactly what the config looks for.
  return _prepare_synthetic(args, data_dir, on_row=on_row)


def summary_of(dataset_dir: epath.Path, reused: bool) -> video_examples.BuildSummary:
  """The summary of a built dataset directory (split sizes, failures.jsonl, warnings.jsonl)."""
  return video_examples.summary_of_built(dataset_dir, reused)


def summary_line(dataset: str, summary: video_examples.BuildSummary) -> str:
  """`<dataset>: built N (train=..), skipped S, failed F[, warned W] -> <dir>`; warned only when
  W > 0."""
  total = sum(summary.built.values())
  splits = ", ".join(f"{split}={n}" for split, n in summary.built.items())
  counts = (
      f"built 0, skipped {total} (already built: {splits})"
      if summary.reused
      else f"built {total} ({splits}), skipped 0"
  )
  warned = f", warned {summary.warned}" if summary.warned else ""
  return f"{dataset}: {counts}, failed {summary.failed}{warned} -> {summary.dataset_dir}"


def main(argv=None) -> int:
  args = build_args.parse_args(argv, __doc__)
  data_dir = epath.Path(
      args.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  ).expanduser()
  tfds.disable_progress_bar()  # ours counts rows over all splits
  absl_logging.set_verbosity(absl_logging.ERROR)
  logging.getLogger().setLevel(logging.ERROR)  # unreadable videos are counted and listed instead
  try:
    beam_options = _beam_options(args)
    total, planned = plan(args, data_dir)
    if beam_options is not None and total:
      print(
          f"building {args.dataset} on Beam ({args.beam_runner}): {total} rows; the runner "
          "shows progress (counters stt_build/decoded, stt_build/failed)",
          file=sys.stderr,
      )
    with tqdm.tqdm(
        total=total,
        desc=f"building {args.dataset}",
        unit="video",
        file=sys.stderr,
        disable=total == 0 or beam_options is not None,
    ) as progress:
      failed = 0

      def on_row(row_failed: bool):
        nonlocal failed
        failed += row_failed
        progress.update(1)
        if row_failed:
          progress.set_postfix(failed=failed)

      dataset_dir = build(args, data_dir, planned, on_row, beam_options)
  except (
      BuildInputError,
      ave_features.ReleaseError,
      ave_format.AnnotationError,
      manifest_format.ManifestError,
      manifest_converters.ConversionError,
      video_examples.BuildError,
      FileExistsError,
      vggss_format.VggssError,
      vggss_builder.VggssInputError,
      flickr_soundnet_builder.FlickrInputError,
      flickr_soundnet_format.FlickrSoundnetError,
  ) as error:
    print(f"build: error: {error}", file=sys.stderr)
    return 2
  if args.dataset == "vggss":
    print(vggss_builder.defects_line(dataset_dir))
  if args.dataset == "flickr_soundnet":
    print(flickr_soundnet_builder.defects_line(dataset_dir))
  print(summary_line(args.dataset, summary_of(epath.Path(dataset_dir), reused=total == 0)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
