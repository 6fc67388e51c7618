"""The backbones every model shares: frames and log-mel in, a visual map and audio vectors out.

    frames [B,T,F,H,W,3] uint8 --visual backbone, mean over F--> visual_map [B,T,h,w,Cv]
    log_mel [B,T,96,64]        --audio backbone-------------> audio_vec [B,T,Ca]

With precomputed features (backbone 'features') the inputs' `visual_features` [B,T,h,w,Cv] and
`audio_features` [B,T,Ca] pass through. Backbones are looked up in the tables of backbones.py.

Frame-level features (`model.frame_features`, set on the backbones by `set_frame_features`):
'mean' (the default) averages a segment's F frames as above. 'stack' keeps the segment's time
course in the same channel count, for every model alike (they all encode through this file): the
Cv channels are cut into G = `model.frame_groups` groups of Cv/G, and group g of a cell holds
frame g's features (G = F); the audio's 96 log-mel frames are cut into G sub-windows, each tiled
back to 96 frames through the backbone, and group g of audio_vec holds sub-window g's features.
Parameter-free: the models' input projections and every shape downstream are unchanged, and the
shared backbone learns which features every group carries (issue 27's level 2 needs the
within-segment synchrony of a visual pulse and the sound's envelope).
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


FRAME_FEATURES = ("mean", "stack")


def set_frame_features(model, mode: str, groups: int = 1) -> None:
  """Sets `frame_features` (module docstring) on the model's `visual_backbone` and
  `audio_backbone`; 'stack' needs backbones (not precomputed features) and Cv, Ca divisible by
  `groups`."""
  if mode not in FRAME_FEATURES:
    raise ValueError(f"unknown model.frame_features {mode!r} (known: {FRAME_FEATURES})")
  for name in ("visual_backbone", "audio_backbone"):
    backbone = getattr(model, name, None)
    if mode == "stack" and backbone is None and name[:5] in model.MODALITIES:
      raise ValueError("model.frame_features='stack' needs backbones, not precomputed features")
    if backbone is not None:
      backbone.frame_features = mode
      backbone.frame_groups = int(groups)


def _groups_of(backbone) -> int:
  """G of a backbone in 'stack' mode, 0 in 'mean' mode."""
  if getattr(backbone, "frame_features", "mean") != "stack":
    return 0
  return backbone.frame_groups


def _stack_groups(vectors: jax.Array) -> jax.Array:
  """[..., G, C] -> [..., C]: channel group g (C/G channels) taken from vector g."""
  g, c = vectors.shape[-2:]
  if c % g:
    raise ValueError(f"frame_features='stack': {c} channels do not split into {g} groups")
  select = jnp.repeat(jnp.eye(g, dtype=vectors.dtype), c // g, axis=1)  # [G,C]
  return jnp.sum(vectors * select, axis=-2)


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
  over F, or frame f in channel group f under frame_features 'stack'), or inputs['visual_features'] [B,T,h,w,Cv] when `visual_backbone` is None. In
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
  maps = maps.reshape((b, t, f) + maps.shape[1:])
  groups = _groups_of(visual_backbone)
  if not groups:
    return maps.mean(axis=2)
  if groups != f:
    raise ValueError(f"frame_features='stack' with frame_groups={groups} but F={f} frames")
  return _stack_groups(jnp.moveaxis(maps, 2, -2))  # [B,T,h,w,F,Cv] -> [B,T,h,w,Cv]


def encode_audio(audio_backbone, inputs: dict, *, dtype, train: bool = False) -> jax.Array:
  """audio_vec [B,T,Ca]: the backbone on inputs['log_mel'] [B,T,96,64] (on each of G tiled
  sub-windows, group g from sub-window g, under frame_features 'stack'), or
  inputs['audio_features'] [B,T,Ca] when `audio_backbone` is None."""
  if audio_backbone is None:
    return jnp.asarray(inputs["audio_features"])
  log_mel = inputs["log_mel"]
  b, t = log_mel.shape[:2]
  groups = _groups_of(audio_backbone)
  if groups:
    n, mels = log_mel.shape[2:]
    if n % groups:
      raise ValueError(f"frame_features='stack': {n} log-mel frames in {groups} sub-windows")
    windows = log_mel.reshape((b * t * groups, 1, n // groups, mels))
    tiled = jnp.tile(windows, (1, groups, 1, 1)).reshape((b * t * groups, n, mels))
    vec = audio_backbone(tiled.astype(dtype), train=train)
    return _stack_groups(vec.reshape(b, t, groups, -1))
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
