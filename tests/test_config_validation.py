"""Bad configs fail early with one-line messages that name the key."""

import subprocess
import sys

import pytest

from configs import ave as ave_config
from configs import synthetic
from stt import config_validation
from stt.explain import explainers
from tests.conftest import REPO
from tests.conftest import subprocess_env


def _config(**overrides):
  config = synthetic.get_config("smoke")
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def test_default_configs_are_valid():
  config_validation.validate(synthetic.get_config(""), device_count=4, process_count=2)
  config_validation.validate(synthetic.get_config("smoke"), device_count=8)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 6}, "batch_size=6 must be a positive multiple of the device count"),
        ({"eval_batch_size": 0}, "eval_batch_size=0"),
        ({"num_train_steps": 0}, "num_train_steps=0 must be >= 1"),
        ({"dataset.name": "imagenet"}, "dataset.name='imagenet' is not one of"),
        ({"model.visual_backbone": "vit"}, "model.visual_backbone='vit'"),
        ({"model.grid_size": (7, 7)}, r"set it to \(8, 8\)"),
        ({"model.num_segments": 5}, "must equal dataset.num_segments=10"),
        ({"loss.segment_weight": 1.0}, "needs model.segment_head=True"),
        ({"model.width": 30}, "divisible by model.num_heads"),
        ({"mesh.fsdp": 3}, r"mesh.fsdp=3 must be a positive divisor of the device count \(4\)"),
        ({"model.num_heads": 0}, "model.num_heads=0 must be >= 1"),
        ({"model.dropout": 1.0}, r"model.dropout=1.0 must be in \[0, 1\)"),
        ({"model.pool_values": "max"}, "model.pool_values='max' is not one of"),
        ({"model.num_bottlenecks": -1}, "model.num_bottlenecks=-1 must be >= 0"),
        (
            {"model.name": "joint_transformer", "model.num_layers": 0},
            "model.name='joint_transformer' needs model.num_layers >= 1",
        ),
        ({"explain.explainers": ("attention", "lime")}, r"explain.explainers: unknown \['lime'\]"),
        ({"explain.explainers": ()}, "explain.explainers must be a non-empty tuple"),
        ({"explain.perturbation_mode": "blur"}, "explain.perturbation_mode='blur' is not one of"),
        ({"explain.temporal_modality": "text"}, "explain.temporal_modality='text' is not one of"),
        (
            {"explain.perturbation_baselines": ("zero", "blur")},
            "explain.perturbation_baselines='blur' is not one of",
        ),
        ({"explain.perturbation_baselines": ("road",)}, "distinct names with 'zero'"),
        ({"explain.road_noise": -0.1}, "explain.road_noise must be >= 0"),
        ({"input.num_workers": -1}, "input.num_workers=-1 must be >= 0"),
        ({"input.prefetch_buffer_size": 0}, "input.prefetch_buffer_size=0 must be >= 1"),
        ({"explain.datasets": ("", "imagenet")}, "explain.datasets='imagenet' is not one of"),
        ({"explain.datasets": ("vggss", "vggss")}, "explain.datasets names a set twice"),
        (
            {"explain.dataset": "vggss", "explain.datasets": ("", "vggss")},
            "both name the sets to explain: give one of them",
        ),
    ],
)
def test_bad_values_are_named(overrides, message):
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate(_config(**overrides), device_count=4)


def _run_main(*args, tmp_path):
  env = subprocess_env(num_devices=2)
  return subprocess.run(
      # The default data dir comes first so that an explicit one in `args` wins.
      [
          sys.executable,
          "-m",
          "stt.main",
          f"--workdir={tmp_path / 'w'}",
          *args[:1],
          f"--config.data_dir={tmp_path / 'default_tfds'}",
          *args[1:],
      ],
      capture_output=True,
      text=True,
      timeout=600,
      env=env,
      cwd=REPO,
  )


def test_every_explainer_that_exists_is_accepted_and_no_other():
  config = synthetic.get_config("smoke")
  for name in explainers.EXPLAINERS:
    config.explain.explainers = (name,)
    config_validation.validate(config, device_count=1)
  config.explain.explainers = ("attention", "saliency")
  with pytest.raises(config_validation.ConfigError, match=r"unknown \['saliency'\]"):
    config_validation.validate(config, device_count=1)


def test_pixel_perturbation_needs_raw_input():
  config = ave_config.get_config("features,smoke")
  config_validation.validate(config, device_count=1)
  config.explain.perturbation_mode = "pixel"
  with pytest.raises(config_validation.ConfigError, match="needs dataset.input='raw'"):
    config_validation.validate(config, device_count=1)


def test_road_needs_feature_mode():
  config = ave_config.get_config("raw,smoke")
  config.explain.perturbation_mode = "pixel"
  config.explain.perturbation_baselines = ("zero", "road")
  with pytest.raises(config_validation.ConfigError, match="'road' imputes backbone features"):
    config_validation.validate(config, device_count=1)
  config.explain.perturbation_baselines = ("zero",)
  config_validation.validate(config, device_count=1)


# Each case is a `python -m stt.main` process (~9 s of imports): two stay in the default run,
# the rest run with the slow tests (.ci/run runs both).
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--config=configs/synthetic.py:smoke", "--config.batch_sizee=3"],
            "unknown key 'batch_sizee'; Did you mean \"batch_size\"",
        ),
        (
            ["--config=configs/synthetic.py:smoke", "--config.no_such_key=3"],
            "bad --config: unknown key 'no_such_key'",
        ),
        pytest.param(
            ["--config=configs/no_such_config.py"],
            "cannot load --config: [Errno 2] No such file or directory: 'configs/no_such_config.py'",
            marks=pytest.mark.slow,
        ),
        pytest.param(["--config=README.md"], "--config README.md:", marks=pytest.mark.slow),
        pytest.param(
            ["--config=configs/synthetic.py:smoke", "--config.data_dir=README.md"],
            "--config.data_dir=README.md is a file; it must be a directory",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--config=configs/synthetic.py:smok"],
            "unknown arguments ['smok']",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--config=configs/synthetic.py:smoke", "--config.batch_size=7"],
            "batch_size=7 must be a positive multiple",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            [
                "--config=configs/synthetic.py:smoke",
                "--config.dataset.name=ave",
                "--config.data_dir=/nonexistent/tfds",
            ],
            "data dir /nonexistent/tfds does not exist",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--config=configs/synthetic.py:smoke", "--mode=train,explain,train"],
            "--mode must be one or more of train, explain, sanity, comma-separated, each once",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--config=configs/synthetic.py:smoke", "--config.model.temporal_pool=max"],
            "model.temporal_pool='max' is not one of",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_command_line_errors_are_one_line(args, message, tmp_path):
  result = _run_main(*args, tmp_path=tmp_path)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [line for line in result.stderr.splitlines() if line.startswith("stt: error:")]
  assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr


def test_empty_data_dir_is_a_clear_error(tmp_path):
  (tmp_path / "tfds").mkdir()
  result = _run_main(
      "--config=configs/synthetic.py:smoke",
      "--config.dataset.name=ave",
      f"--config.data_dir={tmp_path / 'tfds'}",
      tmp_path=tmp_path,
  )
  assert result.returncode == 2
  assert "no built dataset at" in result.stderr and "Traceback" not in result.stderr
