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

The datasets (--dataset) are listed below, from data_pipelines/catalogue.py.

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
import textwrap

from absl import logging as absl_logging
from etils import epath
import tensorflow_datasets as tfds
import tqdm

from data_pipelines import ave_features_release
from data_pipelines import ave_format
from data_pipelines import build_args
from data_pipelines import catalogue
from data_pipelines import dataset_spec
from data_pipelines import flickr_soundnet_builder
from data_pipelines import flickr_soundnet_format
from data_pipelines import manifest_converters
from data_pipelines import manifest_format
from data_pipelines import vggss_builder
from data_pipelines import vggss_format
from data_pipelines import video_examples
from data_pipelines.build_args import BuildInputError


def description() -> str:
  """The module doc, then one paragraph per dataset of the catalogue."""
  lines = [__doc__, "Datasets:"]
  for name, spec in catalogue.DATASETS.items():
    lines += textwrap.wrap(
        spec.summary, width=100, initial_indent=f"  {name:<16} ", subsequent_indent=" " * 19
    )
  return "\n".join(lines)


def _beam_options(args):
  """PipelineOptions for --beam_runner, or None for the local process pool."""
  if not args.beam_runner:
    return None
  try:
    from data_pipelines import video_beam  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise BuildInputError(
        f"--beam_runner needs apache-beam ({error}); install it with pip install -e .[beam]"
    ) from None
  return video_beam.pipeline_options(args.beam_runner, args.beam_num_workers, args.beam_args)


def request_of(args, data_dir: epath.Path, on_row=None, beam_options=None):
  """(the dataset's record, the BuildRequest of the CLI's args)."""
  spec = catalogue.spec(args.dataset)
  decode = dataset_spec.Decode.of(args) if spec.cli_decode is None else spec.cli_decode[0]
  return spec, dataset_spec.BuildRequest(
      data_dir=data_dir,
      decode=decode,
      options={flag: getattr(args, flag) for flag in spec.option_flags},
      manual_dir=args.manual_dir,
      num_workers=args.num_workers,
      decode_timeout_s=args.decode_timeout_s,
      on_row=on_row,
      beam_options=beam_options,
  )


def plan(args, data_dir: epath.Path) -> tuple[int, dict]:
  """(rows the build will write or refuse, 0 when already built; what build() needs).

  Raises BuildInputError / ReleaseError / ManifestError naming the download when files lack."""
  spec, request = request_of(args, data_dir)
  built_dir = spec.builder.dataset_dir(data_dir, request.decode, request.options)
  if (built_dir / "dataset_info.json").exists():
    return 0, {}
  return spec.builder.plan(request)


def build(args, data_dir: epath.Path, planned: dict, on_row, beam_options=None) -> epath.Path:
  """Builds (or keeps) the dataset; returns its directory."""
  spec, request = request_of(args, data_dir, on_row, beam_options)
  return spec.builder.build(request, planned)


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
  args = build_args.parse_args(argv, description())
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
      ave_features_release.ReleaseError,
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
  spec = catalogue.spec(args.dataset)
  if spec.defects_line is not None:
    print(spec.defects_line(dataset_dir))
  print(summary_line(args.dataset, summary_of(epath.Path(dataset_dir), reused=total == 0)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
