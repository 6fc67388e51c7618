"""Per-frame visual backbones (ResNet family) and per-segment audio backbones (VGGish family).

Images are NHWC. Parameters are float32; activations use the compute `dtype`.
Layouts follow torchvision's ResNet (stride on the 3x3 conv of a bottleneck, "v1.5")
and the VGGish audio network, so their weights could be ported.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

from flax import nnx
import jax
import jax.numpy as jnp

# torchvision's BatchNorm: momentum 0.1 in its convention = 0.9 decay here, eps 1e-5.
_BN_DECAY = 0.9
_CONV_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # kaiming, fan_out


def _conv(
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int,
    dtype,
    rngs: nnx.Rngs,
    use_bias: bool = False,
    pad: int | None = None,
) -> nnx.Conv:
  """A conv with 'same'-style padding kernel//2 unless `pad` is given (0 for patchify)."""
  pad = kernel // 2 if pad is None else pad
  return nnx.Conv(
      c_in,
      c_out,
      kernel_size=(kernel, kernel),
      strides=(stride, stride),
      padding=((pad, pad), (pad, pad)),
      use_bias=use_bias,
      kernel_init=_CONV_INIT,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
  )


def _batch_norm(channels: int, dtype, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(
      channels, momentum=_BN_DECAY, epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, rngs=rngs
  )


def _norm(bn: nnx.BatchNorm, x: jax.Array, train: bool, mask: jax.Array | None) -> jax.Array:
  """bn(x) x [n,H,W,C]; in training its batch statistics use only the images where mask [n]
  is True (all when mask is None or selects none), so padding does not enter them."""
  if not train or mask is None:
    return bn(x, use_running_average=not train)
  mask = jnp.asarray(mask, bool)
  mask = mask | ~mask.any()  # nothing valid: all images, rather than NaN statistics
  return bn(x, use_running_average=False, mask=jnp.broadcast_to(mask[:, None, None, None], x.shape))


class BasicBlock(nnx.Module):
  """Two 3x3 convs with identity (or 1x1 projection) shortcut. Output channels = width."""

  expansion = 1

  def __init__(self, c_in: int, width: int, stride: int, *, dtype, rngs: nnx.Rngs):
    self.conv1 = _conv(c_in, width, 3, stride, dtype, rngs)
    self.bn1 = _batch_norm(width, dtype, rngs)
    self.conv2 = _conv(width, width, 3, 1, dtype, rngs)
    self.bn2 = _batch_norm(width, dtype, rngs)
    self.has_projection = stride != 1 or c_in != width
    if self.has_projection:
      self.proj_conv = _conv(c_in, width, 1, stride, dtype, rngs)
      self.proj_bn = _batch_norm(width, dtype, rngs)

  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    """x [n,H,W,c_in] -> [n,H/stride,W/stride,width]; mask [n]: see `_norm`."""
    y = nnx.relu(_norm(self.bn1, self.conv1(x), train, mask))
    y = _norm(self.bn2, self.conv2(y), train, mask)
    if self.has_projection:
      x = _norm(self.proj_bn, self.proj_conv(x), train, mask)
    return nnx.relu(x + y)


class Bottleneck(nnx.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand x4, with shortcut. Output channels = 4*width."""

  expansion = 4

  def __init__(self, c_in: int, width: int, stride: int, *, dtype, rngs: nnx.Rngs):
    c_out = width * self.expansion
    self.conv1 = _conv(c_in, width, 1, 1, dtype, rngs)
    self.bn1 = _batch_norm(width, dtype, rngs)
    self.conv2 = _conv(width, width, 3, stride, dtype, rngs)
    self.bn2 = _batch_norm(width, dtype, rngs)
    self.conv3 = _conv(width, c_out, 1, 1, dtype, rngs)
    self.bn3 = _batch_norm(c_out, dtype, rngs)
    self.has_projection = stride != 1 or c_in != c_out
    if self.has_projection:
      self.proj_conv = _conv(c_in, c_out, 1, stride, dtype, rngs)
      self.proj_bn = _batch_norm(c_out, dtype, rngs)

  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    """x [n,H,W,c_in] -> [n,H/stride,W/stride,4*width]; mask [n]: see `_norm`."""
    y = nnx.relu(_norm(self.bn1, self.conv1(x), train, mask))
    y = nnx.relu(_norm(self.bn2, self.conv2(y), train, mask))
    y = _norm(self.bn3, self.conv3(y), train, mask)
    if self.has_projection:
      x = _norm(self.proj_bn, self.proj_conv(x), train, mask)
    return nnx.relu(x + y)


class ResNet(nnx.Module):
  """ResNet trunk without pooling/classifier: images [n,H,W,3] -> feature map [n,h,w,C].

  stem='imagenet': 7x7 stride-2 conv + BN + ReLU + 3x3 stride-2 max pool (torchvision).
  stem='patch4'  : 4x4 stride-4 "patchify" conv + BN + ReLU, no pool (cheap, for small frames).
  Stage i has stage_sizes[i] blocks of widths[i]; its first block has stride strides[i].
  """

  def __init__(
      self,
      stage_sizes: Sequence[int],
      block: type,
      widths: Sequence[int],
      strides: Sequence[int],
      *,
      stem: str = "imagenet",
      stem_width: int = 64,
      dtype=jnp.float32,
      rngs: nnx.Rngs,
  ):
    if stem not in ("imagenet", "patch4"):
      raise ValueError(f"unknown stem {stem!r}")
    self.stem = stem
    self.stage_sizes = tuple(stage_sizes)  # blocks per stage: torchvision's layer1..layer4
    kernel, stride, pad = (7, 2, 3) if stem == "imagenet" else (4, 4, 0)
    self.stem_conv = _conv(3, stem_width, kernel, stride, dtype, rngs, pad=pad)
    self.stem_bn = _batch_norm(stem_width, dtype, rngs)
    blocks = []
    c_in = stem_width
    for num_blocks, width, first_stride in zip(stage_sizes, widths, strides):
      for i in range(num_blocks):
        blocks.append(block(c_in, width, first_stride if i == 0 else 1, dtype=dtype, rngs=rngs))
        c_in = width * block.expansion
    self.blocks = nnx.List(blocks)
    self.out_channels = c_in

  def __call__(self, images: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    """images [n,H,W,3] (normalised) -> [n,h,w,out_channels]. mask [n] bool: the images whose
    BatchNorm statistics count in training (None: all); padded frames are False."""
    x = nnx.relu(_norm(self.stem_bn, self.stem_conv(images), train, mask))
    if self.stem == "imagenet":
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for block in self.blocks:
      x = block(x, train=train, mask=mask)
    return x


def resnet18(*, dtype=jnp.float32, rngs: nnx.Rngs) -> ResNet:
  """224x224 -> 7x7x512; 11.18M parameters."""
  return ResNet((2, 2, 2, 2), BasicBlock, (64, 128, 256, 512), (1, 2, 2, 2), dtype=dtype, rngs=rngs)


def resnet50(*, dtype=jnp.float32, rngs: nnx.Rngs) -> ResNet:
  """224x224 -> 7x7x2048; 23.5M parameters."""
  return ResNet((3, 4, 6, 3), Bottleneck, (64, 128, 256, 512), (1, 2, 2, 2), dtype=dtype, rngs=rngs)


def resnet_tiny(*, dtype=jnp.float32, rngs: nnx.Rngs) -> ResNet:
  """Fast CPU variant: 64x64 -> 8x8x32 (stride 8).

  A 4x4 stride-4 patchify stem (16 ch), then a stride-2 and a stride-1 BasicBlock of 32.
  About 10x cheaper than a stride-1 3x3 stem at the same output grid (benchmarks/RESULTS.md).
  """
  return ResNet(
      (1, 1), BasicBlock, (32, 32), (2, 1), stem="patch4", stem_width=16, dtype=dtype, rngs=rngs
  )


class VGGish(nnx.Module):
  """VGGish: log-mel patch [n,96,64] -> embedding [n,128].

  conv64-pool-conv128-pool-conv256x2-pool-conv512x2-pool-fc4096-fc4096-fc128, as the official
  TF-slim model (tensorflow/models research/audioset/vggish): ReLU after every layer but the
  last (the embedding is fc2's pre-activation; the torchvggish port adds a final ReLU), and
  the [n,6,4,512] map is flattened in NHWC order before fc1.
  """

  def __init__(self, *, dtype=jnp.float32, rngs: nnx.Rngs):
    conv = functools.partial(_conv, kernel=3, stride=1, dtype=dtype, rngs=rngs, use_bias=True)
    self.conv_groups = nnx.List(
        [
            nnx.List([conv(1, 64)]),
            nnx.List([conv(64, 128)]),
            nnx.List([conv(128, 256), conv(256, 256)]),
            nnx.List([conv(256, 512), conv(512, 512)]),
        ]
    )
    dense = functools.partial(nnx.Linear, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    self.fcs = nnx.List([dense(512 * 6 * 4, 4096), dense(4096, 4096), dense(4096, 128)])
    self.out_features = 128

  def __call__(self, log_mel: jax.Array, *, train: bool) -> jax.Array:
    """log_mel [n,96,64] -> [n,128]. `train` is unused (no BatchNorm/dropout)."""
    del train
    x = log_mel[..., None]
    for group in self.conv_groups:
      for conv in group:
        x = nnx.relu(conv(x))
      x = nnx.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)  # [n,6*4*512], NHWC order as TF's flatten
    for fc in self.fcs[:-1]:
      x = nnx.relu(fc(x))
    return self.fcs[-1](x)


class VGGishTiny(nnx.Module):
  """Fast CPU variant: conv4x4/4(16) - conv3x3/2(32) - conv3x3/2(64), ReLU, global mean -> 64.

  96x64 -> 24x16 -> 12x8 -> 6x4: the log-mel is patchified first, like resnet_tiny's frames,
  because full-resolution 3x3 convs dominated the CPU step (benchmarks/RESULTS.md).
  """

  def __init__(self, widths: Sequence[int] = (16, 32, 64), *, dtype=jnp.float32, rngs: nnx.Rngs):
    c_ins = (1,) + tuple(widths[:-1])
    self.convs = nnx.List(
        [
            _conv(c_in, c_out, 4, 4, dtype, rngs, use_bias=True, pad=0)
            if i == 0
            else _conv(c_in, c_out, 3, 2, dtype, rngs, use_bias=True)
            for i, (c_in, c_out) in enumerate(zip(c_ins, widths))
        ]
    )
    self.out_features = widths[-1]

  def __call__(self, log_mel: jax.Array, *, train: bool) -> jax.Array:
    """log_mel [n,96,64] -> [n,widths[-1]]."""
    del train
    x = log_mel[..., None]
    for conv in self.convs:
      x = nnx.relu(conv(x))
    return jnp.mean(x, axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A backbone of the tables below: its constructor (dtype=, rngs=) and, for visual ones, the
  stride from frame pixels to grid cells. `create` None: precomputed features, no network."""

  create: Callable[..., nnx.Module] | None
  stride: int | None = None


# The one list of backbone names (config model.visual_backbone / model.audio_backbone).
VISUAL_BACKBONES = {
    "resnet18": Backbone(resnet18, stride=32),
    "resnet50": Backbone(resnet50, stride=32),
    "resnet_tiny": Backbone(resnet_tiny, stride=8),
    "features": Backbone(None),
}
AUDIO_BACKBONES = {
    "vggish": Backbone(VGGish),
    "vggish_tiny": Backbone(VGGishTiny),
    "features": Backbone(None),
}
