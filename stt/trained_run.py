"""What a workdir records about its run, so tools can use a trained model from the workdir alone.

    <workdir>/config.json        the full config the run was started with
    <workdir>/class_names.json   the dataset's class names, in label order

Both are written by process 0 when training starts (`save`) and read by e.g.
`python -m stt.explain.video --workdir=W` (`read`).
"""

from __future__ import annotations

import dataclasses
import json

import ml_collections
from etils import epath

CONFIG_FILE = "config.json"
CLASS_NAMES_FILE = "class_names.json"


class RunInfoError(RuntimeError):
  """The workdir holds no (readable) record of a run. The message says what is missing."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
  config: ml_collections.ConfigDict
  class_names: list[str]


def save(workdir: epath.PathLike, config: ml_collections.ConfigDict,
         class_names: list[str]) -> None:
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
    raise RunInfoError(f"{workdir} has no {' or '.join(missing)}: it is not the workdir of a "
                       "run trained with `python -m stt.main --mode=train`")
  try:
    config = ml_collections.ConfigDict(_lists_to_tuples(json.loads(paths[0].read_text())))
    class_names = json.loads(paths[1].read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise RunInfoError(f"cannot read the run record in {workdir}: {error}") from error
  if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
    raise RunInfoError(f"{paths[1]} is not a JSON list of class names")
  return RunInfo(config, class_names)
