"""The split `--mode=explain` evaluates: the run's own test split, or an annotation set.

`config.explain.dataset`:
- '' (default): the test split of the dataset the run was trained on;
- 'vggss': VGG-SS, built by `python -m data_pipelines.build --dataset=vggss` into the run's data
  dir with the run's num_segments / frames_per_segment / frame_size and
  `config.explain.annotated_frame`. Its labels are matched to the run's classes by name (a
  VGGSound run: build with vggsound.csv in manual_dir, or the VGG-SS class names are used);
  a class of the build that the run does not know is an error naming it.
- 'flickr_soundnet': the Flickr-SoundNet test set, built by `python -m data_pipelines.build
  --dataset=flickr_soundnet` into the run's data dir with the run's num_segments /
  frames_per_segment / frame_size. It has no class labels (UNLABELLED_SETS): every example has
  label 0; the explainers explain the predicted class as always; the pointing games and the
  field's scores are class-agnostic (one label, so *_class_mean = the overall score); the
  perturbation tests, which score accuracy against the true class, are not reported (NaN, '—').
  The field's ground truth is the annotators' consensus map (sound_source_benchmark.SET_GROUND_TRUTH).

`config.explain.gt_geometry` and `config.explain.median_rule` choose the field's protocol
variants (stt/explain/sound_source_benchmark.py); the tables then print the published rows of
sound-localization methods on that set beside ours.
"""

from __future__ import annotations

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import flickr_soundnet_builder
from data_pipelines import vggss_builder
from data_pipelines import vggss_format
from stt import datasets

EXPLAIN_DATASETS = ("", "vggss", "flickr_soundnet")
UNLABELLED_SETS = ("flickr_soundnet",)  # no class labels: no perturbation test (see above)


class RelabelledSource:
  """A random-access source whose `label` (and `segment_labels`) use the run's class indices."""

  def __init__(self, source, label_map: np.ndarray, num_classes: int):
    self._source = source
    self._label_map = label_map  # [source classes] -> run class index
    self._num_classes = num_classes

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    example = dict(self._source[index])
    label = int(self._label_map[int(example["label"])])
    segments = np.arange(np.asarray(example["segment_labels"]).shape[0])
    inside = (segments >= example["event_start"]) & (segments < example["event_end"])
    example["label"] = np.int64(label)
    example["segment_labels"] = np.where(inside, label, self._num_classes).astype(np.int32)
    return example


def explain_source(config: ml_collections.ConfigDict, dataset: datasets.Dataset):
  """The source of `config.explain.dataset` (the run's test split when ''). The explain options
  are checked before anything runs (stt/config_validation.py)."""
  name = config.explain.get("dataset", "")
  if name not in EXPLAIN_DATASETS:
    raise datasets.DatasetError(
        f"explain.dataset={name!r}; known: " f"{', '.join(repr(n) for n in EXPLAIN_DATASETS)}"
    )
  if not name:
    return dataset.sources["test"]
  data_dir = datasets.resolve_data_dir(config)
  if name == "flickr_soundnet":
    return _flickr_source(config, data_dir, len(dataset.class_names))
  frame = config.explain.annotated_frame
  if frame not in vggss_format.ANNOTATED_FRAMES:
    raise datasets.DatasetError(
        f"explain.annotated_frame={frame!r}; known: " f"{', '.join(vggss_format.ANNOTATED_FRAMES)}"
    )
  d = config.dataset
  directory = vggss_builder.dataset_dir(
      data_dir, frame, d.num_segments, d.frames_per_segment, d.frame_size
  )
  if not (directory / "dataset_info.json").exists():
    raise datasets.DatasetError(
        f"no VGG-SS build at {directory}; build it with: python -m data_pipelines.build "
        "--dataset=vggss --manual_dir=<dir of vggss.json, vggss_test.csv, vggsound.csv and the "
        f"clips> --data_dir={data_dir} --num_segments={d.num_segments} "
        f"--frames_per_segment={d.frames_per_segment} --frame_size={d.frame_size} "
        f"--annotated_frame={frame}"
    )
  builder = tfds.builder_from_directory(str(directory))
  names = list(builder.info.features["label"].names)
  run_index = {class_name: i for i, class_name in enumerate(dataset.class_names)}
  unknown = [class_name for class_name in names if class_name not in run_index]
  if unknown:
    raise datasets.DatasetError(
        f"the VGG-SS build at {directory} has {len(unknown)} classes the run was not trained "
        f"on, e.g. {unknown[0]!r}; explain a run trained on VGGSound"
    )
  label_map = np.asarray([run_index[class_name] for class_name in names])
  return RelabelledSource(builder.as_data_source("test"), label_map, len(dataset.class_names))


def _flickr_source(config: ml_collections.ConfigDict, data_dir, num_classes: int):
  """The Flickr-SoundNet build of the run's decode settings, all labels 0 (no classes)."""
  d = config.dataset
  directory = flickr_soundnet_builder.dataset_dir(
      data_dir, d.num_segments, d.frames_per_segment, d.frame_size
  )
  if not (directory / "dataset_info.json").exists():
    raise datasets.DatasetError(
        f"no Flickr-SoundNet build at {directory}; build it with: python -m "
        "data_pipelines.build --dataset=flickr_soundnet --manual_dir=<dir of flickr_test.csv, "
        f"Annotations/, frames/, audio/> --data_dir={data_dir} --num_segments={d.num_segments} "
        f"--frames_per_segment={d.frames_per_segment} --frame_size={d.frame_size}"
    )
  builder = tfds.builder_from_directory(str(directory))
  return RelabelledSource(builder.as_data_source("test"), np.zeros(1, np.int64), num_classes)


def published_dataset(config: ml_collections.ConfigDict) -> str:
  """The dataset name of stt.explain.sound_source_benchmark.PUBLISHED rows to print, or ''."""
  return config.explain.get("dataset", "")
