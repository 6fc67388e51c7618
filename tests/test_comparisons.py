"""How sure the suite's numbers are: the cells' Student-t intervals, the per-video scores of the
explain step and the paired tests of the `comparisons` table (stt/reproduce_comparisons.py)."""

import itertools
import math

from etils import epath
import numpy as np
import pytest

from stt import reproduce_comparisons
from stt import reproduce_tables
from stt.explain import pointing
from stt.explain import video_scores


def test_ci95_is_the_student_t_half_width_over_seeds():
  rows = reproduce_tables.summary_rows(
      {"stan": [{"test/accuracy": v} for v in (1.0, 0.8, 0.9)], "one": [{"test/accuracy": 0.5}]}
  )
  stan, one = (r for r in rows if r["split"] == "test" and r["metric"] == "accuracy")
  # t(0.975, 2) = 4.302653 (tables), std 0.1, n 3: 4.302653 * 0.1 / sqrt(3).
  assert stan["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
  assert stan["ci95"] == pytest.approx(0.248414, abs=1e-6)
  assert one["ci95"] is None and one["n"] == 1
  assert reproduce_tables._format(stan) == "0.900 ± 0.100 [±0.248]"
  assert reproduce_tables._format(one) == "0.500 ± 0.000"
  assert reproduce_tables.ci95(1.0, 2) == pytest.approx(12.706205 / math.sqrt(2), rel=1e-6)


def test_identical_sides_differ_by_nothing_with_p_one():
  values = np.random.default_rng(0).random(40)
  result = reproduce_comparisons.paired_test(values, values, np.repeat([0, 1], 20), resamples=500)
  assert result["difference"] == 0.0 and result["p_value"] == 1.0
  assert result["ci_low"] == result["ci_high"] == result["ci95"] == 0.0


def test_always_right_against_always_wrong_is_a_difference_of_one_with_a_tiny_p():
  strata = np.repeat(["seed0", "seed1", "seed2"], 10)
  result = reproduce_comparisons.paired_test(np.ones(30), np.zeros(30), strata, resamples=2000)
  assert result["difference"] == 1.0 and result["ci_low"] == result["ci_high"] == 1.0
  assert result["p_value"] == pytest.approx(1 / 2001)  # no flip of 30 signs reaches 1 (p 2^-29)
  assert result["mean"] == 1.0 and result["versus_mean"] == 0.0 and result["n_pairs"] == 30


def test_permutation_p_value_matches_the_exact_enumeration():
  differences = np.array([0.9, 0.4, -0.2, 0.7, 0.1, 0.5, -0.3, 0.6])
  weights = np.array([1, 2, 1, 3, 1, 1, 2, 1], float)
  observed = abs((differences * weights).sum() / weights.sum())
  exact = np.mean(
      [
          abs((np.array(signs) * differences * weights).sum() / weights.sum()) >= observed - 1e-12
          for signs in itertools.product((-1, 1), repeat=len(differences))
      ]
  )
  p = reproduce_comparisons.permutation_p_value(differences, weights, resamples=20_000)
  assert p == pytest.approx(exact, abs=0.006)
  # By hand: five +1 and one -1 sum to 4; of the 64 sign patterns, those with 0, 1, 5 or 6
  # plus signs reach |sum| >= 4: 1 + 6 + 6 + 1 = 14.
  hand = reproduce_comparisons.permutation_p_value([1, 1, 1, 1, 1, -1], np.ones(6), 20_000)
  assert hand == pytest.approx(14 / 64, abs=0.008)


def test_stratified_bootstrap_matches_the_normal_reference():
  rng = np.random.default_rng(1)
  # Two seeds with different spreads: the stratified standard error weighs each one's variance.
  differences = np.concatenate([rng.normal(0.3, 1.0, 300), rng.normal(-0.1, 0.3, 100)])
  strata = np.repeat([0, 1], [300, 100])
  low, high = reproduce_comparisons.bootstrap_interval(differences, np.ones(400), strata)
  n = 400
  variance = sum(
      (len(group) / n) ** 2 * np.var(group) / len(group)
      for group in (differences[:300], differences[300:])
  )
  centre = differences.mean()
  assert (low + high) / 2 == pytest.approx(centre, abs=0.01)
  assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(variance), rel=0.05)


def _out(rng, videos=6, segments=4):
  """Per-example maps and annotations of a small random split (suite.explain_split's keys)."""
  boxes = np.zeros((videos, segments, 2, 4))
  boxes[..., :2] = rng.integers(0, 40, (videos, segments, 2, 2))
  boxes[..., 2:] = boxes[..., :2] + rng.integers(4, 24, (videos, segments, 2, 2))
  box_mask = rng.random((videos, segments, 2)) < 0.6
  box_mask[0] = False  # a video without trials
  segment_mask = np.ones((videos, segments), bool)
  segment_mask[1, 3] = False
  return {
      "where": rng.random((videos, segments, 4, 4)).astype(np.float32),
      "when": rng.random((videos, segments)).astype(np.float32),
      "boxes": boxes,
      "box_mask": box_mask,
      "frame_size": np.tile([[64, 64]], (videos, 1)),
      "label": rng.integers(0, 3, videos),
      "segment_mask": segment_mask,
      "event_start": np.array([0, 1, 2, 0, 3, 2]),
      "event_end": np.array([2, 3, 2, 4, 4, 3]),
      "temporal/positive/correct": rng.random((videos, 10)) < 0.5,
  }


def test_per_video_scores_sum_to_the_pooled_pointing_games(tmp_path):
  out = _out(np.random.default_rng(2))
  hits, trials = video_scores.spatial_hits(out, tolerance_px=8.0)
  pooled = pointing.spatial_pointing(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["label"],
      8.0,
      segment_mask=out["segment_mask"],
  )
  assert trials[0] == 0 and trials.sum() == pooled.num_trials
  assert hits.sum() / trials.sum() == pytest.approx(pooled.overall)
  temporal = video_scores.temporal_hits(out)
  assert np.isnan(temporal[2])  # an empty event is no trial
  assert np.nanmean(temporal) == pytest.approx(
      pointing.temporal_pointing(
          out["when"], out["segment_mask"], out["event_start"], out["event_end"], out["label"]
      ).overall
  )
  content = video_scores.records(
      {"attention": out, "rollout": out},
      {"attention": {"pointing_spatial": 0.5}, "rollout": {"pointing_spatial": float("nan")}},
      np.array([f"v{i}" for i in range(6)]),
      tolerance_px=8.0,
  )
  video_scores.write(epath.Path(tmp_path), content)
  read = video_scores.read(epath.Path(tmp_path))
  assert read["correct"] == out["temporal/positive/correct"][:, 0].tolist()
  assert read["explainers"]["attention"]["pointing_spatial_trials"] == trials.tolist()
  assert read["explainers"]["rollout"]["pointing_spatial_hits"] is None  # not applicable
  assert read["explainers"]["rollout"]["pointing_temporal"][2] is None


def _record(correct, explainers):
  """A videos.json of four videos: explainers {name: hits [4] of 2 trials each, or None}."""
  return {
      "video_id": ["a", "b", "c", "d"],
      "label": [0, 1, 0, 1],
      "correct": correct,
      "explainers": {
          name: {
              "pointing_spatial_hits": hits,
              "pointing_spatial_trials": None if hits is None else [2, 2, 2, 2],
              "pointing_temporal": [1.0, 0.0, None, 1.0],
          }
          for name, hits in explainers.items()
      },
  }


def test_comparisons_pair_stan_with_each_model_on_its_own_map_and_each_explainer_with_random():
  stan = {"attention": [2, 2, 1, 2], "gradient": [1, 1, 1, 1], "random": [0, 1, 0, 0]}
  videos = {
      "stan": {
          s: _record([True, True, False, True], {**stan, "rollout": None}) for s in ("s0", "s1")
      },
      "avel": {
          s: _record([True, False, False, False], {"attention": [0, 0, 0, 2]}) for s in ("s0", "s1")
      },
      "joint_transformer": {"s0": _record([True] * 4, {"rollout": [2, 2, 2, 2]})},
      "late_fusion": {s: _record([False] * 4, {"gradient": [2, 2, 2, 2]}) for s in ("s0", "s1")},
  }
  rows = {
      (r["versus"], r["versus_explainer"], r["explainer"], r["metric"]): r
      for r in reproduce_comparisons.comparison_rows(videos, resamples=200)
  }
  assert set(rows) == {
      ("avel", None, None, "accuracy"),
      ("joint_transformer", None, None, "accuracy"),
      ("late_fusion", None, None, "accuracy"),
      ("avel", "attention", "attention", "pointing_spatial"),
      ("joint_transformer", "rollout", "attention", "pointing_spatial"),  # its own map
      ("stan", "random", "attention", "pointing_spatial"),
      ("stan", "random", "gradient", "pointing_spatial"),
  }  # no pointing for late_fusion (no own map), none for rollout on stan (not applicable)
  accuracy = rows[("avel", None, None, "accuracy")]
  assert accuracy["difference"] == pytest.approx(0.75 - 0.25)
  assert accuracy["n_seeds"] == 2 and accuracy["n_pairs"] == 8
  assert rows[("joint_transformer", None, None, "accuracy")]["n_seeds"] == 1
  own = rows[("avel", "attention", "attention", "pointing_spatial")]
  assert own["mean"] == pytest.approx(7 / 8) and own["versus_mean"] == pytest.approx(2 / 8)
  versus_random = rows[("stan", "random", "gradient", "pointing_spatial")]
  assert versus_random["difference"] == pytest.approx(4 / 8 - 1 / 8)
  assert 0 < versus_random["p_value"] <= 1 and versus_random["ci95"] >= 0
  text = reproduce_comparisons.markdown(list(rows.values()))
  assert "## Comparisons" in text and "| accuracy | stan | avel | 0.750 | 0.250 | +0.500" in text
  assert reproduce_comparisons.comparison_rows({"avel": videos["avel"]}) == []  # no STAN
