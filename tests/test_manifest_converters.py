"""Kinetics-Sounds and VGGSound annotations → manifests, the CLI's download messages, and a tiny
Kinetics-Sounds set built by the CLI and found by configs/kinetics_sounds.py."""

import csv

import pytest

from configs import kinetics_sounds as ks_config
from configs import vggsound as vggsound_config
from data_pipelines import kinetics_sounds_classes
from data_pipelines import manifest_converters
from data_pipelines import manifest_format
from stt import config_validation
from stt import datasets
from tests import clip_files
from tests.test_manifest_builder import run_build

KS = kinetics_sounds_classes.CLASS_NAMES


def _write_csv(path, header, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("w", newline="") as f:
    writer = csv.writer(f)
    if header:
      writer.writerow(header)
    writer.writerows(rows)


def _manifest_rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_kinetics_sounds_class_list():
  assert (
      len(kinetics_sounds_classes.PAPER_CLASSES) == 34 and len(KS) == 31 and list(KS) == sorted(KS)
  )
  assert {"blowing out candles", "dribbling basketball", "mowing lawn", "stomping grapes"} <= set(
      KS
  )
  assert not {"typing", "fingerpicking", "patting"} & set(KS)


def test_kinetics_without_test_labels_carves_val_from_train(tmp_path):
  header = ["label", "youtube_id", "time_start", "time_end", "split", "is_cc"]
  train = [[KS[i % 31], f"yt{i:04d}", i, i + 10, "train", 0] for i in range(200)]
  train += [["abseiling", "other0001", 0, 10, "train", 0]]  # not a Kinetics-Sounds class
  _write_csv(tmp_path / "annotations" / "train.csv", header, train)
  _write_csv(
      tmp_path / "annotations" / "validate.csv",
      header[:5],
      [["playing drums", "va0001", "5.0", "15.0", "val"]],
  )
  _write_csv(
      tmp_path / "annotations" / "test.csv",
      ["youtube_id", "time_start", "time_end", "split"],
      [["te0001", 0, 10, "test"]],
  )
  # Two clips downloaded, in the layouts downloaders use; the rest are missing.
  (tmp_path / "train" / KS[0]).mkdir(parents=True)
  (tmp_path / "train" / KS[0] / "yt0000_000000_000010.mp4").write_bytes(b"")
  (tmp_path / "val").mkdir()
  (tmp_path / "val" / "va0001_000005_000015.webm").write_bytes(b"")
  csvs = [tmp_path / "annotations" / name for name in ("train.csv", "validate.csv", "test.csv")]
  conversion = manifest_converters.kinetics_sounds(csvs, tmp_path, tmp_path / "m.csv", KS)
  assert conversion.rows == {"train": 190, "val": 10, "test": 1}
  assert conversion.val_carved and conversion.missing_clips == 199
  assert conversion.skipped == 2  # abseiling, and the unlabelled test row
  assert conversion.class_names == KS
  rows = _manifest_rows(tmp_path / "m.csv")
  val_ids = sorted(r["path"].rsplit("/", 1)[1][:6] for r in rows if r["split"] == "val")
  assert val_ids[:5] == ["yt0049", "yt0054", "yt0057", "yt0061", "yt0068"]  # sha1 of the id
  by_name = {r["path"].rsplit("/", 1)[1]: r for r in rows}
  assert by_name["yt0000_000000_000010.mp4"]["path"] == str(
      tmp_path / "train" / KS[0] / "yt0000_000000_000010.mp4"
  )
  assert by_name["va0001_000005_000015.webm"] == {
      "path": str(tmp_path / "val" / "va0001_000005_000015.webm"),
      "label": "playing drums",
      "split": "test",
  }
  assert by_name["yt0001_000001_000011.mp4"]["path"] == str(tmp_path / "yt0001_000001_000011.mp4")
  # The manifest reads back as written.
  manifest = manifest_format.read(tmp_path / "m.csv")
  assert manifest.num_lines == 201 and not manifest.refused


def test_kinetics_with_test_labels_keeps_its_splits(tmp_path):
  header = ["label", "youtube_id", "time_start", "time_end", "split"]
  _write_csv(tmp_path / "train.csv", header, [[KS[0], "yt0049", 0, 10, "train"]])
  _write_csv(tmp_path / "val.csv", header, [[KS[1], "va1", 0, 10, "val"]])
  _write_csv(tmp_path / "test.csv", header, [[KS[2], "te1", 0, 10, "test"]])
  conversion = manifest_converters.kinetics_sounds(
      [tmp_path / n for n in ("train.csv", "val.csv", "test.csv")], tmp_path, tmp_path / "m.csv", KS
  )
  assert conversion.rows == {"train": 1, "val": 1, "test": 1} and not conversion.val_carved


def test_vggsound_reads_quoted_labels_and_carves_val(tmp_path):
  rows = [
      [
          f"vg{i:03d}",
          i,
          ["dog barking", "cattle, bovinae cowbell", "playing harp"][i % 3],
          "train" if i < 40 else "test",
      ]
      for i in range(45)
  ]
  _write_csv(tmp_path / "vggsound.csv", None, rows)
  (tmp_path / "video").mkdir()
  (tmp_path / "video" / "vg001_000001.mp4").write_bytes(b"")
  conversion = manifest_converters.vggsound(tmp_path / "vggsound.csv", tmp_path, tmp_path / "m.csv")
  assert conversion.class_names == ("cattle, bovinae cowbell", "dog barking", "playing harp")
  assert conversion.rows == {"train": 37, "val": 3, "test": 5}
  assert conversion.missing_clips == 44 and conversion.skipped == 0
  manifest = manifest_format.read(tmp_path / "m.csv")
  assert sorted(r.video_id for r in manifest.rows if r.split == "val") == [
      "vg009_000009",
      "vg023_000023",
      "vg037_000037",
  ]
  assert {r.label for r in manifest.rows} == set(conversion.class_names)
  (found,) = [r for r in manifest.rows if r.video_id == "vg001_000001"]
  assert found.path == str(tmp_path / "video" / "vg001_000001.mp4")
  _write_csv(tmp_path / "bad.csv", None, [["vg000", 0, "dog barking", "validation"]])
  with pytest.raises(manifest_converters.ConversionError, match="bad.csv:1: expected"):
    manifest_converters.read_vggsound_csv(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "dataset, needle",
    [
        ("kinetics_sounds", "https://github.com/cvdfoundation/kinetics-dataset"),
        ("vggsound", "https://www.robots.ox.ac.uk/~vgg/data/vggsound/"),
    ],
)
def test_missing_downloads_say_where_to_get_and_put_them(tmp_path, dataset, needle):
  status, _, stderr = run_build(
      f"--dataset={dataset}", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'out'}"
  )
  assert status == 2 and needle in stderr and f"into {tmp_path}" in stderr
  assert "Traceback" not in stderr
  if dataset == "vggsound":  # annotations but no clip at all
    _write_csv(tmp_path / "vggsound.csv", None, [["vg000", 0, "dog barking", "train"]])
    status, _, stderr = run_build(
        f"--dataset={dataset}", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'out'}"
    )
    assert status == 2 and f"no clip of the vggsound annotations is under {tmp_path}" in stderr
    assert "<ytid>_<start:06d>.mp4" in stderr


def test_configs_validate():
  for module, name in ((ks_config, "kinetics_sounds"), (vggsound_config, "vggsound")):
    for arg in ("", "smoke"):
      config = module.get_config(arg)
      assert config.dataset.name == name
      config_validation.validate(config, device_count=1)
    with pytest.raises(ValueError, match=r"unknown arguments \['smoek'\]"):
      module.get_config("smoek")


def test_a_tiny_kinetics_sounds_build_is_what_the_config_finds(tmp_path):
  """Clips of 3 classes (2 train, 1 val, 1 test, 1 missing) built by the CLI; the smoke config
  loads them with the full 31-class label space."""
  raw, data_dir = tmp_path / "k400", tmp_path / "tfds"
  header = ["label", "youtube_id", "time_start", "time_end", "split"]
  rows = [
      [KS[0], "yt0000", 0, 3, "train"],
      [KS[5], "yt0001", 2, 5, "train"],
      [KS[5], "yt0002", 0, 4, "val"],
      [KS[9], "yt0003", 1, 4, "test"],
      [KS[9], "yt0004", 0, 3, "train"],
  ]
  _write_csv(raw / "annotations" / "train.csv", header, [r for r in rows if r[4] == "train"])
  _write_csv(raw / "annotations" / "validate.csv", header, [r for r in rows if r[4] == "val"])
  _write_csv(raw / "annotations" / "test.csv", header, [r for r in rows if r[4] == "test"])
  for label, ytid, start, end, _ in rows[:4]:
    clip_files.write_clip(raw / "clips" / f"{ytid}_{start:06d}_{end:06d}.mp4", end - start)
  config = ks_config.get_config("smoke")
  config.data_dir = str(data_dir)
  with pytest.raises(
      datasets.DatasetError,
      match="python -m data_pipelines.build --dataset=kinetics_sounds .* --frame_size=64",
  ):
    datasets.load(config)
  status, stdout, stderr = run_build(
      "--dataset=kinetics_sounds",
      f"--manual_dir={raw}",
      f"--data_dir={data_dir}",
      "--frame_size=64",
  )
  assert status == 0, stderr
  assert "4 not downloaded" not in stderr and "1 not downloaded" in stderr
  assert (
      stdout.strip()
      .splitlines()[-1]
      .startswith("kinetics_sounds: built 4 (train=2, val=1, test=1), skipped 0, failed 1 -> ")
  )
  dataset = datasets.load(config)
  assert dataset.num_classes == 31 and dataset.class_names == list(KS)
  assert {split: len(source) for split, source in dataset.sources.items()} == {
      "train": 2,
      "val": 1,
      "test": 1,
  }
  example = dataset.sources["val"][0]
  assert example["frames"].shape == (10, 1, 64, 64, 3)
  assert example["segment_mask"].tolist() == [True] * 4 + [False] * 6
  assert example["segment_labels"].tolist() == [5] * 4 + [31] * 6
