"""stt.explain.explained_split: the set --mode=explain evaluates, and its option errors."""

import numpy as np
import pytest

from configs import synthetic
from stt import config_validation
from stt import datasets
from stt.explain import explained_split


def _dataset():
  return datasets.Dataset({"test": ["the run's test split"]}, ["cat", "dog"], None)


def test_default_is_the_runs_test_split_and_unknown_values_are_errors(tmp_path):
  config = synthetic.get_config("smoke")
  assert explained_split.explain_source(config, _dataset()) == ["the run's test split"]
  config.explain.median_rule = "above"
  with pytest.raises(
      config_validation.ConfigError,
      match=r"explain.median_rule='above' is not one of \['ge', 'gt'\]",
  ):
    config_validation.validate(config, device_count=1)
  config.explain.median_rule = "gt"
  config.explain.dataset = "flickr"  # checked once, before anything runs
  with pytest.raises(
      config_validation.ConfigError,
      match=r"explain.dataset='flickr' is not one of \['', 'flickr_soundnet', 'vggss'\]",
  ):
    config_validation.validate(config, device_count=1)
  config.explain.dataset = "vggss"
  config.data_dir = str(tmp_path)
  with pytest.raises(
      datasets.DatasetError,
      match="no built dataset at .*vggss_videos/vggss_middle_t10_f1_s64.* build it with: "
      "python -m data_pipelines.build --dataset=vggss .*--annotated_frame=middle",
  ):
    explained_split.explain_source(config, _dataset())


def test_relabelled_source_uses_the_runs_class_indices():
  example = {
      "label": np.int64(0),
      "segment_labels": np.full(4, 2, np.int32),
      "event_start": np.int32(1),
      "event_end": np.int32(3),
      "video_id": "v",
  }
  source = explained_split.RelabelledSource([example], np.array([5, 2]), num_classes=7)
  relabelled = source[0]
  assert len(source) == 1 and relabelled["label"] == 5 and relabelled["video_id"] == "v"
  np.testing.assert_array_equal(relabelled["segment_labels"], [7, 5, 5, 7])
