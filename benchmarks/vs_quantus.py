r"""Our explanation metrics against Quantus's on the same model, maps and inputs, in one process.

  pip install -e ".[peers]"               # Quantus and what it needs
  python benchmarks/vs_quantus.py         # 64 test videos; ~1 min on 2 CPU cores
  python benchmarks/vs_quantus.py --test_videos=256

One trained smoke model (benchmarks/quantus_model.py: STAN trained in-process on silent feature
videos of one object each, its box the annotation) and its `attention` maps where [V,T,h,w] on
the test videos. Three metrics whose definitions coincide, each computed by both:

- pointing: our `spatial_pointing` at tolerance 1 px (a hit iff the argmax pixel of the map,
  bilinearly resized over the frame, is on the box mask) against Quantus's PointingGame on the
  same resized map and mask. Difference: ours takes the first argmax on ties, Quantus counts a
  hit if any tied maximum is on the mask (resized maps have tied plateaus at the frame's edge).
- relevance_mass: our `box_scores.box_scores` relevance mass against Quantus's
  RelevanceMassAccuracy on the same resized map and mask. Difference: ours counts only
  positive relevance; attention maps are non-negative, so the two coincide here.
- region_perturbation: our spatial perturbation test (feature mode, order positive, removal
  value 0, fractions 0..0.9) against Quantus's RegionPerturbation (patch 1x1 = one grid cell
  across all segments and features, order 'morf', baseline 0.0) on the model wrapped for
  Keras through jax2tf. Compared: the probability of the class predicted on the clean input
  after removing k = round(p * h*w) cells (Quantus reports the clean minus the perturbed value
  after each removed patch; we add the clean value back). Difference: ours ranks cells in each
  segment by that segment's map, Quantus ranks patches over the whole input; both get the map
  averaged over segments (the same in every segment), where the definitions coincide; with
  per-segment maps they differ by design. Quantus's argsort is not stable, ours keeps index
  order on ties (continuous maps have none).

Each metric of each side is timed warm (one untimed call first) in this process; per metric and
in total, `speedup` = seconds_quantus / seconds_ours. Quantus gets the resized maps and masks
ready-made; our pointing and relevance mass resize the maps themselves, inside the timing.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

import jax
import numpy as np

from stt.explain import box_scores
from stt.explain import explainers
from stt.explain import perturbation
from stt.explain import pointing

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import quantus_model  # pylint: disable=g-import-not-at-top,wrong-import-position

NUM_CLASSES = 6
POINTING_DIFFERENCE = (
    "ties: ours takes the first argmax, Quantus hits if any tied maximum is on the mask"
)
RELEVANCE_MASS_DIFFERENCE = (
    "ours counts positive relevance only; equal here: attention maps are non-negative"
)
PERTURBATION_DIFFERENCE = (
    "ours ranks cells per segment by that segment's map, Quantus patches over the whole "
    "input: equal for a map constant over segments (given to both), different otherwise"
)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--test_videos", type=int, default=64, help=">= 1 test videos")
  parser.add_argument("--train_videos", type=int, default=512)
  parser.add_argument("--train_steps", type=int, default=200)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.test_videos < 1 or args.train_videos < 32 or args.train_steps < 1:
    parser.error("need --test_videos >= 1, --train_videos >= 32, --train_steps >= 1")
  return args


def _timed(fn):
  """(result, seconds) of fn() after one untimed call (compilation and tracing excluded)."""
  fn()
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def localisation_inputs(where: np.ndarray, videos) -> tuple[np.ndarray, np.ndarray]:
  """Per (video, segment) trial: the map resized over the frame and the box mask, [N,1,S,S]."""
  maps, masks = [], []
  for video in range(where.shape[0]):
    size = tuple(int(v) for v in videos.frame_size[video])
    for segment in range(where.shape[1]):
      maps.append(box_scores.resize_over_crop(where[video, segment], size))
      masks.append(box_scores.box_mask_over_crop(videos.boxes[video, segment], size))
  return np.stack(maps)[:, None].astype(np.float32), np.stack(masks)[:, None]


def our_metrics(where, where_constant, videos, model, inputs, predicted) -> dict:
  """Our three metrics as calls: pointing and relevance mass summaries (they resize the maps
  themselves), the perturbed probabilities [P,V]."""
  v, t = where.shape[:2]
  box_mask = np.ones((v, t, 1), bool)
  return {
      "pointing": lambda: pointing.spatial_pointing(
          where, videos.boxes, box_mask, videos.frame_size, videos.labels, tolerance_px=1.0
      ),
      "relevance_mass": lambda: box_scores.box_scores(
          where, videos.boxes, box_mask, videos.frame_size
      ),
      "region_perturbation": lambda: np.asarray(
          perturbation.perturbation_curves(
              model, inputs, predicted, where_constant, np.ones((v, t), np.float32)
          )["probability"]
      ),
  }


def ours_per_trial(where, videos) -> tuple[np.ndarray, np.ndarray]:
  """Per-trial pointing hits and relevance masses, by the functions our summaries use."""
  hits, masses = [], []
  for video in range(where.shape[0]):
    size = tuple(int(s) for s in videos.frame_size[video])
    points = pointing.points_of_maps(where[video], size)
    for segment, point in enumerate(points):
      hits.append(pointing.is_hit(tuple(point), videos.boxes[video, segment], size, 1.0))
      resized = box_scores.resize_over_crop(where[video, segment], size)
      mask = box_scores.box_mask_over_crop(videos.boxes[video, segment], size)
      masses.append(box_scores.relevance_mass(resized, mask))
  return np.asarray(hits, np.float64), np.asarray(masses)


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    import quantus  # pylint: disable=g-import-not-at-top  (the `peers` extra)
  except ImportError as error:
    print(f'vs_quantus needs Quantus: pip install -e ".[peers]" ({error})', file=sys.stderr)
    return 2
  warnings.filterwarnings("ignore")
  train = quantus_model.make_videos(args.train_videos, args.seed + 1, num_classes=NUM_CLASSES)
  videos = quantus_model.make_videos(args.test_videos, args.seed + 2, num_classes=NUM_CLASSES)
  model, train_accuracy = quantus_model.train_stan(
      train, NUM_CLASSES, steps=args.train_steps, seed=args.seed
  )
  inputs = {k: jax.device_put(v) for k, v in videos.inputs().items()}
  outputs = model(inputs)
  predicted = np.asarray(np.argmax(outputs["logits"], -1))
  test_accuracy = float(np.mean(predicted == videos.labels))
  where = np.asarray(explainers.attention(model, inputs)["where"], np.float32)  # [V,T,h,w]
  v, t, h, w = where.shape
  # The map averaged over segments, the same in every segment (see the docstring).
  where_constant = np.broadcast_to(where.mean(1, keepdims=True), where.shape).copy()
  fractions = perturbation.FRACTIONS
  removed = [perturbation.num_removed(p, h * w) for p in fractions]

  our_calls = our_metrics(where, where_constant, videos, model, inputs, predicted)
  our_results = {name: _timed(call) for name, call in our_calls.items()}
  our_pointing, our_mass, our_probability = (result for result, _ in our_results.values())
  our_hits, our_masses = ours_per_trial(where, videos)

  resized, box_masks = localisation_inputs(where, videos)
  trial_labels = np.repeat(videos.labels, t)
  cells = quantus_model.channel_first_cells(videos.visual_features)
  attributions = where_constant[:, :1]  # [V,1,h,w]: broadcast over the T*Cv channels
  keras_model = quantus_model.keras_model(model, videos, NUM_CLASSES)
  common = dict(disable_warnings=True, display_progressbar=False, normalise=False, abs=False)
  localisation = dict(
      model=None,
      x_batch=resized,
      y_batch=trial_labels,
      a_batch=resized,
      s_batch=box_masks,
      channel_first=True,
      batch_size=len(resized),
  )

  region_perturbation = lambda: np.asarray(
      quantus.RegionPerturbation(
          patch_size=1,
          order="morf",
          regions_evaluation=max(removed),
          perturb_baseline=0.0,
          **common,
      )(
          model=keras_model,
          x_batch=cells,
          y_batch=predicted,
          a_batch=attributions,
          channel_first=True,
          softmax=True,
          batch_size=v,
          model_predict_kwargs={"batch_size": v},
      )
  )
  their_calls = {
      "pointing": lambda: np.asarray(quantus.PointingGame(**common)(**localisation), np.float64),
      "relevance_mass": lambda: np.asarray(
          quantus.RelevanceMassAccuracy(**common)(**localisation), np.float64
      ),
      "region_perturbation": region_perturbation,
  }
  their_results = {name: _timed(call) for name, call in their_calls.items()}
  their_hits, their_masses, their_drops = (result for result, _ in their_results.values())
  clean = our_probability[0]  # fraction 0 removes nothing
  their_probability = np.stack(
      [clean if k == 0 else clean - their_drops[:, k - 1] for k in removed]
  )  # [P,V]

  def compare(name, our_values, their_values, **extra):
    our_values, their_values = np.asarray(our_values), np.asarray(their_values)
    seconds_ours, seconds_quantus = our_results[name][1], their_results[name][1]
    return {
        "ours": float(np.mean(our_values)),
        "quantus": float(np.mean(their_values)),
        "max_abs_diff": float(np.max(np.abs(our_values - their_values))),
        "seconds_ours": seconds_ours,
        "seconds_quantus": seconds_quantus,
        "speedup": seconds_quantus / seconds_ours,
        **extra,
    }

  seconds_ours = sum(seconds for _, seconds in our_results.values())
  seconds_quantus = sum(seconds for _, seconds in their_results.values())

  result = {
      "test_videos": v,
      "trials": int(v * t),
      "grid": [h, w],
      "train_accuracy": train_accuracy,
      "test_accuracy": test_accuracy,
      "pointing": compare(
          "pointing",
          our_hits,
          their_hits,
          ours_summary=our_pointing.overall,
          difference=POINTING_DIFFERENCE,
      ),
      "relevance_mass": compare(
          "relevance_mass",
          our_masses,
          their_masses,
          ours_summary=our_mass["relevance_mass"],
          difference=RELEVANCE_MASS_DIFFERENCE,
      ),
      "region_perturbation": compare(
          "region_perturbation",
          our_probability,
          their_probability,
          removed_cells=removed,
          fractions=list(fractions),
          difference=PERTURBATION_DIFFERENCE,
      ),
      "seconds_ours": seconds_ours,
      "seconds_quantus": seconds_quantus,
      "speedup": seconds_quantus / seconds_ours,
      "quantus_version": quantus.__version__,
      "jax_backend": jax.default_backend(),
  }
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
