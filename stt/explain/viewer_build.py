"""Builds a run's viewer from what its workdir holds: the record, the best checkpoint, the maps.

Reads (nothing here is written by the core; the viewer only reads what runs leave):
- `config.json`, `class_names.json` (stt/trained_run.py) and the data they name: the rows' frames,
  log-mel and annotations (the test split, or the annotation set `dataset`, e.g. 'vggss');
- the best checkpoint: one inference pass gives the class probabilities [V,C] and the model's
  own maps (`attention`: where, when, when_audio, when_visual, where the model has a "where" and
  a "when"), so a run that was only trained still gets a viewer;
- `<explain dir>/maps/<explainer>.npz` of `--mode=explain` (stt/explain/suite.py), every
  explainer's maps, which replace or join the model's own; and `<explain dir>/video_curves/
  <explainer>.npz` (suite_reports.write_video_curves), each video's perturbation curves.
Writes `<workdir>/viewer/` (`viewer_<dataset>/` for an annotation set) with viewer_page.
"""

from __future__ import annotations

import copy
import functools

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_pipelines import catalogue
from stt import datasets
from stt import input_pipeline
from stt import sharding
from stt import state as state_lib
from stt import trained_run
from stt.explain import explained_split
from stt.explain import panels
from stt.explain import viewer_data
from stt.explain import viewer_page

MODEL_MAPS = ("where", "when", "when_audio", "when_visual")
# The model's own maps are the `attention` explainer's (stt/explain/explainers.py).
MODEL_EXPLAINER = "attention"


class ViewerError(RuntimeError):
  """The workdir or its maps cannot make a viewer; the message says why."""


def explain_dir(workdir: epath.Path, dataset: str) -> epath.Path:
  return workdir / (f"explain_{dataset}" if dataset else "explain")


def viewer_dir(workdir: epath.Path, dataset: str) -> epath.Path:
  return workdir / (f"viewer_{dataset}" if dataset else "viewer")


def _predict_step(graphdef, state, batch) -> dict:
  """Class probabilities [B,C] and the model's own maps of one batch, in inference mode."""
  model, _ = nnx.merge(graphdef, state)
  outputs = model(input_pipeline.model_inputs(batch), train=False)
  explanations = outputs["explanations"]
  return {
      "probabilities": jax.nn.softmax(outputs["logits"].astype(jnp.float32), axis=-1),
      **{key: explanations[key] for key in MODEL_MAPS if key in explanations},
  }


def predict(graphdef, state, source, mesh, config) -> dict:
  """{key: [V,...]} over `source` in split order: probabilities, the model's maps (if it has
  them) and the annotations (input_pipeline.ANNOTATION_KEYS). Every process must call it."""
  step = jax.jit(
      functools.partial(_predict_step, graphdef), out_shardings=sharding.replicated(mesh)
  )
  return input_pipeline.gather_split(
      functools.partial(step, state),
      source,
      global_batch_size=config.eval_batch_size,
      batch_sharding=sharding.batch_sharding(mesh),
  )


def read_npz_by_video(directory: epath.Path, video_ids: np.ndarray) -> dict[str, dict]:
  """{explainer: {key: [V,...]}} of every `<directory>/<explainer>.npz`, rows reordered to
  `video_ids` (the files hold the same rows, in split order, when they come from this run)."""
  found = {}
  if not directory.exists():
    return found
  for path in sorted(directory.glob("*.npz")):
    with path.open("rb") as file, np.load(file, allow_pickle=False) as npz:
      arrays = {key: npz[key] for key in npz.files}
    saved = [str(v) for v in arrays.pop("video_id")]
    position = {video_id: row for row, video_id in enumerate(saved)}
    missing = [v for v in video_ids if v not in position]
    if missing:
      raise ViewerError(
          f"{path} has no maps of {len(missing)} of the {len(video_ids)} videos (first: "
          f"{missing[0]!r}): it is not from this run's split; re-run --mode=explain"
      )
    rows = np.asarray([position[v] for v in video_ids], np.int64)
    found[path.stem] = {key: value[rows] for key, value in arrays.items()}
  return found


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _ids_and_levels(source, count: int) -> tuple[np.ndarray, list[str] | None]:
  """The rows' video ids, and their `level` (e.g. 'off-screen') where the set's records name
  one (None when none does)."""
  ids, levels = [], []
  for row in range(count):  # one record at a time: records hold the frames
    record = source[row]
    ids.append(_text(record["video_id"]))
    levels.append(_text(record.get("level", "")))
  return np.asarray(ids), levels if any(levels) else None


def _media(source, count: int):
  for row in range(count):
    inputs = panels.record_panel_inputs(source[row])
    yield row, inputs["frames"], inputs["log_mel"]


def build(
    workdir: epath.PathLike,
    *,
    dataset: str = "",
    max_videos: int | None = None,
    data_dir: str | None = None,
    config: ml_collections.ConfigDict | None = None,
    trained: tuple | None = None,
) -> epath.Path:
  """Writes the viewer of the run in `workdir`; returns its index.html (written by process 0).

  dataset: '' for the run's test split, or an annotation set of the catalogue (data_pipelines/catalogue.py)
  (the explain run of that set must exist). config: the run's config (default: its config.json);
  data_dir overrides its config.data_dir. trained: (graphdef, state, mesh) of the best checkpoint
  when the caller holds it (training, --mode=explain), else it is restored from the workdir.
  """
  workdir = epath.Path(workdir)
  record = trained_run.read(workdir)
  config = copy.deepcopy(config or record.config)
  if max_videos is not None and max_videos < 1:
    raise ViewerError(f"max_videos must be at least 1; got {max_videos}")
  known = ("", *catalogue.annotation_sets())
  if dataset not in known:
    raise ViewerError(f"dataset={dataset!r}; known: {', '.join(repr(n) for n in known)}")
  maps_dir = explain_dir(workdir, dataset) / "maps"
  if dataset and not maps_dir.exists():
    raise ViewerError(f"{maps_dir} does not exist: run --mode=explain with explain.dataset=...")
  with config.unlocked():
    if data_dir:
      config.data_dir = data_dir
    config.explain.dataset = dataset
  loaded = datasets.load(config)
  source = explained_split.explain_source(config, loaded)
  if trained is None:
    mesh = sharding.make_mesh(config)
    _, graphdef, state = state_lib.restore_best(workdir, config, loaded.num_classes, mesh)
  else:
    graphdef, state, mesh = trained
  outputs = predict(graphdef, state, source, mesh, config)
  count = len(outputs["label"]) if max_videos is None else min(max_videos, len(outputs["label"]))
  outputs = {key: value[:count] for key, value in outputs.items()}
  video_ids, levels = _ids_and_levels(source, count)

  maps = {}
  if {"where", "when"} <= outputs.keys():  # e.g. not AVEL (where only), not late fusion (none)
    maps[MODEL_EXPLAINER] = {key: outputs[key] for key in MODEL_MAPS if key in outputs}
  for name, saved in read_npz_by_video(maps_dir, video_ids).items():
    if name == MODEL_EXPLAINER:  # the saved maps, with the model's per-modality "when"
      saved = {**maps.get(name, {}), **saved}
    maps[name] = saved
  # No maps at all (a model without its own, not explained yet): the page shows the classes.
  labelled = not dataset or catalogue.spec(dataset).labelled
  annotations = dict(outputs)
  if not labelled:
    annotations["label"] = np.full(count, -1)
  summaries, details = viewer_data.build_videos(
      video_ids=video_ids,
      annotations=annotations,
      probabilities=outputs["probabilities"],
      maps=maps,
      class_names=record.class_names,
      tolerance_px=config.explain.pointing_tolerance_px,
      levels=levels,
      video_curves=read_npz_by_video(explain_dir(workdir, dataset) / "video_curves", video_ids),
  )
  first = source[0] if count else {}
  header = viewer_data.page_header(
      title=f"{workdir.name}: {dataset or config.dataset.name} ({count} videos)",
      class_names=record.class_names,
      explainers=list(maps),
      num_segments=np.asarray(outputs["segment_mask"]).shape[-1],
      has_frames=first.get("frames") is not None,
  )
  target = viewer_dir(workdir, dataset)
  if jax.process_index() != 0:
    return target / "index.html"
  return viewer_page.write_page(target, header, summaries, details, _media(source, count))
