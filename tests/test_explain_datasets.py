"""One --mode=explain run on several sets (`explain.datasets`): the test split, VGG-SS and
Flickr-SoundNet, each scored into its own namespace exactly as a run on that set alone, and as
the standalone scorer scores the run's maps."""

import json
import math
import shutil

import pytest

from data_pipelines import build
from stt.explain import score_maps
from tests.conftest import run_main
from tests.test_flickr_soundnet_explain import _write_flickr_from_synthetic
from tests.test_vggss_explain import _write_vggss_from_synthetic

SEGMENT = 5  # the segment both annotation sets are written from


def _rescored(tmp_path, maps_path, *annotation_flags) -> dict:
  out = tmp_path / f"{maps_path.parent.parent.name}.json"
  flags = ["--maps", str(maps_path), *annotation_flags, "--out", str(out)]
  assert score_maps.main(flags) == 0
  return json.loads(out.read_text())


@pytest.mark.slow
def test_one_explain_run_on_the_test_split_and_two_annotation_sets(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  (raw,) = data_dir.glob("downloads/manual/synthetic_*/")
  _write_vggss_from_synthetic(raw, tmp_path / "vggss")
  flickr_ids = _write_flickr_from_synthetic(raw, tmp_path / "flickr")
  for name, manual in (("vggss", "vggss"), ("flickr_soundnet", "flickr")):
    flags = [f"--dataset={name}", f"--manual_dir={tmp_path / manual}", f"--data_dir={data_dir}"]
    assert build.main([*flags, "--frame_size=64"]) == 0
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  run_main(
      workdir,
      data_dir,
      "--config.explain.explainers=('attention',)",
      "--config.explain.datasets=('', 'vggss', 'flickr_soundnet')",
      "--config.explain.viewer=False",
      "--mode=explain",
  )
  results = json.loads((workdir / "results.json").read_text())
  trained = json.loads((finished / "results.json").read_text())

  # The test split: the same pointing games as the training run scored on its own maps.
  for key in ("pointing_spatial", "pointing_temporal", "pointing_spatial_class_mean"):
    assert results[f"explain/attention/{key}"] == pytest.approx(
        trained[f"explain/attention/{key}"], abs=1e-9
    ), key

  # Each annotation set: its own report dir, and its field columns equal the standalone scorer's
  # on the maps the run wrote for it.
  vggss = _rescored(
      tmp_path,
      workdir / "explain_vggss" / "maps" / "attention.npz",
      "--vggss",
      str(tmp_path / "vggss" / "metadata" / "vggss.json"),
      "--segment",
      str(SEGMENT),
  )
  flickr = _rescored(
      tmp_path,
      workdir / "explain_flickr_soundnet" / "maps" / "attention.npz",
      "--flickr_annotations",
      str(tmp_path / "flickr" / "Annotations"),
      "--segment",
      str(SEGMENT),
  )
  assert flickr["field_trials"] == len(flickr_ids)
  for prefix, rescored in (("explain_vggss", vggss), ("explain_flickr_soundnet", flickr)):
    assert (workdir / prefix / "tables.md").exists()
    for key in ("field_ciou", "field_auc"):
      assert rescored[key] == pytest.approx(results[f"{prefix}/attention/{key}"], abs=1e-9), key
  # Flickr-SoundNet has no labels: no perturbation AUC there; VGG-SS has them.
  unlabelled = results["explain_flickr_soundnet/attention/spatial/positive_auc"]
  assert unlabelled is None or math.isnan(unlabelled)
  assert math.isfinite(results["explain_vggss/attention/spatial/positive_auc"])
