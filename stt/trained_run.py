"""What a workdir records about its run, so tools can use a trained model from the workdir alone.

    <workdir>/config.json        the full config the run was started with
    <workdir>/class_names.json   the dataset's class names, in label order
    <workdir>/results.json       the final metrics (training, then --mode=explain)

The first two are written by process 0 when training starts (`save`) and read by e.g.
`python -m stt.explain.video --workdir=W` (`read`) and `--mode=explain` (`with_trained_model`).
"""

from __future__ import annotations

import copy
import dataclasses
import json

from etils import epath
import ml_collections
import numpy as np

CONFIG_FILE = "config.json"
CLASS_NAMES_FILE = "class_names.json"
RESULTS_FILE = "results.json"
# The config sections that define the trained model and the data it was trained and tested on.
TRAINED_SECTIONS = ("task", "dataset", "model", "loss", "localization")


class RunInfoError(RuntimeError):
  """The workdir holds no (readable) record of a run. The message says what is missing."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
  config: ml_collections.ConfigDict
  class_names: list[str]


def save(
    workdir: epath.PathLike, config: ml_collections.ConfigDict, class_names: list[str]
) -> None:
  """Writes config.json and class_names.json into `workdir` (call on process 0 only)."""
  workdir = epath.Path(workdir)
  (workdir / CONFIG_FILE).write_text(config.to_json(indent=1, sort_keys=True))
  (workdir / CLASS_NAMES_FILE).write_text(json.dumps(list(class_names), indent=1))


def _lists_to_tuples(value):
  """JSON has no tuples; configs use tuples for fixed-size fields (grid_size, explainers)."""
  if isinstance(value, dict):
    return {key: _lists_to_tuples(item) for key, item in value.items()}
  if isinstance(value, list):
    return tuple(_lists_to_tuples(item) for item in value)
  return value


def read(workdir: epath.PathLike) -> RunInfo:
  """The config and class names of the run trained in `workdir`."""
  workdir = epath.Path(workdir)
  paths = [workdir / CONFIG_FILE, workdir / CLASS_NAMES_FILE]
  missing = [path.name for path in paths if not path.exists()]
  if missing:
    raise RunInfoError(
        f"{workdir} has no {' or '.join(missing)}: it is not the workdir of a "
        "run trained with `python -m stt.main --mode=train`"
    )
  try:
    config = ml_collections.ConfigDict(_lists_to_tuples(json.loads(paths[0].read_text())))
    class_names = json.loads(paths[1].read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise RunInfoError(f"cannot read the run record in {workdir}: {error}") from error
  if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
    raise RunInfoError(f"{paths[1]} is not a JSON list of class names")
  return RunInfo(config, class_names)


def _flatten(value, prefix: str = "") -> dict:
  if isinstance(value, dict):
    return {
        key: leaf
        for name, item in value.items()
        for key, leaf in _flatten(item, f"{prefix}{name}.").items()
    }
  return {prefix.rstrip("."): value}


def _is_set(given: dict, saved: dict, key: str) -> bool:
  """False for a given None (a field derived from the data, e.g. model.grid_size, recorded as
  what was derived) and for a key the record predates."""
  return given.get(key) is not None and key in saved


def with_trained_model(
    config: ml_collections.ConfigDict, workdir: epath.PathLike
) -> tuple[ml_collections.ConfigDict, list[str]]:
  """(config with TRAINED_SECTIONS taken from the run's config.json, the keys that differed).

  Evaluating a checkpoint needs the model and data it was trained with, whatever overrides the
  evaluation command line has (or forgot); everything else (explain.*, data_dir, batch sizes)
  comes from `config`.
  """
  recorded = read(workdir).config
  given_dict, recorded_dict = config.to_dict(), recorded.to_dict()
  merged = copy.deepcopy(config)
  differences = []
  with merged.unlocked():
    for section in TRAINED_SECTIONS:
      if section not in recorded_dict:
        continue
      given = _flatten(given_dict.get(section), section + ".")
      saved = _flatten(recorded_dict[section], section + ".")
      differences += [
          f"{key}: {given.get(key)!r} -> {saved.get(key)!r}"
          for key in sorted(given.keys() | saved.keys())
          if given.get(key) != saved.get(key) and _is_set(given, saved, key)
      ]
      merged[section] = recorded[section]
  return merged, differences


def write_results(workdir: epath.PathLike, results: dict, *, write: bool = True) -> dict:
  """Writes results.json (strict JSON: NaN is null) and returns what it holds.

  Keys of an existing results.json that `results` lacks are kept when both describe the same
  checkpoint (equal `best_step`): re-running a finished training keeps the --mode=explain
  figures of that checkpoint, and explain runs with other explainers add to each other. A
  different best step replaces the file.
  """
  path = epath.Path(workdir) / RESULTS_FILE
  merged = dict(results)
  if path.exists():
    try:
      earlier = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
      earlier = {}
    if earlier.get("best_step") == results.get("best_step") or "best_step" not in results:
      merged = {**earlier, **results}
  if write:
    strict = {
        key: None if isinstance(value, float) and not np.isfinite(value) else value
        for key, value in merged.items()
    }
    path.write_text(json.dumps(strict, indent=1, sort_keys=True, allow_nan=False))
  return merged
