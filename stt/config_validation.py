"""Checks a config before anything expensive runs, with one-line messages that say what to fix.

Every list of allowed names is imported from the module that implements it.
"""

from __future__ import annotations

import math

import ml_collections

from data_pipelines import catalogue
from stt import models
from stt import tasks
from stt.explain import explainers
from stt.explain import perturbation
from stt.explain import sound_source_benchmark
from stt.models import backbones
from stt.models import encoders
from stt.models import joint_transformer
from stt.models import layers
from stt.models import stan


class ConfigError(ValueError):
  """The config cannot work. The message names the key and the fix."""


def _require(condition: bool, message: str):
  if not condition:
    raise ConfigError(message)


def _one_of(value, allowed, key: str):
  _require(value in allowed, f"{key}={value!r} is not one of {sorted(allowed)}")


def validate(config: ml_collections.ConfigDict, *, device_count: int, process_count: int = 1):
  """Raises ConfigError for the first problem found."""
  for key in ("batch_size", "eval_batch_size"):
    size = config[key]
    _require(
        size > 0 and size % device_count == 0,
        f"{key}={size} must be a positive multiple of the device count ({device_count})",
    )
    _require(
        size % process_count == 0,
        f"{key}={size} must be divisible by the number of processes ({process_count})",
    )
  fsdp = config.mesh.fsdp
  _require(
      fsdp >= 1 and device_count % fsdp == 0,
      f"mesh.fsdp={fsdp} must be a positive divisor of the device count ({device_count})",
  )
  for key in (
      "num_train_steps",
      "log_every_steps",
      "eval_every_steps",
      "checkpoint_every_steps",
      "keep_checkpoints",
  ):
    _require(config[key] >= 1, f"{key}={config[key]} must be >= 1")
  _require(config.optimizer.learning_rate > 0, "optimizer.learning_rate must be > 0")
  _require(config.optimizer.warmup_steps >= 0, "optimizer.warmup_steps must be >= 0")

  _one_of(config.dataset.name, catalogue.trained_names(), "dataset.name")
  for key in ("num_segments", "frames_per_segment", "frame_size"):
    _require(config.dataset[key] >= 1, f"dataset.{key} must be >= 1")

  model = config.model
  _one_of(model.name, models.MODELS, "model.name")
  _one_of(model.visual_backbone, backbones.VISUAL_BACKBONES, "model.visual_backbone")
  _one_of(model.audio_backbone, backbones.AUDIO_BACKBONES, "model.audio_backbone")
  _validate_input(config)
  _validate_task(config)
  _one_of(model.spatial_query, layers.SPATIAL_QUERIES, "model.spatial_query")
  _one_of(model.get("spatial_scoring", "dot"), layers.SPATIAL_SCORINGS, "model.spatial_scoring")
  _one_of(model.temporal_pool, layers.TEMPORAL_POOLS, "model.temporal_pool")
  _one_of(model.pool_values, stan.POOL_VALUES, "model.pool_values")
  _one_of(model.dtype, ("float32", "bfloat16"), "model.dtype")
  for key in ("width", "num_heads", "mlp_ratio"):
    _require(model[key] >= 1, f"model.{key}={model[key]} must be >= 1")
  _require(model.num_layers >= 0, f"model.num_layers={model.num_layers} must be >= 0")
  num_bottlenecks = model.get("num_bottlenecks", joint_transformer.DEFAULT_NUM_BOTTLENECKS)
  _require(num_bottlenecks >= 0, f"model.num_bottlenecks={num_bottlenecks} must be >= 0")
  _require(
      model.name != "joint_transformer" or model.num_layers >= 1,
      "model.name='joint_transformer' needs model.num_layers >= 1 (2 or more for its "
      "bottlenecks to carry anything between the modalities)",
  )
  _require(0 <= model.dropout < 1, f"model.dropout={model.dropout} must be in [0, 1)")
  _one_of(model.frame_features, encoders.FRAME_FEATURES, "model.frame_features")
  _require(
      model.frame_features != "stack" or model.frame_groups == config.dataset.frames_per_segment,
      f"model.frame_features='stack' needs model.frame_groups={model.frame_groups} equal to "
      f"dataset.frames_per_segment={config.dataset.frames_per_segment}",
  )
  _require(
      model.width % model.num_heads == 0,
      f"model.width={model.width} must be divisible by model.num_heads={model.num_heads}",
  )
  spatial_heads = model.get("spatial_heads", 0) or model.num_heads
  _require(
      spatial_heads >= 1 and model.width % spatial_heads == 0,
      f"model.spatial_heads={model.get('spatial_heads', 0)} must be 0 (model.num_heads) or a "
      f"divisor of model.width={model.width}",
  )
  _require(
      model.num_segments == config.dataset.num_segments,
      f"model.num_segments={model.num_segments} must equal "
      f"dataset.num_segments={config.dataset.num_segments}",
  )
  stride = backbones.VISUAL_BACKBONES[model.visual_backbone].stride
  if stride is not None and model.grid_size is not None:  # None: derived from these two
    side = math.ceil(config.dataset.frame_size / stride)
    _require(
        tuple(model.grid_size) == (side, side),
        f"model.grid_size={tuple(model.grid_size)} does not match {model.visual_backbone} on "
        f"{config.dataset.frame_size}px frames; set it to ({side}, {side}) or leave it "
        "unset to derive it",
    )
  _require(
      config.loss.segment_weight == 0 or model.segment_head,
      "loss.segment_weight > 0 needs model.segment_head=True",
  )
  _validate_explain(config)
  _validate_sanity(config)


def _validate_sanity(config: ml_collections.ConfigDict):
  """The randomisation test of --mode=sanity."""
  sanity = config.sanity
  unknown = [name for name in sanity.explainers if name not in explainers.EXPLAINERS]
  _require(
      isinstance(sanity.explainers, tuple) and not unknown,
      f"sanity.explainers: unknown {unknown}; known: {list(explainers.EXPLAINERS)}",
  )
  _require(sanity.num_videos >= 0, "sanity.num_videos must be >= 0 (0: the whole test split)")


def _validate_explain(config: ml_collections.ConfigDict):
  """The explainers and perturbation settings of --mode=explain."""
  explain = config.explain
  names = explain.explainers
  _require(
      isinstance(names, (tuple, list)) and len(names) > 0,
      "explain.explainers must be a non-empty tuple of names, e.g. "
      '--config.explain.explainers=\'("attention","random")\'',
  )
  unknown = [name for name in names if name not in explainers.EXPLAINERS]
  _require(
      not unknown, f"explain.explainers: unknown {unknown}; known: {list(explainers.EXPLAINERS)}"
  )
  _require(explain.pointing_tolerance_px >= 0, "explain.pointing_tolerance_px must be >= 0")
  _require(explain.num_panels >= 0, "explain.num_panels must be >= 0")
  _require(isinstance(explain.viewer, bool), "explain.viewer must be True or False")
  _one_of(explain.perturbation_mode, perturbation.MODES, "explain.perturbation_mode")
  _one_of(explain.temporal_modality, perturbation.MODALITIES, "explain.temporal_modality")
  # The set explained ('': the run's test split, else an annotation set of the catalogue,
  # stt/explain/explained_split.py), and the sound-localization protocol's variants.
  _one_of(explain.dataset, ("", *catalogue.annotation_sets()), "explain.dataset")
  sets = explain.get("datasets", ())
  _require(
      isinstance(sets, (tuple, list)),
      "explain.datasets must be a tuple of set names, e.g. "
      "--config.explain.datasets=\"('', 'vggss')\" ('' = the run's test split)",
  )
  for name in sets:
    _one_of(name, ("", *catalogue.annotation_sets()), "explain.datasets")
  _require(len(set(sets)) == len(sets), f"explain.datasets names a set twice: {tuple(sets)}")
  _require(
      not (sets and explain.dataset),
      f"explain.dataset={explain.dataset!r} and explain.datasets={tuple(sets)} both name the "
      "sets to explain: give one of them",
  )
  _one_of(explain.annotated_frame, catalogue.annotated_frames(), "explain.annotated_frame")
  _one_of(explain.gt_geometry, sound_source_benchmark.GT_GEOMETRIES, "explain.gt_geometry")
  _one_of(explain.median_rule, sound_source_benchmark.MEDIAN_RULES, "explain.median_rule")
  _require(
      explain.perturbation_mode == "feature" or config.dataset.input == "raw",
      "explain.perturbation_mode='pixel' removes pixels and log-mel bins: it needs "
      "dataset.input='raw' (precomputed features can only be removed in 'feature' mode)",
  )
  baselines = explain.get("perturbation_baselines", ("zero",))
  _require(
      isinstance(baselines, (tuple, list))
      and "zero" in baselines
      and len(set(baselines)) == len(baselines),
      "explain.perturbation_baselines must be a tuple of distinct names with 'zero' (the "
      f"tables' and figures' baseline), e.g. \"('zero', 'road')\"; got {baselines!r}",
  )
  for name in baselines:
    _one_of(name, perturbation.BASELINES, "explain.perturbation_baselines")
  _require(
      "road" not in baselines or explain.perturbation_mode == "feature",
      "explain.perturbation_baselines 'road' imputes backbone features: it needs "
      "explain.perturbation_mode='feature' (or set explain.perturbation_baselines=\"('zero',)\")",
  )
  _require(explain.get("road_noise", 0.0) >= 0, "explain.road_noise must be >= 0")


def _validate_input(config: ml_collections.ConfigDict):
  """dataset.input must exist for the dataset and match the backbones."""
  kind, model = config.dataset.input, config.model
  inputs = catalogue.inputs()
  _one_of(kind, inputs, "dataset.input")
  _require(
      config.dataset.name in inputs[kind],
      f"dataset.input={kind!r} is not available for dataset.name={config.dataset.name!r} "
      f"(it is for {list(inputs[kind])})",
  )
  for key in ("visual_backbone", "audio_backbone"):
    backbone = model[key]
    if kind == "features":
      _require(
          backbone == "features",
          f"dataset.input='features' needs model.{key}='features', not {backbone!r}",
      )
    else:
      _require(
          backbone != "features",
          f"model.{key}='features' needs precomputed features: set dataset.input='features'",
      )
  if kind == "features":
    _require(
        not config.input.random_flip,
        "input.random_flip=True has no effect on precomputed features; set it False",
    )
  _require(
      config.input.num_workers >= 0,
      f"input.num_workers={config.input.num_workers} must be >= 0 (0: read in this process)",
  )
  _require(
      config.input.prefetch_buffer_size >= 1,
      f"input.prefetch_buffer_size={config.input.prefetch_buffer_size} must be >= 1 "
      "(batches read ahead)",
  )
  _require(
      not (config.input.get("device_resident", False) and config.input.random_flip),
      "input.device_resident=True gathers stored examples on the device, without the host's "
      "augmentation: set input.random_flip=False",
  )


def _validate_task(config: ml_collections.ConfigDict):
  """Each task's model and loss settings; then whether the trainer carries it out."""
  task = config.task
  _one_of(task, tasks.TASKS, "task")
  if task == "localization":
    _require(
        config.model.segment_head and config.loss.segment_weight > 0,
        "task='localization' trains on segment labels: set model.segment_head=True and "
        "loss.segment_weight > 0",
    )
  elif task == "weak":
    _require(
        "when" in models.explanations_of(config.model),
        f"task='weak' reads the model's own 'when'; model.name="
        f"{config.model.name!r} has none (use stan, or task='localization')",
    )
    _require(
        config.loss.segment_weight == 0,
        "task='weak' trains on video labels only: set loss.segment_weight=0",
    )
    _require(
        config.localization.event_threshold > 0,
        "localization.event_threshold must be > 0 (1.0: a segment is an event where the "
        "model's 'when' exceeds uniform)",
    )
