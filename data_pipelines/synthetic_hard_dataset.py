"""One level of the harder synthetic set as a built TFDS dataset: generated and built once.

    <data_dir>/downloads/manual/<tag>/                the level's AVE-format directory of MP4s
    <data_dir>/ave_videos/<tag>_t<T>_f<F>_s<S>/<ver>/  the built array_record dataset

`tag` = `synthetic_hard<level>_<sha1[:8]>` of the settings and synthetic_hard.GENERATOR_VERSION,
so each level, setting and generator version has its own cached set (the default `synthetic`
set's names and files are untouched). The built examples are the AVE builder's (frames, audio,
label, per-segment labels, the source's boxes at event segments); the rest of the truth
(source_on_screen, look-alike boxes, num_instances, snr_db, pulses) is `truth(data_dir,
settings)`, keyed by video_id.

Build CLI: python -m data_pipelines.build --dataset=synthetic_hard --data_dir=OUT
  --synthetic_config=hard2[,smoke] --num_segments=10 --frames_per_segment=4 --frame_size=64
(the decode of each level is synthetic_hard.BUILD_SIZES[level]).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os

from etils import epath

from data_pipelines import ave_builder
from data_pipelines import dataset_spec
from data_pipelines import synthetic_files
from data_pipelines import synthetic_hard as hard
from data_pipelines import synthetic_hard_files as hard_files

CLI_LEVELS = {f"hard{level}": level for level in hard.LEVELS}


def tag(settings: dict) -> str:
  spec = json.dumps({**settings, "generator_version": hard.GENERATOR_VERSION}, sort_keys=True)
  return f"synthetic_hard{settings['level']}_" + hashlib.sha1(spec.encode()).hexdigest()[:8]


def raw_dir(data_dir, settings: dict) -> epath.Path:
  return epath.Path(data_dir) / "downloads" / "manual" / tag(settings)


def truth(data_dir, settings: dict) -> dict[str, dict]:
  """{video_id: scenes.jsonl row} of the level's generated set (synthetic_hard_files)."""
  return hard_files.read_truth(raw_dir(data_dir, settings))


def prepare(data_dir, settings: dict, decode: dataset_spec.Decode, *, num_workers=1, on_row=None):
  """Generates and builds the level's set unless cached; returns the built directory."""
  if settings["level"] == 2 and decode.frames_per_segment < hard.PULSE_STEPS_PER_SECOND:
    raise dataset_spec.BuildInputError(
        f"level 2 needs --frames_per_segment >= {hard.PULSE_STEPS_PER_SECOND} (one frame per "
        "pulse step), or its sound-to-change synchrony is not visible"
    )
  data_dir = epath.Path(data_dir)
  name = tag(settings)
  built_dir = ave_builder.dataset_dir(data_dir, name, decode)
  if (built_dir / "dataset_info.json").exists():
    return built_dir
  built_dir.parent.mkdir(parents=True, exist_ok=True)
  local = os.path.isdir(os.fspath(built_dir.parent))
  lock_path = built_dir.parent / f"{built_dir.name}.lock"
  with synthetic_files.exclusive(lock_path) if local else contextlib.nullcontext():
    if (built_dir / "dataset_info.json").exists():
      return built_dir
    raw = raw_dir(data_dir, settings)
    hard_files.generate(raw, hard.HardSpec(**settings), num_workers=num_workers)
    ave_builder.build(
        raw,
        data_dir,
        tag=name,
        num_segments=decode.num_segments,
        frames_per_segment=decode.frames_per_segment,
        frame_size=decode.frame_size,
        num_workers=num_workers,
        on_row=on_row,
    )
  return built_dir


class SyntheticHardBuild:
  """The DatasetBuilder of the `synthetic_hard` record. options: `settings` (a config's
  `synthetic_hard` section) or, from the build CLI, `synthetic_config` ('hard1'..'hard3',
  optionally ',smoke'; default level 1)."""

  def settings(self, options) -> dict:
    if "settings" in options:
      return dict(options["settings"])
    words = [a.strip() for a in options["synthetic_config"].split(",") if a.strip()]
    unknown = sorted(set(words) - set(CLI_LEVELS) - {"smoke"})
    levels = [CLI_LEVELS[w] for w in words if w in CLI_LEVELS]
    if unknown or len(levels) > 1:
      raise dataset_spec.BuildInputError(
          f"--synthetic_config={options['synthetic_config']}: give one of "
          f"{', '.join(CLI_LEVELS)} and optionally smoke"
      )
    return hard.default_settings(levels[0] if levels else 1, "smoke" if "smoke" in words else "")

  def dataset_dir(self, data_dir, decode: dataset_spec.Decode, options) -> epath.Path:
    return ave_builder.dataset_dir(data_dir, tag(self.settings(options)), decode)

  def plan(self, request: dataset_spec.BuildRequest) -> tuple[int, dict]:
    return hard.HardSpec(**self.settings(request.options)).num_videos, {}

  def build(self, request: dataset_spec.BuildRequest, planned: dict) -> epath.Path:
    del planned
    return prepare(
        request.data_dir,
        self.settings(request.options),
        request.decode,
        num_workers=request.num_workers,
        on_row=request.on_row,
    )
