"""Tests that stt/models/pretrained.py loads weight files right: torchvision-layout ResNet-18/50
files (.safetensors and a torch .pth training checkpoint) and VGGish files (the official TF-slim
checkpoint and the torchvggish layout), loaded into our backbones, match reference forward passes
written here in plain TensorFlow ops (or torch.nn.functional) from the files' own weights. The
Stan config, loading errors and the trainer's loading are in test_pretrained_loading.py."""

import numpy as np
import pytest
from safetensors.numpy import save_file
import tensorflow as tf

from stt.models import backbones
from stt.models import pretrained
from tests import pretrained_files
from tests.pretrained_files import RESNET18_STAGES
from tests.pretrained_files import RESNET50_STAGES
from tests.pretrained_files import abstract
from tests.pretrained_files import assert_close
from tests.pretrained_files import eval_forward
from tests.pretrained_files import torchvision_resnet_state

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

# The shared module-scoped fixtures, under the names the tests ask for.
resnet18_file = pretrained_files.resnet18_file
resnet18_module = pretrained_files.resnet18_module


# --- The TensorFlow reference of a torchvision-layout ResNet --------------------------------------


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


# --- A torch .pth training checkpoint and its torch.nn.functional reference -----------------------


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
