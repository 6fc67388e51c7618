"""Sanity checks of the explanations (`python -m stt.main ... --mode=sanity`).

The model parameter randomisation test of Adebayo et al. 2018, "Sanity Checks for Saliency
Maps". A model's parameter blocks (`PARAMETER_BLOCKS`, from the output down to the inputs) are
re-initialised: replaced by the parameters of a freshly initialised model of the same config
(`config.sanity.seed`), i.e. drawn again from the initialisers training started from.
  cascading:   blocks 1..k randomised, for k = 1..K (from the top block down);
  independent: block k alone, for k = 2..K (k = 1 is the cascade's first step).
Non-parameter state (BatchNorm statistics) is kept, as in the paper. For each step and each
explainer in `config.sanity.explainers` that the model can have, on the first
`config.sanity.num_videos` test videos, maps of the ground-truth class (as the pointing games):
  where_spearman   Spearman rank correlation of |where| [T,h,w] (valid segments) between the
                   randomised and the trained model, per video, mean over videos: the paper's
                   absolute-value rank correlation;
  when_spearman    the same for |when| over the valid segments;
  where_spearman_signed, when_spearman_signed   the same of the signed maps (Adebayo et al.
                   report both: a map whose sign flips keeps its |map| ranking);
  pointing_spatial, pointing_temporal   the pointing games of the randomised model's maps;
and per step the accuracy on those videos. A map that is constant over a video has no ranking:
its correlation with a non-constant map is 0, with another constant map 1 (scipy gives NaN).
An explainer whose maps do not follow the model fails the check by keeping ρ near 1 while the
model is destroyed. Explainers that do not read the model at all (their record's `reads_model`
False: `random`, `center`; ρ = 1 by construction) are left out. Rollout's spatial scores on STAN
are attention's (`Explainer.spatial_is_attention`), and a map the explainer does not give on the
model (`Explainer.dimensions`: AVEL's attention has no "when") is not scored: NaN here, "—" in
the tables.

Cells that are 1 by construction: an explainer computed from the model's own explanations alone
(its record's `map_sources`: attention, rollout) cannot change while only blocks above the
layer that makes its map are randomised (STAN's "where" is made by its spatial attention, so
randomising the classifier, the temporal pooling and the transformer leaves it as it was).
`blocks_above_maps` names those blocks per map, from the model's `EXPLANATION_BLOCKS` and the
block order; the tables mark such cells so that no reader takes ρ = 1 there for a failed check.

results.json keys: `sanity/blocks` (the block names, top first),
`sanity/above/<explainer>/<where|when>` (`blocks_above_maps`, where there are any), `sanity/trained/accuracy`
and `sanity/trained/<explainer>/pointing_*`, then for each step in order
`sanity/<cascading|independent>/<block>/accuracy` and
`sanity/<cascading|independent>/<block>/<explainer>/<metric>`; a cascading `<block>` means the
blocks from the top down to it.
"""

from __future__ import annotations

import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from stt import input_pipeline
from stt import models
from stt import sharding
from stt.explain import explainers as explainer_lib
from stt.explain import pointing

METRICS = (
    "where_spearman",
    "when_spearman",
    "where_spearman_signed",
    "when_spearman_signed",
    "pointing_spatial",
    "pointing_temporal",
)
MODES = ("cascading", "independent")


def parameter_blocks(model) -> list[tuple[str, tuple[str, ...]]]:
  """The model's `PARAMETER_BLOCKS` that hold parameters, top block first.

  Raises ValueError when a parameter's attribute is in no block or in two: the blocks must
  cover the model exactly, or a randomisation would silently leave weights trained.
  """
  owners = {path[0] for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  declared = [attribute for _, attributes in model.PARAMETER_BLOCKS for attribute in attributes]
  repeated = sorted({a for a in declared if declared.count(a) > 1})
  missing = sorted(owners - set(declared))
  if repeated or missing:
    raise ValueError(
        f"{type(model).__name__}.PARAMETER_BLOCKS must name each parameter attribute once: "
        f"missing {missing}, repeated {repeated}"
    )
  return [(name, attrs) for name, attrs in model.PARAMETER_BLOCKS if set(attrs) & owners]


def blocks_above_maps(model, name: str) -> dict[str, list[str]]:
  """{map: the parameter blocks above the layer that makes explainer `name`'s map on `model`},
  for "where" / "when" of an explainer with `map_sources`: the blocks before the topmost block
  that makes one of the explanations it reads (the model's `EXPLANATION_BLOCKS`). Randomising
  only these leaves the map exactly as it was. A map is left out where a source's block is not
  declared; {} for the explainers that read the whole model."""
  made_by = getattr(model, "EXPLANATION_BLOCKS", {})
  order = [block for block, _ in parameter_blocks(model)]
  above = {}
  for dimension, sources in explainer_lib.EXPLAINERS[name].map_sources:
    present = [source for source in sources if source in model.EXPLANATIONS]
    if not present or any(made_by.get(source) not in order for source in present):
      continue
    above[dimension] = order[: min(order.index(made_by[source]) for source in present)]
  return above


def steps(blocks: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, str, set[str]]]:
  """[(mode, block, attributes randomised)]: the cascade top-down, then each block alone."""
  out = []
  for k, (name, _) in enumerate(blocks):
    out.append(("cascading", name, {a for _, attrs in blocks[: k + 1] for a in attrs}))
  for name, attributes in blocks[1:]:
    out.append(("independent", name, set(attributes)))
  return out


def randomised_state(state: nnx.State, fresh_params: nnx.State, attributes: set[str]):
  """`state` (a model's) with the parameters under `attributes` taken from `fresh_params`,
  placed as the trained ones are."""
  flat = dict(nnx.to_flat_state(state))
  for path, variable in nnx.to_flat_state(fresh_params):
    if path[0] in attributes:
      trained = flat[path]
      sharding_ = getattr(trained.get_value(), "sharding", None)
      flat[path] = trained.replace(jax.device_put(variable.get_value(), sharding_))
  return nnx.from_flat_state(list(flat.items()))


def spearman(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
  """Spearman ρ of maps [..., n] along the last axis (Pearson's r of the tie-averaged ranks,
  as scipy.stats.spearmanr); a constant map: 1 against a constant map, else 0. Returns [...]."""
  reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
  constant = (np.ptp(reference, axis=-1) == 0, np.ptp(other, axis=-1) == 0)
  ranks = [stats.rankdata(maps, axis=-1) for maps in (reference, other)]
  centred = [rank - rank.mean(-1, keepdims=True) for rank in ranks]
  with np.errstate(invalid="ignore", divide="ignore"):
    rho = (centred[0] * centred[1]).sum(-1) / np.sqrt(
        (centred[0] ** 2).sum(-1) * (centred[1] ** 2).sum(-1)
    )
  return np.where(constant[0] | constant[1], (constant[0] & constant[1]).astype(float), rho)


def map_correlations(reference: dict, other: dict) -> dict:
  """Mean over videos of where/when Spearman ρ of |maps| (`where_spearman`, `when_spearman`)
  and of the signed maps (`..._signed`); maps [V,T,h,w] / [V,T] and segment_mask [V,T] as
  gathered. Videos with the same valid segments are ranked together."""
  segment_mask = np.asarray(reference["segment_mask"], bool)
  # A video without a valid segment has no map to rank: NaN, left out of the mean.
  scores = {
      f"{key}_spearman{kind}": np.full(len(segment_mask), np.nan)
      for key in ("where", "when")
      for kind in ("", "_signed")
  }
  patterns, group_of_video = np.unique(segment_mask, axis=0, return_inverse=True)
  for group, valid in enumerate(patterns):
    if not valid.any():
      continue
    videos = np.flatnonzero(group_of_video.ravel() == group)
    for kind, transform in (("", np.abs), ("_signed", np.asarray)):
      for key in ("where", "when"):
        maps = [transform(np.asarray(side[key])[videos][:, valid]) for side in (reference, other)]
        scores[f"{key}_spearman{kind}"][videos] = spearman(
            *(m.reshape(len(videos), -1) for m in maps)
        )
  return {key: float(np.nanmean(values)) for key, values in scores.items()}


class _Prefix:
  """The first `size` examples of a source."""

  def __init__(self, source, size: int):
    self.source, self.size = source, min(size, len(source)) if size > 0 else len(source)

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, index: int):
    if not 0 <= index < self.size:
      raise IndexError(index)
    return self.source[index]


def _maps_batch(model, batch: dict, *, name: str) -> dict:
  """Maps of the ground-truth class: where [B,T,h,w], when [B,T]."""
  maps = explainer_lib.EXPLAINERS[name](
      model, input_pipeline.model_inputs(batch), target_class=batch["label"].astype(jnp.int32)
  )
  return {"where": maps["where"], "when": maps["when"]}


def _logits_batch(model, batch: dict) -> dict:
  return {"logits": model(input_pipeline.model_inputs(batch), train=False)["logits"]}


def applicable_explainers(model, names) -> list[str]:
  """Those of `names` that read the model and that it can have (intrinsic ones need its maps)."""
  return [
      name
      for name in names
      if explainer_lib.EXPLAINERS[name].reads_model
      and explainer_lib.EXPLAINERS[name].applies_to(model)
  ]


def run(graphdef, state, source, mesh, config, num_classes: int) -> dict:
  """The randomisation test of the restored (graphdef, state); returns the `sanity/...` metrics
  in step order (module docstring)."""
  model = nnx.merge(graphdef, state)[0]
  model_graphdef, model_state = nnx.split(model)
  fresh = models.create_model(config.model, num_classes, rngs=nnx.Rngs(config.sanity.seed))
  fresh_params = nnx.state(fresh, nnx.Param)
  names = applicable_explainers(model, config.sanity.explainers)
  # The (at most num_videos) test videos are read and decoded once, for all the evaluations.
  batches = list(
      input_pipeline.global_batches(
          _Prefix(source, config.sanity.num_videos),
          global_batch_size=config.eval_batch_size,
          batch_sharding=sharding.batch_sharding(mesh),
      )
  )
  gather = functools.partial(input_pipeline.gather_batches, batches=batches)
  map_steps = {name: nnx.jit(functools.partial(_maps_batch, name=name)) for name in names}
  logits_step = nnx.jit(_logits_batch)
  tolerance = config.explain.pointing_tolerance_px

  def evaluate(variant) -> tuple[float, dict]:
    outputs = gather(functools.partial(logits_step, variant))
    accuracy = float(np.mean(outputs["logits"].argmax(-1) == outputs["label"]))
    maps = {name: gather(functools.partial(map_steps[name], variant)) for name in names}
    return accuracy, maps

  blocks = parameter_blocks(model)
  accuracy, trained_maps = evaluate(model)
  metrics = {"sanity/blocks": [name for name, _ in blocks], "sanity/trained/accuracy": accuracy}
  spatial = {name: _spatial_applies(name, model) for name in names}
  temporal = {name: "when" in explainer_lib.EXPLAINERS[name].dimensions(model) for name in names}
  for name in names:
    metrics.update(
        _pointing(
            f"sanity/trained/{name}", spatial[name], temporal[name], trained_maps[name], tolerance
        )
    )
  for name in names:
    for dimension, above in blocks_above_maps(model, name).items():
      if above:
        metrics[f"sanity/above/{name}/{dimension}"] = above
  for mode, block, attributes in steps(blocks):
    variant = nnx.merge(model_graphdef, randomised_state(model_state, fresh_params, attributes))
    accuracy, maps = evaluate(variant)
    prefix = f"sanity/{mode}/{block}"
    metrics[f"{prefix}/accuracy"] = accuracy
    for name in names:
      scores = map_correlations(trained_maps[name], maps[name])
      for key in scores:
        if not {"where": spatial[name], "when": temporal[name]}[key.split("_")[0]]:
          scores[key] = float("nan")
      metrics.update({f"{prefix}/{name}/{key}": value for key, value in scores.items()})
      metrics.update(
          _pointing(f"{prefix}/{name}", spatial[name], temporal[name], maps[name], tolerance)
      )
  return metrics


def _spatial_applies(name: str, model) -> bool:
  """False where the "where" is attention's (rollout on STAN), the model sees no frames or the
  explainer gives no "where" on it."""
  record = explainer_lib.EXPLAINERS[name]
  return (
      models.sees_frames(model)
      and not record.spatial_is_attention(model)
      and "where" in record.dimensions(model)
  )


def _pointing(prefix: str, spatial: bool, temporal: bool, maps: dict, tolerance_px: float) -> dict:
  """`<prefix>/pointing_spatial` and `pointing_temporal` of gathered maps (NaN where they do
  not apply)."""
  games = pointing.pointing_metrics(maps, tolerance_px)
  nan = float("nan")
  return {
      f"{prefix}/pointing_spatial": float(games["pointing_spatial"] if spatial else nan),
      f"{prefix}/pointing_temporal": float(games["pointing_temporal"] if temporal else nan),
  }
