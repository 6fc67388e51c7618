"""Tests of how stt/models/pretrained.py is configured and fails: Stan's model config names the
weight files to load (none by default), weights for a backbone they do not fit are refused from
the config alone, and every mismatch (missing, misshapen or unexpected keys, a ResNet-50 file for
a ResNet-18, a patchify stem, unreadable files, a .pth without torch) is an error that names the
problem and leaves the module unchanged; the trainer loads the weights into its fresh state and
the CLI reports an unusable file in one line. Reference-matching forward passes are in
test_pretrained.py."""

import sys

from flax import nnx
import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from configs import common
from configs import synthetic as synthetic_config
from stt import sharding
from stt import state as state_lib
from stt.models import backbones
from stt.models import pretrained
from stt.models import stan
from tests import pretrained_files
from tests.conftest import run_main
from tests.pretrained_files import RESNET18_STAGES
from tests.pretrained_files import abstract
from tests.pretrained_files import torchvision_resnet_state

# The shared module-scoped fixtures, under the names the tests ask for.
resnet18_file = pretrained_files.resnet18_file
resnet18_module = pretrained_files.resnet18_module


# --- Stan config and errors -------------------------------------------------------------------


def model_config(visual_backbone="resnet18", audio_backbone="features", **weights):
  config = common.default_model_config()
  config.visual_backbone, config.audio_backbone = visual_backbone, audio_backbone
  config.width, config.num_heads, config.num_layers = 16, 2, 1
  config.grid_size = (8, 8)
  config.update(weights)
  return config


@pytest.fixture(scope="module")
def stan_resnet18():
  """Stan(resnet18, features) with shapes only (see `abstract`); loads make its backbone real."""
  return nnx.eval_shape(lambda: stan.Stan(model_config(), 3, rngs=nnx.Rngs(0)))


def snapshot(module) -> list:
  """Copies of the module's parameters and BatchNorm statistics."""
  weights = nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat))
  return [np.array(leaf) for leaf in jax.tree.leaves(weights)]


def assert_state_equal(module, before):
  for old, new in zip(before, snapshot(module), strict=True):
    np.testing.assert_array_equal(old, new)


def test_default_config_loads_nothing(stan_resnet18):
  config = common.default_model_config()
  assert config.visual_weights is None and config.audio_weights is None
  assert pretrained.load_backbone_weights(stan_resnet18, model_config()) == []


def test_load_backbone_weights_writes_the_visual_backbone(stan_resnet18, resnet18_file):
  path, state = resnet18_file
  [report] = pretrained.load_backbone_weights(stan_resnet18, model_config(visual_weights=str(path)))
  assert report.path == str(path)
  resnet = stan_resnet18.visual_backbone
  np.testing.assert_array_equal(
      np.asarray(resnet.stem_conv.kernel[...]), state["conv1.weight"].transpose(2, 3, 1, 0)
  )
  np.testing.assert_array_equal(
      np.asarray(resnet.blocks[7].bn2.var[...]), state["layer4.1.bn2.running_var"]
  )


@pytest.mark.parametrize(
    "backbones_and_weights, message",
    [
        (("features", "features", "visual_weights"), "visual_backbone='features'"),
        (("resnet_tiny", "features", "visual_weights"), "visual_backbone='resnet_tiny'"),
        (("resnet18", "vggish_tiny", "audio_weights"), "audio_backbone='vggish_tiny'"),
    ],
)
def test_weights_for_a_backbone_they_do_not_fit(
    stan_resnet18, resnet18_file, backbones_and_weights, message
):
  visual, audio, field = backbones_and_weights
  config = model_config(visual, audio, **{field: str(resnet18_file[0])})
  with pytest.raises(pretrained.WeightsError, match=message):  # decided from the config alone
    pretrained.load_backbone_weights(stan_resnet18, config)


def test_nothing_is_loaded_when_the_other_backbone_fails(stan_resnet18, resnet18_file, tmp_path):
  config = model_config(visual_weights=str(resnet18_file[0]))
  pretrained.load_backbone_weights(stan_resnet18, config)
  before = snapshot(stan_resnet18.visual_backbone)
  other = torchvision_resnet_state(RESNET18_STAGES, bottleneck=False, seed=9)
  save_file(other, str(tmp_path / "other_resnet18.safetensors"))
  config = model_config(
      visual_weights=str(tmp_path / "other_resnet18.safetensors"),
      audio_weights=str(tmp_path / "absent.ckpt"),
  )
  config.audio_backbone = "vggish"  # the audio file fails to read after the visual one is checked
  with pytest.raises(pretrained.WeightsError, match="absent.ckpt"):
    pretrained.load_backbone_weights(stan_resnet18, config)
  assert_state_equal(stan_resnet18.visual_backbone, before)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.pop("layer2.0.downsample.1.running_var"),
            r"missing key 'layer2\.0\.downsample\.1\.running_var' \(expected shape \(128,\) for "
            r"blocks\[2\]\.proj_bn\.var\)",
        ),
        (
            lambda s: s.update({"layer3.1.conv2.weight": np.zeros((256, 256, 1, 3), np.float32)}),
            r"'layer3\.1\.conv2\.weight' has shape \(256, 256, 1, 3\) in the file but "
            r"blocks\[5\]\.conv2\.kernel needs \(256, 256, 3, 3\)",
        ),
        (
            lambda s: s.update({"layer5.0.conv1.weight": np.zeros((8, 4, 3, 3), np.float32)}),
            r"unexpected key 'layer5\.0\.conv1\.weight' with shape \(8, 4, 3, 3\)",
        ),
    ],
)
def test_mismatches_name_the_key_and_shapes_and_load_nothing(
    resnet18_file, resnet18_module, tmp_path, edit, message
):
  state = dict(resnet18_file[1])
  edit(state)
  path = tmp_path / "edited.safetensors"
  save_file(state, str(path))
  before = snapshot(resnet18_module)
  with pytest.raises(pretrained.WeightsError, match=message):
    pretrained.load_resnet(resnet18_module, path)
  assert_state_equal(resnet18_module, before)


def test_resnet50_file_into_resnet18_says_so(resnet18_module, tmp_path):
  state = torchvision_resnet_state((1, 1, 1, 1), bottleneck=True, seed=8)
  save_file(state, str(tmp_path / "bottleneck.safetensors"))
  with pytest.raises(pretrained.WeightsError, match=r"problems\).*Bottleneck \(ResNet-50-like\)"):
    pretrained.load_resnet(resnet18_module, tmp_path / "bottleneck.safetensors")


def test_patchify_stem_is_refused(resnet18_file):
  with pytest.raises(pretrained.WeightsError, match="stem='patch4'"):
    pretrained.load_resnet(abstract(backbones.resnet_tiny), resnet18_file[0])


@pytest.mark.parametrize(
    "name, contents, message",
    [
        ("corrupt.safetensors", b"not a safetensors file", "cannot read .* as safetensors"),
        ("absent.safetensors", None, "does not exist"),
        ("absent.pth", None, "does not exist"),
        ("corrupt.ckpt", b"not a checkpoint", "cannot read .* as a TensorFlow checkpoint"),
    ],
)
def test_unreadable_files(resnet18_module, tmp_path, name, contents, message):
  if contents is not None:
    (tmp_path / name).write_bytes(contents)
  with pytest.raises(pretrained.WeightsError, match=message):
    pretrained.load_resnet(resnet18_module, tmp_path / name)


def test_pth_without_torch_says_what_to_do(resnet18_module, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  (tmp_path / "resnet18.pth").write_bytes(b"anything")
  with pytest.raises(
      pretrained.WeightsError,
      match=r"needs torch \(pip install torch\), or " r"convert it to \.safetensors",
  ):
    pretrained.load_resnet(resnet18_module, tmp_path / "resnet18.pth")


# --- The trainer ------------------------------------------------------------------------------


def test_trainer_loads_weights_into_the_fresh_state(resnet18_file):
  path, state = resnet18_file
  config = synthetic_config.get_config("smoke")
  config.model.update(
      visual_backbone="resnet18", grid_size=(2, 2), width=16, num_heads=2, visual_weights=str(path)
  )
  graphdef, fresh, _ = state_lib.create_state(config, 6, sharding.make_mesh(config))
  loaded = state_lib.load_pretrained_weights(graphdef, fresh, config)
  model, optimizer = nnx.merge(graphdef, loaded)
  np.testing.assert_array_equal(
      np.asarray(model.visual_backbone.stem_conv.kernel[...]),
      state["conv1.weight"].transpose(2, 3, 1, 0),
  )
  # Only the backbone changed: the audio backbone and the optimizer moments are as created.
  fresh_model, fresh_optimizer = nnx.merge(graphdef, fresh)
  for new, old in zip(
      jax.tree.leaves(nnx.state(model.audio_backbone)),
      jax.tree.leaves(nnx.state(fresh_model.audio_backbone)),
      strict=True,
  ):
    np.testing.assert_array_equal(new, old)
  for new, old in zip(
      jax.tree.leaves(nnx.state(optimizer)),
      jax.tree.leaves(nnx.state(fresh_optimizer)),
      strict=True,
  ):
    np.testing.assert_array_equal(new, old)


def test_main_reports_an_unusable_weights_file_in_one_line(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  result = run_main(
      tmp_path / "w",
      data_dir,
      "--config.model.visual_backbone=resnet18",
      "--config.model.grid_size=(2,2)",
      f'--config.model.visual_weights={tmp_path / "missing.safetensors"}',
      expect_rc=2,
  )
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("stt: error:") and "missing.safetensors" in last_line
