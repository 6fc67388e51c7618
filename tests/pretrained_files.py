"""Random torchvision-layout ResNet weights and the backbones that load them, shared by the
pretrained-weights tests (test_pretrained.py and test_pretrained_loading.py): the state-dict
generator, a shapes-only backbone maker, a jitted eval forward pass, a scale-relative closeness
check, and the module-scoped `resnet18_file` and `resnet18_module` fixtures (a test module
uses them by assigning them to module-level names of the same spelling)."""

from flax import nnx
import numpy as np
import pytest
from safetensors.numpy import save_file

from stt.models import backbones

RESNET18_STAGES, RESNET50_STAGES = (2, 2, 2, 2), (3, 4, 6, 3)


def torchvision_resnet_state(stages, bottleneck: bool, seed: int) -> dict:
  """A random torchvision ResNet state dict {name: float32 array}, with fc and BN counters."""
  rng = np.random.default_rng(seed)
  state = {}

  def conv(key, c_out, c_in, k):
    std = np.sqrt(2.0 / (c_in * k * k))
    state[key + ".weight"] = (rng.normal(size=(c_out, c_in, k, k)) * std).astype(np.float32)

  def norm(key, c):
    state[key + ".weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    state[key + ".bias"] = rng.normal(0, 0.1, c).astype(np.float32)
    state[key + ".running_mean"] = rng.normal(0, 0.2, c).astype(np.float32)
    state[key + ".running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
    state[key + ".num_batches_tracked"] = np.array(1000, np.int64)

  conv("conv1", 64, 3, 7)
  norm("bn1", 64)
  c_in, expansion = 64, 4 if bottleneck else 1
  for stage, (size, width) in enumerate(zip(stages, (64, 128, 256, 512)), 1):
    for index in range(size):
      key, stride = f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1
      if bottleneck:
        conv(key + ".conv1", width, c_in, 1)
        norm(key + ".bn1", width)
        conv(key + ".conv2", width, width, 3)
        norm(key + ".bn2", width)
        conv(key + ".conv3", width * 4, width, 1)
        norm(key + ".bn3", width * 4)
      else:
        conv(key + ".conv1", width, c_in, 3)
        norm(key + ".bn1", width)
        conv(key + ".conv2", width, width, 3)
        norm(key + ".bn2", width)
      if stride != 1 or c_in != width * expansion:
        conv(key + ".downsample.0", width * expansion, c_in, 1)
        norm(key + ".downsample.1", width * expansion)
      c_in = width * expansion
  state["fc.weight"] = rng.normal(size=(1000, c_in)).astype(np.float32)
  state["fc.bias"] = np.zeros(1000, np.float32)
  return state


def abstract(make_backbone):
  """The backbone with shapes but no values: a load must then write every variable of it, and
  the test skips a random initialisation that would cost more CPU than the rest."""
  return nnx.eval_shape(lambda: make_backbone(rngs=nnx.Rngs(0)))


@nnx.jit
def eval_forward(module, inputs):
  return module(inputs, train=False)


def assert_close(ours, reference, rtol=1e-4):
  """Elementwise, relative to the output's scale (ReLU outputs have many exact zeros)."""
  ours, reference = np.asarray(ours), np.asarray(reference)
  assert ours.shape == reference.shape
  scale = np.abs(reference).max()
  assert scale > 0
  np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
  """(path of a torchvision-layout resnet18 .safetensors, its state dict)."""
  state = torchvision_resnet_state(RESNET18_STAGES, bottleneck=False, seed=0)
  path = tmp_path_factory.mktemp("resnet18") / "resnet18.safetensors"
  save_file(state, str(path))
  return path, state


@pytest.fixture(scope="module")
def resnet18_module():
  """A randomly initialised resnet18 shared by the tests (initialisation is slow on CPU)."""
  return backbones.resnet18(rngs=nnx.Rngs(7))
