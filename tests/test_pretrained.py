"""Tests of stt/models/pretrained.py: torchvision-layout ResNet-18/50 files and VGGish TF-slim /
torchvggish files, loaded into our backbones, match reference forward passes written here in
plain TensorFlow ops from the files' own weights; every mismatch is an error that leaves the
module unchanged."""

import sys

from flax import nnx
import jax
import numpy as np
import pytest
from safetensors.numpy import save_file
import tensorflow as tf

from configs import common
from configs import synthetic as synthetic_config
from stt import sharding
from stt import state as state_lib
from stt.models import backbones
from stt.models import pretrained
from stt.models import stan
from tests.conftest import run_main

RESNET18_STAGES, RESNET50_STAGES = (2, 2, 2, 2), (3, 4, 6, 3)
VGGISH_CONVS = (
    ("conv1", 1, 64),
    ("conv2", 64, 128),
    ("conv3/conv3_1", 128, 256),
    ("conv3/conv3_2", 256, 256),
    ("conv4/conv4_1", 256, 512),
    ("conv4/conv4_2", 512, 512),
)
VGGISH_FCS = (("fc1/fc1_1", 6 * 4 * 512, 4096), ("fc1/fc1_2", 4096, 4096), ("fc2", 4096, 128))
TORCHVGGISH_NAMES = dict(
    zip(
        [name for name, _, _ in VGGISH_CONVS + VGGISH_FCS],
        [
            "features.0",
            "features.3",
            "features.6",
            "features.8",
            "features.11",
            "features.13",
            "embeddings.0",
            "embeddings.2",
            "embeddings.4",
        ],
    )
)


# --- torchvision-layout ResNet state dicts and their TensorFlow reference ------------------------


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


def tf_torch_conv(x, weight, stride: int, pad: int):
  """torch.nn.Conv2d(bias=False) on NHWC x: weight [O,I,kh,kw], zero padding `pad` each side."""
  x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  return tf.nn.conv2d(x, tf.transpose(weight, (2, 3, 1, 0)), stride, "VALID")


def tf_torch_batch_norm(x, state, key):
  """torch.nn.BatchNorm2d in eval mode (eps 1e-5)."""
  return tf.nn.batch_normalization(
      x,
      state[key + ".running_mean"],
      state[key + ".running_var"],
      state[key + ".bias"],
      state[key + ".weight"],
      1e-5,
  )


def tf_reference_resnet(state: dict, images: np.ndarray, stages, bottleneck: bool) -> np.ndarray:
  """torchvision ResNet (v1.5) trunk without avgpool/fc, in TF ops: [n,H,W,3] -> [n,h,w,C]."""
  x = tf.nn.relu(
      tf_torch_batch_norm(tf_torch_conv(images, state["conv1.weight"], 2, 3), state, "bn1")
  )
  x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=-np.inf)
  x = tf.nn.max_pool2d(x, 3, 2, "VALID")
  for stage, size in enumerate(stages, 1):
    for index in range(size):
      key, stride = f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1
      conv_bn = lambda y, name, s, p: tf_torch_batch_norm(
          tf_torch_conv(y, state[f"{key}.{name}.weight"], s, p), state, f"{key}.bn{name[-1]}"
      )
      if bottleneck:
        y = tf.nn.relu(conv_bn(x, "conv1", 1, 0))
        y = tf.nn.relu(conv_bn(y, "conv2", stride, 1))
        y = conv_bn(y, "conv3", 1, 0)
      else:
        y = tf.nn.relu(conv_bn(x, "conv1", stride, 1))
        y = conv_bn(y, "conv2", 1, 1)
      if f"{key}.downsample.0.weight" in state:
        x = tf_torch_batch_norm(
            tf_torch_conv(x, state[f"{key}.downsample.0.weight"], stride, 0),
            state,
            f"{key}.downsample.1",
        )
      x = tf.nn.relu(x + y)
  return x.numpy()


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


def test_resnet18_matches_torchvision_reference(resnet18_file, resnet18_module):
  path, state = resnet18_file
  module = resnet18_module
  report = pretrained.load_resnet(module, path)
  assert set(report.ignored) == {"fc.weight", "fc.bias"} | {
      key for key in state if key.endswith("num_batches_tracked")
  }
  assert len(report.loaded) == len(state) - len(report.ignored)
  images = np.random.default_rng(1).normal(size=(2, 67, 61, 3)).astype(np.float32)  # odd sizes
  ours = eval_forward(module, images)
  assert ours.shape == (2, 3, 2, 512)
  assert_close(ours, tf_reference_resnet(state, images, RESNET18_STAGES, bottleneck=False))


def test_resnet50_matches_torchvision_reference(tmp_path):
  state = torchvision_resnet_state(RESNET50_STAGES, bottleneck=True, seed=2)
  path = tmp_path / "resnet50.safetensors"
  save_file({"module." + key: value for key, value in state.items()}, str(path))  # DDP prefix
  module = abstract(backbones.resnet50)
  pretrained.load_resnet(module, path)
  images = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype(np.float32)
  ours = eval_forward(module, images)
  assert ours.shape == (2, 2, 2, 2048)
  assert_close(ours, tf_reference_resnet(state, images, RESNET50_STAGES, bottleneck=True))


# --- VGGish: an official-layout TF1 checkpoint and its TF-slim-style reference -------------------


@pytest.fixture(scope="module")
def vggish_checkpoint(tmp_path_factory):
  """(vggish_model.ckpt path, log_mel [3,96,64], reference embedding [3,128]).

  Built like research/audioset/vggish/vggish_slim.py: variables vggish/<scope>/weights|biases,
  3x3 SAME convs and 2x2 SAME max-pools, NHWC flatten, ReLU everywhere but fc2; saved with a
  V1 Saver, the format of the released file.
  """
  log_mel = np.random.default_rng(4).normal(size=(3, 96, 64)).astype(np.float32)
  path = tmp_path_factory.mktemp("vggish") / "vggish_model.ckpt"
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(5)
    variable = lambda name, shape, std: tf.compat.v1.get_variable(
        name, shape, initializer=tf.compat.v1.random_normal_initializer(stddev=std)
    )
    net = tf.reshape(tf.constant(log_mel), [-1, 96, 64, 1])
    with tf.compat.v1.variable_scope("vggish"):
      for scope, c_in, c_out in VGGISH_CONVS:
        with tf.compat.v1.variable_scope(scope):
          weights = variable("weights", [3, 3, c_in, c_out], np.sqrt(2 / (9 * c_in)))
          biases = variable("biases", [c_out], 0.1)
        net = tf.nn.relu(tf.nn.conv2d(net, weights, 1, "SAME") + biases)
        if scope in ("conv1", "conv2", "conv3/conv3_2", "conv4/conv4_2"):
          net = tf.nn.max_pool2d(net, 2, 2, "SAME")
      net = tf.reshape(net, [-1, 6 * 4 * 512])
      for scope, c_in, c_out in VGGISH_FCS:
        with tf.compat.v1.variable_scope(scope):
          weights = variable("weights", [c_in, c_out], np.sqrt(2 / c_in))
          biases = variable("biases", [c_out], 0.1)
        net = tf.matmul(net, weights) + biases
        net = net if scope == "fc2" else tf.nn.relu(net)
    saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      reference = session.run(net)
      saver.save(session, str(path), write_meta_graph=False)
  return path, log_mel, reference


def test_vggish_checkpoint_names_are_the_official_ones(vggish_checkpoint):
  names = set(tf.train.load_checkpoint(str(vggish_checkpoint[0])).get_variable_to_shape_map())
  assert names == {
      f"vggish/{scope}/{kind}"
      for scope, _, _ in VGGISH_CONVS + VGGISH_FCS
      for kind in ("weights", "biases")
  }


def test_vggish_tf_checkpoint_and_torchvggish_layout_match_reference(vggish_checkpoint, tmp_path):
  path, log_mel, reference = vggish_checkpoint
  module = abstract(backbones.VGGish)
  report = pretrained.load_vggish(module, path)
  assert len(report.loaded) == 18 and report.ignored == ()
  assert_close(eval_forward(module, log_mel), reference)

  # The same weights in the harritaylor/torchvggish layout: conv OIHW, Linear [out,in].
  reader = tf.train.load_checkpoint(str(path))
  torch_state = {}
  for scope, torch_key in TORCHVGGISH_NAMES.items():
    weights = reader.get_tensor(f"vggish/{scope}/weights")
    perm = (3, 2, 0, 1) if weights.ndim == 4 else (1, 0)
    torch_state[torch_key + ".weight"] = np.ascontiguousarray(weights.transpose(perm))
    torch_state[torch_key + ".bias"] = reader.get_tensor(f"vggish/{scope}/biases")
  torch_path = tmp_path / "torchvggish.safetensors"
  save_file(torch_state, str(torch_path))
  module = abstract(backbones.VGGish)
  pretrained.load_vggish(module, torch_path)
  assert_close(eval_forward(module, log_mel), reference)


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


def torch_reference_resnet18(torch, state: dict, images: np.ndarray) -> np.ndarray:
  """torchvision's BasicBlock ResNet trunk in torch.nn.functional (NCHW): [n,H,W,3] -> NHWC."""
  functional = torch.nn.functional
  weights = {key: torch.from_numpy(value) for key, value in state.items()}
  conv_bn = lambda x, conv, norm, stride, pad: functional.batch_norm(
      functional.conv2d(x, weights[conv + ".weight"], stride=stride, padding=pad),
      weights[norm + ".running_mean"],
      weights[norm + ".running_var"],
      weights[norm + ".weight"],
      weights[norm + ".bias"],
      training=False,
      eps=1e-5,
  )
  x = functional.relu(conv_bn(torch.from_numpy(images).permute(0, 3, 1, 2), "conv1", "bn1", 2, 3))
  x = functional.max_pool2d(x, 3, 2, 1)
  for stage, size in enumerate(RESNET18_STAGES, 1):
    for index in range(size):
      key, stride = f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1
      y = functional.relu(conv_bn(x, key + ".conv1", key + ".bn1", stride, 1))
      y = conv_bn(y, key + ".conv2", key + ".bn2", 1, 1)
      if key + ".downsample.0.weight" in weights:
        x = conv_bn(x, key + ".downsample.0", key + ".downsample.1", stride, 0)
      x = functional.relu(x + y)
  return x.permute(0, 2, 3, 1).numpy()


def test_pth_round_trip_matches_torch(resnet18_file, tmp_path):
  torch = pytest.importorskip("torch")
  _, state = resnet18_file
  torch_state = {key: torch.from_numpy(value) for key, value in state.items()}
  torch.save({"epoch": 3, "state_dict": torch_state}, tmp_path / "resnet18.pth")  # training ckpt
  module = abstract(backbones.resnet18)
  report = pretrained.load_resnet(module, tmp_path / "resnet18.pth")
  assert "fc.weight" in report.ignored
  images = np.random.default_rng(10).normal(size=(2, 67, 61, 3)).astype(np.float32)
  with torch.no_grad():
    reference = torch_reference_resnet18(torch, state, images)
  assert_close(eval_forward(module, images), reference)


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
