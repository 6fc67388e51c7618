"""The split `--mode=explain` evaluates: the run's own test split, or an annotation set.

`config.explain.dataset`, or each of `config.explain.datasets` in turn (`explained_sets`;
checked by stt/config_validation.py before anything runs):
- '' (default): the test split of the dataset the run was trained on;
- an annotation set of data_pipelines/catalogue.py (a record with a `ground_truth`, e.g.
  'vggss', 'flickr_soundnet'): its test split, built by `python -m data_pipelines.build
  --dataset=<name>` into the run's data dir with the run's num_segments / frames_per_segment /
  frame_size and the record's config options (VG-SS: `config.explain.annotated_frame`).
  - A labelled set's labels are matched to the run's classes by name (a VGG-SS build for a
    VGGSound run: build with vggsound.csv in manual_dir); a class of the build that the run
    does not know is an error naming it.
  - An unlabelled set (Flickr-SoundNet) has no class labels: every example has label 0; the
    explainers explain the predicted class as always; the pointing games and the field's
    scores are class-agnostic (one label, so *_class_mean = the overall score); the
    perturbation tests, which score accuracy against the true class, are not reported (NaN,
    '—').
  The field's ground truth is the record's (`ground_truth`: the union of the boxes, or the
  annotators' consensus map).

`config.explain.gt_geometry` and `config.explain.median_rule` choose the field's protocol
variants (stt/explain/sound_source_benchmark.py); the tables then print the record's published
rows of sound-localization methods on that set beside ours.
"""

from __future__ import annotations

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import catalogue
from stt import datasets


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


def explained_sets(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The sets --mode=explain explains, in order: `explain.datasets` if given, else
  (`explain.dataset`,); '' is the run's test split."""
  return tuple(config.explain.get("datasets", ())) or (config.explain.get("dataset", ""),)


def explain_source(config: ml_collections.ConfigDict, dataset: datasets.Dataset, name=None):
  """The source of the set `name` (default `config.explain.dataset`; '' the run's test split)."""
  if name is None:
    name = config.explain.get("dataset", "")
  if not name:
    return dataset.sources["test"]
  spec = catalogue.spec(name)
  directory = datasets.built_dir(spec, config, datasets.resolve_data_dir(config))
  builder = tfds.builder_from_directory(str(directory))
  num_classes = len(dataset.class_names)
  if not spec.labelled:  # one label for all
    return RelabelledSource(builder.as_data_source("test"), np.zeros(1, np.int64), num_classes)
  names = list(builder.info.features["label"].names)
  run_index = {class_name: i for i, class_name in enumerate(dataset.class_names)}
  unknown = [class_name for class_name in names if class_name not in run_index]
  if unknown:
    raise datasets.DatasetError(
        f"the {spec.title} build at {directory} has {len(unknown)} classes the run was not "
        f"trained on, e.g. {unknown[0]!r}; explain a run trained on its classes"
    )
  label_map = np.asarray([run_index[class_name] for class_name in names])
  return RelabelledSource(builder.as_data_source("test"), label_map, num_classes)
