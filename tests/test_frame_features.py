"""model.frame_features (stt/models/encoders.py): 'mean' leaves every number as it was; 'stack'
keeps a segment's time course (frame g / audio sub-window g in channel group g) for every model.
"""

from flax import nnx
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from configs.common import default_model_config
from stt import config_validation
from stt import models
from stt.models import encoders

B, T, F, CLASSES = 2, 2, 4, 3


def _config(name, mode="mean"):
  config = default_model_config()
  config.update(name=name, grid_size=(2, 2), width=8, num_heads=2, num_segments=T, dropout=0.0)
  config.update(frame_features=mode, frame_groups=F if mode == "stack" else 1)
  return config


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  return {
      "frames": jnp.asarray(rng.integers(0, 256, (B, T, F, 16, 16, 3)), jnp.uint8),
      "log_mel": jnp.asarray(rng.normal(size=(B, T, 96, 64)), jnp.float32),
      "segment_mask": jnp.ones((B, T), bool),
  }


# The logits of these models on _inputs() before frame_features existed (commit df98114).
BEFORE = {
    "stan": [[0.575111, -0.497386, 0.366204], [0.490992, -0.363868, 0.401490]],
    "late_fusion": [[0.790847, -0.524894, -0.128325], [0.919209, -0.618559, -0.117850]],
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_mean_is_the_default_and_leaves_the_numbers_unchanged(name):
  assert default_model_config().frame_features == "mean"
  model = models.create_model(_config(name), CLASSES, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(model(_inputs())["logits"], BEFORE[name], atol=2e-6)


def test_stack_puts_frame_g_and_audio_window_g_in_channel_group_g():
  model = models.create_model(_config("stan", "stack"), CLASSES, rngs=nnx.Rngs(0))
  inputs = _inputs()
  visual_map, audio_vec = model.encode(inputs)
  frames = inputs["frames"].reshape((-1,) + inputs["frames"].shape[3:])
  per_frame = model.visual_backbone(encoders.normalize_frames(frames), train=False)
  per_frame = np.asarray(per_frame).reshape((B, T, F) + per_frame.shape[1:])  # [B,T,F,h,w,Cv]
  cv = per_frame.shape[-1]
  assert visual_map.shape == (B, T, 2, 2, cv)
  for g in range(F):
    group = slice(g * cv // F, (g + 1) * cv // F)
    np.testing.assert_allclose(visual_map[..., group], per_frame[:, :, g, ..., group], atol=1e-5)
  log_mel = np.asarray(inputs["log_mel"])
  ca = audio_vec.shape[-1]
  for g in range(F):
    window = log_mel[:, :, g * 24 : (g + 1) * 24]
    tiled = np.concatenate([window] * F, axis=2).reshape(B * T, 96, 64)
    direct = np.asarray(model.audio_backbone(jnp.asarray(tiled), train=False)).reshape(B, T, ca)
    group = slice(g * ca // F, (g + 1) * ca // F)
    np.testing.assert_allclose(audio_vec[..., group], direct[..., group], atol=1e-5)


def test_stack_sees_the_order_of_frames_and_sound_that_mean_erases():
  inputs = _inputs()
  shuffled = dict(inputs)
  shuffled["frames"] = inputs["frames"][:, :, ::-1]
  shuffled["log_mel"] = jnp.concatenate(
      [inputs["log_mel"][:, :, 72:], inputs["log_mel"][:, :, :72]], axis=2
  )
  gaps = {}
  for mode in ("mean", "stack"):
    model = models.create_model(_config("stan", mode), CLASSES, rngs=nnx.Rngs(0))
    visual, _ = model.encode(inputs)
    visual_shuffled, _ = model.encode(shuffled)
    gaps[mode] = float(jnp.max(jnp.abs(visual - visual_shuffled)))
  assert gaps["mean"] < 1e-5 < 0.01 < gaps["stack"]


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_runs_with_stacked_frames(name):
  model = models.create_model(_config(name, "stack"), CLASSES, rngs=nnx.Rngs(0))
  assert getattr(model.visual_backbone, "frame_features", "stack") == "stack"
  logits = model(_inputs())["logits"]
  assert logits.shape == (B, CLASSES) and bool(jnp.all(jnp.isfinite(logits)))


def test_stack_rejects_groups_that_do_not_match_the_frames():
  config = _config("stan", "stack")
  config.frame_groups = 2
  model = models.create_model(config, CLASSES, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="frame_groups=2"):
    model(_inputs())
  config.frame_features = "sum"
  with pytest.raises(ValueError, match="unknown model.frame_features"):
    models.create_model(config, CLASSES, rngs=nnx.Rngs(0))


def test_level_2_config_stacks_its_frames_and_the_validation_checks_the_groups():
  config = synthetic.get_config("hard2,smoke")
  assert (config.model.frame_features, config.model.frame_groups) == ("stack", 4)
  assert config.dataset.frames_per_segment == 4
  config_validation.validate(config, device_count=1)
  assert synthetic.get_config("smoke").model.frame_features == "mean"
  config.model.frame_groups = 2
  with pytest.raises(config_validation.ConfigError, match="frame_groups=2 equal to"):
    config_validation.validate(config, device_count=1)
  config.model.frame_features = "sum"
  with pytest.raises(config_validation.ConfigError, match="frame_features='sum'"):
    config_validation.validate(config, device_count=1)
