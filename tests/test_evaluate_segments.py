"""Per-segment predictions and accuracy of the localization tasks, on hand-computed cases."""

import jax.numpy as jnp
import numpy as np
import pytest

from stt import split_evaluator
from stt import tasks


def _outputs(when, logits, segment_logits=None):
  return {
      "logits": jnp.asarray(logits, jnp.float32),
      "segment_logits": None if segment_logits is None else jnp.asarray(segment_logits),
      "explanations": {"when": jnp.asarray(when, jnp.float32)},
  }


def test_weak_segments_are_the_video_class_where_when_exceeds_uniform():
  # 2 videos, T=4, C=3 (background = 3). Video 0: 4 valid segments, uniform = 0.25.
  # Video 1: 2 valid segments, uniform = 0.5; padded segments are never events.
  when = [[0.10, 0.40, 0.25, 0.25], [0.30, 0.70, 0.0, 0.0]]
  logits = [[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]]
  mask = jnp.asarray([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
  predicted = tasks.segment_predictions(_outputs(when, logits), mask, "weak", 1.0)
  np.testing.assert_array_equal(predicted, [[3, 1, 1, 1], [3, 0, 3, 3]])
  # A stricter threshold keeps only the peaks.
  predicted = tasks.segment_predictions(_outputs(when, logits), mask, "weak", 1.5)
  np.testing.assert_array_equal(predicted, [[3, 1, 3, 3], [3, 3, 3, 3]])


def test_localization_segments_are_the_segment_head_argmax():
  segment_logits = np.zeros((1, 3, 4))
  segment_logits[0, 0, 2] = segment_logits[0, 1, 3] = segment_logits[0, 2, 0] = 1.0
  predicted = tasks.segment_predictions(
      _outputs([[1, 1, 1]], [[0, 0, 0]], segment_logits),
      jnp.ones((1, 3), bool),
      "localization",
      1.0,
  )
  np.testing.assert_array_equal(predicted, [[2, 3, 0]])


def test_segment_accuracy_counts_valid_segments_only():
  out = {
      "prediction": np.array([1, 0]),
      "label": np.array([1, 1]),
      "loss": np.array([0.5, 1.5]),
      "segment_prediction": np.array([[1, 3, 3], [0, 0, 2]]),
      "segment_labels": np.array([[1, 1, 3], [0, 3, 0]]),
      "segment_mask": np.array([[1, 1, 1], [1, 1, 0]], bool),
  }
  metrics = split_evaluator.split_metrics(out, "test")
  assert metrics["test/accuracy"] == 0.5 and metrics["test/loss"] == 1.0
  assert metrics["test/segment_accuracy"] == pytest.approx(3 / 5)  # 2 of 3, then 1 of 2
  assert "test/segment_accuracy" not in split_evaluator.split_metrics(
      {k: out[k] for k in ("prediction", "label", "loss")}, "test"
  )
