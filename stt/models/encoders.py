"""The backbones every model shares: frames and log-mel in, a visual map and audio vectors out.

    frames [B,T,F,H,W,3] uint8 --visual backbone, mean over F--> visual_map [B,T,h,w,Cv]
    log_mel [B,T,96,64]        --audio backbone-------------> audio_vec [B,T,Ca]

With precomputed features (backbone 'features') the inputs' `visual_features` [B,T,h,w,Cv] and
`audio_features` [B,T,Ca] pass through. Backbones are looked up in the tables of backbones.py.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from stt.models import backbones

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_visual_backbone(name: str, feature_dim: int, *, dtype, rngs: nnx.Rngs):
  """Returns (module or None for precomputed 'features', output channels Cv)."""
  if name not in backbones.VISUAL_BACKBONES:
    raise ValueError(f"unknown visual_backbone {name!r}")
  create = backbones.VISUAL_BACKBONES[name].create
  if create is None:
    return None, feature_dim
  module = create(dtype=dtype, rngs=rngs)
  return module, module.out_channels


def make_audio_backbone(name: str, feature_dim: int, *, dtype, rngs: nnx.Rngs):
  """Returns (module or None for precomputed 'features', output size Ca)."""
  if name not in backbones.AUDIO_BACKBONES:
    raise ValueError(f"unknown audio_backbone {name!r}")
  create = backbones.AUDIO_BACKBONES[name].create
  if create is None:
    return None, feature_dim
  module = create(dtype=dtype, rngs=rngs)
  return module, module.out_features


def grid_size_of(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(h, w) of `config.grid_size` (a model config); a clear error when it is still None."""
  if config.grid_size is None:
    raise ValueError(
        "model.grid_size is None: stt.datasets.load derives it from the backbone "
        "and the frame size (or the features); set it when building a model "
        "without a dataset"
    )
  return tuple(config.grid_size)


def normalize_frames(frames: jax.Array) -> jax.Array:
  """uint8 RGB [..., 3] -> float32 (x/255 - ImageNet mean) / std."""
  x = frames.astype(jnp.float32) / 255.0
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def encode_visual(visual_backbone, inputs: dict, *, dtype, train: bool = False) -> jax.Array:
  """visual_map [B,T,h,w,Cv]: the backbone on inputs['frames'] [B,T,F,H,W,3] uint8 (averaged
  over F), or inputs['visual_features'] [B,T,h,w,Cv] when `visual_backbone` is None. In
  training, the frames of padded segments (inputs['segment_mask'] False) do not enter the
  backbone's BatchNorm statistics."""
  if visual_backbone is None:
    return jnp.asarray(inputs["visual_features"])
  frames = inputs["frames"]
  b, t, f = frames.shape[:3]
  images = normalize_frames(frames.reshape((b * t * f,) + frames.shape[3:]))
  frame_mask = None
  if train and inputs.get("segment_mask") is not None:  # [B*T*F], frames of valid segments
    frame_mask = jnp.repeat(jnp.asarray(inputs["segment_mask"], bool).reshape(-1), f)
  maps = visual_backbone(images.astype(dtype), train=train, mask=frame_mask)
  return maps.reshape((b, t, f) + maps.shape[1:]).mean(axis=2)


def encode_audio(audio_backbone, inputs: dict, *, dtype, train: bool = False) -> jax.Array:
  """audio_vec [B,T,Ca]: the backbone on inputs['log_mel'] [B,T,96,64], or
  inputs['audio_features'] [B,T,Ca] when `audio_backbone` is None."""
  if audio_backbone is None:
    return jnp.asarray(inputs["audio_features"])
  log_mel = inputs["log_mel"]
  b, t = log_mel.shape[:2]
  vec = audio_backbone(log_mel.reshape((b * t,) + log_mel.shape[2:]).astype(dtype), train=train)
  return vec.reshape(b, t, -1)


def encode(
    visual_backbone, audio_backbone, inputs: dict, *, dtype, train: bool = False
) -> tuple[jax.Array, jax.Array]:
  """(visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca]): `encode_visual`, then `encode_audio`."""
  return (
      encode_visual(visual_backbone, inputs, dtype=dtype, train=train),
      encode_audio(audio_backbone, inputs, dtype=dtype, train=train),
  )
