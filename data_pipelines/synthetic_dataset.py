"""The embedded synthetic set as a built TFDS dataset: generated and built once, then cached.

    <data_dir>/downloads/manual/<tag>/                the AVE-format directory of MP4s
    <data_dir>/ave_videos/<tag>_t<T>_f<F>_s<S>/<ver>/  the built array_record dataset

`tag` changes whenever a generator setting or the generator's version changes, so two settings
or generators never share a directory.
The trainer (stt.datasets) and `python -m data_pipelines.build --dataset=synthetic` both call
`prepare`, so the build CLI writes exactly what a config looks for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from typing import Callable

from etils import epath

from data_pipelines import ave_builder
from data_pipelines import dataset_spec
from data_pipelines import synthetic
from data_pipelines import synthetic_files


def tag(settings: dict) -> str:
  """`synthetic_<sha1[:8]>` of the generator settings (a config's `synthetic` section) and
  `synthetic.GENERATOR_VERSION`, so a generator change names a new set."""
  spec = json.dumps({**settings, "generator_version": synthetic.GENERATOR_VERSION}, sort_keys=True)
  return "synthetic_" + hashlib.sha1(spec.encode()).hexdigest()[:8]


def dataset_dir(
    data_dir: epath.PathLike, settings: dict, decode: dataset_spec.Decode
) -> epath.Path:
  """Where `prepare` puts the built set for these settings, decoded as `decode`."""
  return ave_builder.dataset_dir(data_dir, tag(settings), decode)


def prepare(
    data_dir: epath.PathLike,
    settings: dict,
    decode: dataset_spec.Decode,
    *,
    num_workers: int = 1,
    on_row: Callable[[bool], None] | None = None,
) -> epath.Path:
  """Generates and builds the set unless it is already cached; returns its directory.

  settings: SyntheticSpec fields (e.g. `synthetic.default_settings()`). on_row(failed), if
  given, is called once per video as it is built (for a progress bar).
  """
  data_dir = epath.Path(data_dir)
  built_dir = dataset_dir(data_dir, settings, decode)
  if (built_dir / "dataset_info.json").exists():
    return built_dir
  # Parallel runs on a fresh machine take turns: one generates and builds, the others wait and
  # then find its build. (flock needs a local file system; on a bucket the builds race, and the
  # TFDS writer's FileExistsError fallback in video_examples keeps the first one.)
  built_dir.parent.mkdir(parents=True, exist_ok=True)
  local = os.path.isdir(os.fspath(built_dir.parent))
  lock_path = built_dir.parent / f"{built_dir.name}.lock"
  with synthetic_files.exclusive(lock_path) if local else contextlib.nullcontext():
    if (built_dir / "dataset_info.json").exists():
      return built_dir
    return _generate_and_build(
        data_dir, settings, built_dir, decode, num_workers=num_workers, on_row=on_row
    )


def _generate_and_build(
    data_dir: epath.Path,
    settings: dict,
    built_dir: epath.Path,
    decode: dataset_spec.Decode,
    *,
    num_workers: int,
    on_row: Callable[[bool], None] | None,
) -> epath.Path:
  name = tag(settings)
  raw_dir = data_dir / "downloads" / "manual" / name
  if not (raw_dir / synthetic_files.COMPLETE_MARKER).exists():
    logging.info("Generating the synthetic AV-event set in %s", raw_dir)
    synthetic_files.generate(raw_dir, synthetic.SyntheticSpec(**settings), num_workers=num_workers)
  logging.info("Building the TFDS dataset from %s", raw_dir)
  summary = ave_builder.build(
      raw_dir,
      data_dir,
      tag=name,
      num_segments=decode.num_segments,
      frames_per_segment=decode.frames_per_segment,
      frame_size=decode.frame_size,
      num_workers=num_workers,
      on_row=on_row,
  )
  logging.info("Synthetic set: %s", summary)
  return built_dir
