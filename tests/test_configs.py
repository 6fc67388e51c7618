"""Config files: one argument parser, configs as data, and shapes that follow from the data."""

import pytest

from configs import ave
from configs import common
from configs import manifest
from configs import synthetic
from data_pipelines import synthetic as synthetic_data
from data_pipelines import synthetic_dataset
from stt import config_validation
from stt import datasets


def test_parse_arg_reads_groups_flags_and_keys():
  groups = {"input": ("features", "raw"), "task": ("recognition", "weak")}
  assert common.parse_arg(" raw , smoke", "c.py", groups=groups) == {
      "input": "raw",
      "task": None,
      "smoke": True,
  }
  assert common.parse_arg("tag=my_clips", "c.py", keys=("tag",)) == {
      "smoke": False,
      "tag": "my_clips",
  }
  with pytest.raises(
      ValueError,
      match=r"c.py: unknown arguments \['bogus', 'size'\]; known: "
      r"input features\|raw, task recognition\|weak, smoke",
  ):
    common.parse_arg("bogus,size=3", "c.py", groups=groups)
  with pytest.raises(ValueError, match=r"c.py: give one input, got \['raw', 'features'\]"):
    common.parse_arg("raw,features", "c.py", groups=groups)


def test_every_config_file_rejects_unknown_arguments_the_same_way():
  for module, name in ((synthetic, "synthetic"), (ave, "ave"), (manifest, "manifest")):
    with pytest.raises(ValueError, match=rf"configs/{name}.py: unknown arguments \['smoek'\]"):
      module.get_config("smoek")


def test_manifest_config_trains_a_tagged_manifest_without_python():
  config = manifest.get_config("tag=my_clips,smoke")
  assert (config.dataset.name, config.dataset.tag) == ("manifest", "my_clips")
  assert config.dataset.frame_size == 64 and config.model.visual_backbone == "resnet_tiny"
  config_validation.validate(config, device_count=1)
  with pytest.raises(ValueError, match="needs tag=NAME"):
    manifest.get_config("smoke")


@pytest.mark.parametrize("frame_size, grid", [(64, (8, 8)), (224, (28, 28)), (100, (13, 13))])
def test_the_grid_follows_from_the_backbone_and_the_frame_size(frame_size, grid):
  config = synthetic.get_config("smoke")
  config.dataset.frame_size = frame_size
  assert config.model.grid_size is None
  config_validation.validate(config, device_count=1)  # no second setting to keep in step
  datasets.derive_grid_size(config)
  assert tuple(config.model.grid_size) == grid


def test_a_grid_set_by_hand_must_agree():
  config = ave.get_config("raw")
  config.model.grid_size = (8, 8)
  with pytest.raises(config_validation.ConfigError, match=r"set it to \(7, 7\) or leave it unset"):
    config_validation.validate(config, device_count=1)


def test_synthetic_settings_have_one_owner():
  """The config's synthetic section is the data layer's preset, so the build CLI's
  --synthetic_config=smoke and configs/synthetic.py:smoke name the same cached set."""
  for preset in ("", "smoke"):
    config = synthetic.get_config(preset)
    assert config.synthetic.to_dict() == synthetic_data.default_settings(preset)
    assert synthetic_dataset.tag(config.synthetic.to_dict()) == synthetic_dataset.tag(
        synthetic_data.default_settings(preset)
    )
  # The tag of the default smoke set at generator version 2 (the event object takes a random
  # square; version 1's sets were synthetic_ee3fd53b and are not reused).
  assert synthetic_data.GENERATOR_VERSION == 2
  assert synthetic_dataset.tag(synthetic_data.default_settings("smoke")) == "synthetic_17cbcc1e"
