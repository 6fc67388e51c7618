"""Pretrained backbone weights: torchvision/timm ResNet-18/50 and VGGish into stt's backbones.

Files (docs/pretrained.md says where to get them):
  *.safetensors          read with safetensors.numpy; torch state-dict names and layouts
  *.pth / *.pt / *.bin   torch.load(weights_only=True), only when torch is installed
  anything else          a TensorFlow checkpoint (VGGish's vggish_model.ckpt)

Layouts: torch conv weight [O,I,kh,kw] -> kernel [kh,kw,I,O]; torch Linear weight [out,in]
-> kernel [in,out]; BatchNorm weight/bias/running_mean/running_var -> scale/bias/mean/var.
TF-slim's VGGish weights are already [kh,kw,I,O] and [in,out].

Every tensor of the module must come from the file and every tensor of the file must be used,
except the ResNet classifier (fc.*), BatchNorm's num_batches_tracked counters, the torchvggish
PCA postprocessor (pproc.*) and TF's global_step, which are reported as ignored. All of it is
checked before anything is written, so a failed load leaves the model unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from flax import nnx
import jax
import ml_collections
import numpy as np

from stt.models import backbones
from stt.models import stan

_WRAPPER_PREFIXES = ("module.", "model.", "backbone.")  # DDP / training-script wrappers
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_CONV_OIHW_TO_HWIO = (2, 3, 1, 0)
_LINEAR_OUT_IN_TO_IN_OUT = (1, 0)
_RESNET_WEIGHTS_FIT = ("resnet18", "resnet50")
_VGGISH_WEIGHTS_FIT = ("vggish",)
# VGGish layers in module order: (official TF-slim scope, torchvggish state-dict prefix).
_VGGISH_CONV_NAMES = (
    ("vggish/conv1", "features.0"),
    ("vggish/conv2", "features.3"),
    ("vggish/conv3/conv3_1", "features.6"),
    ("vggish/conv3/conv3_2", "features.8"),
    ("vggish/conv4/conv4_1", "features.11"),
    ("vggish/conv4/conv4_2", "features.13"),
)
_VGGISH_FC_NAMES = (
    ("vggish/fc1/fc1_1", "embeddings.0"),
    ("vggish/fc1/fc1_2", "embeddings.2"),
    ("vggish/fc2", "embeddings.4"),
)
_MAX_PROBLEMS_SHOWN = 8


class WeightsError(ValueError):
  """A weight file cannot be read or does not fit the module; the message names the key."""


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What one load did: file keys written into the module and file keys left out."""

  path: str
  loaded: tuple[str, ...]
  ignored: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Target:
  """One module variable and the file key it comes from; ours = file.transpose(perm)."""

  key: str
  name: str  # attribute path in the module, for messages
  variable: nnx.Variable
  perm: tuple[int, ...] | None = None

  def file_shape(self) -> tuple[int, ...]:
    """The shape the file's tensor must have, in the file's layout."""
    shape = self.variable.get_value().shape
    if self.perm is None:
      return tuple(shape)
    file_shape = [0] * len(shape)
    for axis, file_axis in enumerate(self.perm):
      file_shape[file_axis] = shape[axis]
    return tuple(file_shape)


@dataclasses.dataclass(frozen=True)
class _Plan:
  """A checked load that has not been written yet."""

  path: str
  module_name: str
  targets: tuple[_Target, ...]
  tensors: dict
  ignored: tuple[str, ...]

  def apply(self) -> LoadReport:
    for target in self.targets:
      value = self.tensors[target.key]
      if target.perm is not None:
        value = value.transpose(target.perm)
      old = target.variable.get_value()  # keeps its dtype and, if it has one, its sharding
      target.variable.set_value(
          jax.device_put(np.asarray(value, old.dtype), getattr(old, "sharding", None))
      )
    report = LoadReport(self.path, tuple(t.key for t in self.targets), self.ignored)
    logging.info(
        "Loaded %d tensors from %s into %s; ignored %s",
        len(report.loaded),
        self.path,
        self.module_name,
        _summarise(report.ignored),
    )
    return report


def read_tensors(path) -> dict[str, np.ndarray]:
  """{name: array} of a .safetensors, .pth/.pt/.bin or TensorFlow checkpoint, wrappers stripped."""
  path = os.fspath(path)
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".safetensors" or suffix in _TORCH_SUFFIXES:
    if not os.path.isfile(path):
      raise WeightsError(f"weight file {path} does not exist")
    tensors = _read_safetensors(path) if suffix == ".safetensors" else _read_torch(path)
  else:
    tensors = _read_tf_checkpoint(path)
  return _strip_wrapper_prefixes(tensors, path)


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    from safetensors.numpy import load_file
  except ImportError:
    raise WeightsError(
        f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)"
    ) from None
  try:
    return load_file(path)
  except Exception as error:  # safetensors raises its own error types for corrupt files
    raise WeightsError(f"cannot read {path} as safetensors: {_first_line(error)}") from error


def _read_torch(path: str) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError:
    raise WeightsError(
        f"{path}: reading a torch checkpoint needs torch (pip install torch), or "
        "convert it to .safetensors (docs/pretrained.md)"
    ) from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as error:
    raise WeightsError(f"cannot read {path} as a torch checkpoint: {_first_line(error)}") from error
  for wrapper in ("state_dict", "model"):  # training checkpoints keep the weights under one
    if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
      state = state[wrapper]
  if not isinstance(state, dict):
    raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
  tensors = {}
  for key, value in state.items():
    if not isinstance(value, torch.Tensor):
      raise WeightsError(f"{path}: {key!r} is a {type(value).__name__}, not a tensor")
    value = value.detach()
    tensors[key] = (value.float() if value.is_floating_point() else value).numpy()
  return tensors


def _read_tf_checkpoint(path: str) -> dict[str, np.ndarray]:
  import tensorflow as tf  # slow to import; only TF checkpoints need it

  try:
    reader = tf.train.load_checkpoint(path)
  except Exception as error:
    raise WeightsError(
        f"cannot read {path} as a TensorFlow checkpoint ({_first_line(error)}); weight files are "
        ".safetensors, .pth/.pt/.bin or a TF checkpoint such as vggish_model.ckpt"
    ) from error
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _strip_wrapper_prefixes(tensors: dict, path: str) -> dict[str, np.ndarray]:
  stripped = {}
  for key, value in tensors.items():
    name = key
    while name.startswith(_WRAPPER_PREFIXES):
      name = name.split(".", 1)[1]
    if name in stripped:
      raise WeightsError(f"{path}: two keys become {name!r} once {_WRAPPER_PREFIXES} are stripped")
    stripped[name] = value
  return stripped


def _conv_targets(key: str, name: str, conv: nnx.Conv, perm) -> list[_Target]:
  """perm: _CONV_OIHW_TO_HWIO for torch files, None for TF; bias key 'bias'/'biases' follows."""
  weight_key, bias_key = (".weight", ".bias") if perm is not None else ("/weights", "/biases")
  targets = [_Target(key + weight_key, f"{name}.kernel", conv.kernel, perm)]
  if conv.bias is not None:
    targets.append(_Target(key + bias_key, f"{name}.bias", conv.bias))
  return targets


def _batch_norm_targets(key: str, name: str, norm: nnx.BatchNorm) -> list[_Target]:
  pairs = (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"), ("running_var", "var"))
  return [
      _Target(f"{key}.{file_name}", f"{name}.{ours}", getattr(norm, ours))
      for file_name, ours in pairs
  ]


def _resnet_targets(module: backbones.ResNet) -> list[_Target]:
  """torchvision / timm ResNet names: conv1, bn1, layer{s}.{i}.conv{k}/bn{k}/downsample.{0,1}."""
  if module.stem != "imagenet":
    raise WeightsError(
        f"torchvision/timm ResNet weights need the 7x7 'imagenet' stem; this ResNet "
        f"has stem={module.stem!r} (use visual_backbone 'resnet18' or 'resnet50')"
    )
  targets = _conv_targets("conv1", "stem_conv", module.stem_conv, _CONV_OIHW_TO_HWIO)
  targets += _batch_norm_targets("bn1", "stem_bn", module.stem_bn)
  block_keys = [
      f"layer{stage}.{index}"
      for stage, size in enumerate(module.stage_sizes, 1)
      for index in range(size)
  ]
  for number, (key, block) in enumerate(zip(block_keys, module.blocks, strict=True)):
    name = f"blocks[{number}]"
    for layer in ("1", "2", "3"):
      if hasattr(block, "conv" + layer):  # conv3/bn3: Bottleneck only
        targets += _conv_targets(
            f"{key}.conv{layer}",
            f"{name}.conv{layer}",
            getattr(block, "conv" + layer),
            _CONV_OIHW_TO_HWIO,
        )
        targets += _batch_norm_targets(
            f"{key}.bn{layer}", f"{name}.bn{layer}", getattr(block, "bn" + layer)
        )
    if block.has_projection:
      targets += _conv_targets(
          f"{key}.downsample.0", f"{name}.proj_conv", block.proj_conv, _CONV_OIHW_TO_HWIO
      )
      targets += _batch_norm_targets(f"{key}.downsample.1", f"{name}.proj_bn", block.proj_bn)
  return targets


def _vggish_targets(module: backbones.VGGish, tf_names: bool) -> list[_Target]:
  """The official TF-slim names (vggish/conv1/weights, ...) or torchvggish's (features.0.weight)."""
  convs = [conv for group in module.conv_groups for conv in group]
  conv_names = [
      f"conv_groups[{g}][{i}]"
      for g, group in enumerate(module.conv_groups)
      for i in range(len(group))
  ]
  targets = []
  for conv, name, (tf_key, torch_key) in zip(convs, conv_names, _VGGISH_CONV_NAMES, strict=True):
    targets += _conv_targets(
        tf_key if tf_names else torch_key, name, conv, None if tf_names else _CONV_OIHW_TO_HWIO
    )
  for number, (fc, (tf_key, torch_key)) in enumerate(
      zip(module.fcs, _VGGISH_FC_NAMES, strict=True)
  ):
    name = f"fcs[{number}]"
    if tf_names:
      targets += [
          _Target(f"{tf_key}/weights", f"{name}.kernel", fc.kernel),
          _Target(f"{tf_key}/biases", f"{name}.bias", fc.bias),
      ]
    else:
      targets += [
          _Target(f"{torch_key}.weight", f"{name}.kernel", fc.kernel, _LINEAR_OUT_IN_TO_IN_OUT),
          _Target(f"{torch_key}.bias", f"{name}.bias", fc.bias),
      ]
  return targets


def _check(
    path: str,
    module_name: str,
    targets: list[_Target],
    tensors: dict,
    ignored: list[str],
    hint: str = "",
) -> _Plan:
  """Raises WeightsError listing every missing, unexpected or mis-shaped key."""
  problems = []
  for target in targets:
    expected = target.file_shape()
    if target.key not in tensors:
      problems.append(f"missing key {target.key!r} (expected shape {expected} for {target.name})")
      continue
    value = tensors[target.key]
    if tuple(value.shape) != expected:
      problems.append(
          f"{target.key!r} has shape {tuple(value.shape)} in the file but {target.name}"
          f" needs {expected}"
      )
    elif not np.issubdtype(value.dtype, np.floating):
      problems.append(f"{target.key!r} has dtype {value.dtype}, not floating point")
  used = {target.key for target in targets} | set(ignored)
  problems += [
      f"unexpected key {key!r} with shape {tuple(tensors[key].shape)}"
      for key in tensors
      if key not in used
  ]
  if problems:
    shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
    more = len(problems) - _MAX_PROBLEMS_SHOWN
    raise WeightsError(
        f"{path} does not fit {module_name} ({len(problems)} problems): {shown}"
        + (f"; and {more} more" if more > 0 else "")
        + hint
    )
  return _Plan(path, module_name, tuple(targets), tensors, tuple(ignored))


def _plan_resnet(module: backbones.ResNet, path) -> _Plan:
  targets = _resnet_targets(module)
  path = os.fspath(path)
  tensors = read_tensors(path)
  ignored = [
      key for key in tensors if key.startswith("fc.") or key.endswith(".num_batches_tracked")
  ]
  file_is_bottleneck = "layer1.0.conv3.weight" in tensors
  module_is_bottleneck = isinstance(module.blocks[0], backbones.Bottleneck)
  hint = ""
  if file_is_bottleneck != module_is_bottleneck:
    hint = (
        ". The file is a "
        + (
            "Bottleneck (ResNet-50-like)"
            if file_is_bottleneck
            else "BasicBlock (ResNet-18/34-like)"
        )
        + " network; the module is not"
    )
  name = f"ResNet{tuple(module.stage_sizes)} with {type(module.blocks[0]).__name__} blocks"
  return _check(path, name, targets, tensors, ignored, hint)


def _plan_vggish(module: backbones.VGGish, path) -> _Plan:
  path = os.fspath(path)
  tensors = read_tensors(path)
  tf_names = any(key.startswith("vggish/") for key in tensors)
  targets = _vggish_targets(module, tf_names)
  ignored = [key for key in tensors if key.startswith("pproc.") or key == "global_step"]
  layout = "VGGish (TF-slim names)" if tf_names else "VGGish (torchvggish names)"
  return _check(path, layout, targets, tensors, ignored)


def load_resnet(module: backbones.ResNet, path) -> LoadReport:
  """Writes a torchvision/timm ResNet state dict (resnet18/resnet50 layouts) into `module`."""
  return _plan_resnet(module, path).apply()


def load_vggish(module: backbones.VGGish, path) -> LoadReport:
  """Writes VGGish weights (official vggish_model.ckpt, or torchvggish's) into `module`."""
  return _plan_vggish(module, path).apply()


def load_backbone_weights(
    model: stan.Stan, model_config: ml_collections.ConfigDict
) -> list[LoadReport]:
  """Loads model_config.visual_weights / audio_weights (when set) into the model's backbones.

  Both files are read and checked before either is written. Returns one report per file.
  """
  plans = []
  visual_path = model_config.get("visual_weights")
  if visual_path:
    if model_config.visual_backbone not in _RESNET_WEIGHTS_FIT:
      raise WeightsError(
          f"model.visual_weights is set but model.visual_backbone="
          f"{model_config.visual_backbone!r}; the weights fit {_RESNET_WEIGHTS_FIT}"
      )
    plans.append(_plan_resnet(model.visual_backbone, visual_path))
  audio_path = model_config.get("audio_weights")
  if audio_path:
    if model_config.audio_backbone not in _VGGISH_WEIGHTS_FIT:
      raise WeightsError(
          f"model.audio_weights is set but model.audio_backbone="
          f"{model_config.audio_backbone!r}; the weights fit {_VGGISH_WEIGHTS_FIT}"
      )
    plans.append(_plan_vggish(model.audio_backbone, audio_path))
  return [plan.apply() for plan in plans]


def _summarise(keys: tuple[str, ...]) -> str:
  counters = [key for key in keys if key.endswith(".num_batches_tracked")]
  named = [key for key in keys if key not in counters]
  parts = named + ([f"{len(counters)} num_batches_tracked counters"] if counters else [])
  return ", ".join(parts) if parts else "nothing"


def _first_line(error: Exception) -> str:
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0] if lines else ""}'
