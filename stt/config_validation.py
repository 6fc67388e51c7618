"""Checks a config before anything expensive runs, with one-line messages that say what to fix."""

from __future__ import annotations

import math

import ml_collections

DATASETS = ("synthetic", "ave")
VISUAL_BACKBONES = {"resnet_tiny": 8, "resnet18": 32, "resnet50": 32, "features": None}  # stride
AUDIO_BACKBONES = ("vggish", "vggish_tiny", "features")


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
    _require(size > 0 and size % device_count == 0,
             f"{key}={size} must be a positive multiple of the device count ({device_count})")
    _require(size % process_count == 0,
             f"{key}={size} must be divisible by the number of processes ({process_count})")
  fsdp = config.mesh.fsdp
  _require(fsdp >= 1 and device_count % fsdp == 0,
           f"mesh.fsdp={fsdp} must be a positive divisor of the device count ({device_count})")
  for key in ("num_train_steps", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
              "keep_checkpoints"):
    _require(config[key] >= 1, f"{key}={config[key]} must be >= 1")
  _require(config.optimizer.learning_rate > 0, "optimizer.learning_rate must be > 0")
  _require(config.optimizer.warmup_steps >= 0, "optimizer.warmup_steps must be >= 0")

  _one_of(config.dataset.name, DATASETS, "dataset.name")
  for key in ("num_segments", "frames_per_segment", "frame_size"):
    _require(config.dataset[key] >= 1, f"dataset.{key} must be >= 1")

  model = config.model
  _one_of(model.visual_backbone, VISUAL_BACKBONES, "model.visual_backbone")
  _one_of(model.audio_backbone, AUDIO_BACKBONES, "model.audio_backbone")
  _one_of(model.spatial_query, ("audio", "learned", "none"), "model.spatial_query")
  _one_of(model.temporal_pool, ("attention", "mean"), "model.temporal_pool")
  _one_of(model.dtype, ("float32", "bfloat16"), "model.dtype")
  _require(model.width % model.num_heads == 0,
           f"model.width={model.width} must be divisible by model.num_heads={model.num_heads}")
  _require(model.num_segments == config.dataset.num_segments,
           f"model.num_segments={model.num_segments} must equal "
           f"dataset.num_segments={config.dataset.num_segments}")
  stride = VISUAL_BACKBONES[model.visual_backbone]
  if stride is not None:
    side = math.ceil(config.dataset.frame_size / stride)
    _require(tuple(model.grid_size) == (side, side),
             f"model.grid_size={tuple(model.grid_size)} does not match {model.visual_backbone} on "
             f"{config.dataset.frame_size}px frames; set it to ({side}, {side})")
  _require(config.loss.segment_weight == 0 or model.segment_head,
           "loss.segment_weight > 0 needs model.segment_head=True")
