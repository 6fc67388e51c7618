"""The suite's `comparisons` table: are the headline differences more than chance?

Each row compares two (model, explainer) sides on one metric, paired over seeds x test videos:
the same test video under the same seed (the data and the split a seed makes are the same for
every model) scored by both sides. Rows, in summary.json (`table` "comparisons"):

    {"table": "comparisons", "model": "stan", "explainer": ... or None, "versus": <model>,
     "versus_explainer": ... or None, "metric": "accuracy" | "pointing_spatial",
     "mean": <model side>, "versus_mean": ..., "difference": model - versus, "ci95": half-width,
     "ci_low": ..., "ci_high": ..., "p_value": ..., "n_seeds": ..., "n_pairs": ...}

- STAN against each other row of the suite on test `accuracy` (a pair: the unperturbed
  prediction is right, 1 or 0) and on `pointing_spatial` of each model's own map (`attention`
  where the model has it, else `rollout`; a model with neither gets no pointing row);
- each of STAN's explainers against `random` on STAN (`pointing_spatial`).

A pair's value for pointing is the video's hit rate over its annotated segments, weighted by
its number of segments (stt/explain/video_scores.py), so `difference` is the difference of the
tables' pooled `pointing_spatial` (averaged over seeds when the seeds have as many trials).

The test: a paired sign-flip permutation test. Under "no difference" the two sides of a pair
are exchangeable, so each pair's difference is as likely positive as negative; the p-value
(two-sided) is the share of `RESAMPLES` random sign assignments whose weighted mean difference
is at least as far from 0 as the observed one, (1 + count) / (1 + RESAMPLES). Flipping a pair
never moves it across seeds, so the test is stratified by seed by construction. The interval:
a stratified bootstrap, resampling the videos with replacement within each seed, the 2.5 and
97.5 percentiles of the weighted mean difference (`ci95` is half their distance). Both treat
the trained models as fixed: they say how sure the difference is over test videos for these
seeds, not over retrainings (3 seeds cannot say much about that; the tables' `ci95`, Student t
over seeds, do, poorly). Fixed RNG seed: a rerun gives the same numbers.
"""

from __future__ import annotations

from etils import epath
import numpy as np

from stt.explain import video_scores

REFERENCE = "stan"
RESAMPLES = 10_000
OWN_MAPS = ("attention", "rollout")  # a model's own map: the first of these it has
BASELINE_EXPLAINER = "random"
_CHUNK = 1000  # resamples per vectorised step: bounds memory (chunk x pairs floats)


def _weighted_means(differences, weights, signs_or_indices, flip: bool) -> np.ndarray:
  if flip:
    return (signs_or_indices * differences * weights).sum(1) / weights.sum()
  picked_weights = weights[signs_or_indices]
  return (differences[signs_or_indices] * picked_weights).sum(1) / picked_weights.sum(1)


def permutation_p_value(
    differences: np.ndarray, weights: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> float:
  """Two-sided p-value of the paired sign-flip test of differences [N] (weights [N] > 0)."""
  differences, weights = np.asarray(differences, float), np.asarray(weights, float)
  observed = abs((differences * weights).sum() / weights.sum())
  rng = np.random.default_rng(seed)
  count = 0
  for start in range(0, resamples, _CHUNK):
    size = min(_CHUNK, resamples - start)
    signs = rng.choice((-1.0, 1.0), size=(size, len(differences)))
    flipped = np.abs(_weighted_means(differences, weights, signs, flip=True))
    count += int((flipped >= observed - 1e-12).sum())
  return (1 + count) / (1 + resamples)


def bootstrap_interval(
    differences: np.ndarray,
    weights: np.ndarray,
    strata: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
  """(2.5, 97.5) percentiles of the weighted mean of differences [N] over `resamples`
  stratified bootstrap samples: the pairs of each stratum (strata [N], the seed) drawn with
  replacement, as many as it has."""
  differences, weights = np.asarray(differences, float), np.asarray(weights, float)
  groups = [np.flatnonzero(np.asarray(strata) == s) for s in dict.fromkeys(strata)]
  rng = np.random.default_rng(seed)
  means = []
  for start in range(0, resamples, _CHUNK):
    size = min(_CHUNK, resamples - start)
    indices = np.concatenate(
        [group[rng.integers(0, len(group), size=(size, len(group)))] for group in groups], axis=1
    )
    means.append(_weighted_means(differences, weights, indices, flip=False))
  low, high = np.percentile(np.concatenate(means), [2.5, 97.5])
  return float(low), float(high)


def paired_test(a, b, strata, weights=None, resamples: int = RESAMPLES, seed: int = 0) -> dict:
  """The difference of two sides' paired values a, b [N] (strata [N]: the pair's seed; weights
  [N], default 1): {mean, versus_mean, difference, ci_low, ci_high, ci95, p_value, n_pairs}."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  weights = np.ones_like(a) if weights is None else np.asarray(weights, float)
  differences = a - b
  low, high = bootstrap_interval(differences, weights, strata, resamples, seed)
  return {
      "mean": float((a * weights).sum() / weights.sum()),
      "versus_mean": float((b * weights).sum() / weights.sum()),
      "difference": float((differences * weights).sum() / weights.sum()),
      "ci_low": low,
      "ci_high": high,
      "ci95": (high - low) / 2,
      "p_value": permutation_p_value(differences, weights, resamples, seed),
      "n_pairs": len(a),
  }


def read_videos(run_dirs: dict[str, list]) -> dict[str, dict[str, dict]]:
  """{row: {seed directory name: videos.json of its explain step}} of the runs that have one."""
  found = {}
  for row, directories in run_dirs.items():
    for directory in directories:
      content = video_scores.read(epath.Path(directory) / "explain")
      if content is not None:
        found.setdefault(row, {})[epath.Path(directory).name] = content
  return found


def _side_values(record: dict, metric: str, explainer: str | None):
  """{video_id: (value, weight)} of one side in one seed; None when it has no such scores."""
  if metric == "accuracy":
    if record.get("correct") is None:
      return None
    return {v: (float(c), 1.0) for v, c in zip(record["video_id"], record["correct"])}
  entry = record["explainers"].get(explainer)
  if entry is None or entry.get("pointing_spatial_hits") is None:
    return None
  return {
      v: (hits / trials, float(trials))
      for v, hits, trials in zip(
          record["video_id"], entry["pointing_spatial_hits"], entry["pointing_spatial_trials"]
      )
      if trials > 0
  }


def _paired_side_by_side(videos, side, versus, metric):
  """(a, b, weights, strata) over the seeds and videos both sides have; None if no pair."""
  a, b, weights, strata = [], [], [], []
  (model, explainer), (versus_model, versus_explainer) = side, versus
  for seed, record in videos.get(model, {}).items():
    other = videos.get(versus_model, {}).get(seed)
    if other is None:
      continue
    mine = _side_values(record, metric, explainer)
    theirs = _side_values(other, metric, versus_explainer)
    if mine is None or theirs is None:
      continue
    for video_id, (value, weight) in mine.items():
      if video_id in theirs:
        a.append(value)
        b.append(theirs[video_id][0])
        weights.append(weight)
        strata.append(seed)
  return (a, b, weights, strata) if a else None


def own_map(seeds: dict[str, dict]) -> str | None:
  """The model's own map (OWN_MAPS' first with spatial scores in its runs), None if none."""
  for name in OWN_MAPS:
    for record in seeds.values():
      entry = record["explainers"].get(name)
      if entry is not None and entry.get("pointing_spatial_hits") is not None:
        return name
  return None


def comparison_rows(
    videos: dict[str, dict[str, dict]], resamples: int = RESAMPLES, seed: int = 0
) -> list[dict]:
  """The `comparisons` records (module docstring) from `read_videos`'s {row: {seed: record}}."""
  if REFERENCE not in videos:
    return []
  plans = []
  reference_map = own_map(videos[REFERENCE])
  for model in videos:
    if model == REFERENCE:
      continue
    plans.append(((REFERENCE, None), (model, None), "accuracy"))
    versus_map = own_map(videos[model])
    if reference_map and versus_map:
      plans.append(((REFERENCE, reference_map), (model, versus_map), "pointing_spatial"))
  explainers = dict.fromkeys(
      name for record in videos[REFERENCE].values() for name in record["explainers"]
  )
  if BASELINE_EXPLAINER in explainers:
    for name in explainers:
      if name != BASELINE_EXPLAINER:
        plans.append(((REFERENCE, name), (REFERENCE, BASELINE_EXPLAINER), "pointing_spatial"))
  rows = []
  for side, versus, metric in plans:
    paired = _paired_side_by_side(videos, side, versus, metric)
    if paired is None:
      continue
    a, b, weights, strata = paired
    rows.append(
        {
            "table": "comparisons",
            "model": side[0],
            "explainer": side[1],
            "versus": versus[0],
            "versus_explainer": versus[1],
            "metric": metric,
            "split": "test",
            **paired_test(a, b, strata, weights, resamples, seed),
            "n_seeds": len(set(strata)),
        }
    )
  return rows


def markdown(rows: list[dict]) -> str:
  """The "## Comparisons" section of tables.md ('' without rows)."""
  if not rows:
    return ""
  side = lambda model, explainer: model + (f" {explainer}" if explainer else "")
  lines = [
      "## Comparisons (paired over seeds x test videos)",
      "",
      "| metric | model | versus | model's | versus's | difference [95 % CI] | p | seeds | pairs |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    lines.append(
        f"| {row['metric']} | {side(row['model'], row['explainer'])} | "
        f"{side(row['versus'], row['versus_explainer'])} | {row['mean']:.3f} | "
        f"{row['versus_mean']:.3f} | {row['difference']:+.3f} "
        f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] | {row['p_value']:.4f} | "
        f"{row['n_seeds']} | {row['n_pairs']} |"
    )
  lines += [
      "",
      "difference: model - versus, the mean over (seed, test video) pairs (pointing: each "
      "video weighted by its annotated segments); 95 % CI: stratified bootstrap over the videos "
      f"of each seed; p: two-sided paired sign-flip permutation test ({RESAMPLES} resamples, "
      f"smallest possible {1 / (1 + RESAMPLES):.4f}). Both hold the trained models fixed: "
      "they measure the test videos' variation, not the retraining's (docs/reproducing.md, "
      '"How sure each number is").',
  ]
  return "\n".join(lines) + "\n"
