"""--mode=explain on Flickr-SoundNet: the smoke run's synthetic test set written out in the
Flickr-SoundNet format (the video form, `<id>.mp4`).

Each synthetic test video with boxes at segment 5 becomes an id whose Annotations/<id>.xml holds
those boxes on the 256-px scale, each given twice (two annotators agreeing), and whose clip
is linked as <id>.mp4. The run's field columns (the consensus ground truth) must equal the
standalone scorer's on the run's maps; the set has no labels, so no perturbation AUC is reported.
"""

import json
import math

import pytest

from data_pipelines import ave_format
from stt.explain import score_maps
from tests.conftest import explain_on_annotation_set

SEGMENT = 5  # the middle of the synthetic 10 s clips: the segment the build annotates
BOX_XML = (
    "<object><bbox><name>s</name><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>"
    "<ymax>{}</ymax></bbox></object>"
)


def _write_flickr_from_synthetic(raw, out) -> list[str]:
  """Flickr-SoundNet files for the synthetic AVE-format directory `raw`; returns the ids."""
  boxes = ave_format.read_boxes(raw)
  ids = []
  (out / "Annotations").mkdir(parents=True)
  (out / "videos").mkdir()
  for row in ave_format.read_split(raw, "test"):
    record = boxes.get(row.video_id, {}).get(SEGMENT)
    if record is None:
      continue
    width, height = record.frame_size
    scaled = [
        (
            round(x0 * 256 / width),
            round(y0 * 256 / height),
            round(x1 * 256 / width),
            round(y1 * 256 / height),
        )
        for x0, y0, x1, y1 in record.boxes[:4]
    ]
    objects = "".join(BOX_XML.format(*box) for box in scaled for _ in range(2))
    (out / "Annotations" / f"{row.video_id}.xml").write_text(f"<annotation>{objects}</annotation>")
    (out / "videos" / f"{row.video_id}.mp4").symlink_to(raw / "AVE" / f"{row.video_id}.mp4")
    ids.append(row.video_id)
  (out / "metadata").mkdir()
  (out / "metadata" / "flickr_test.csv").write_bytes("".join(f"{i}\r\n" for i in ids).encode())
  return ids


def test_explain_on_flickr_soundnet(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  workdir = tmp_path / "w"
  (raw,) = data_dir.glob("downloads/manual/synthetic_*/")
  ids = _write_flickr_from_synthetic(raw, tmp_path / "flickr")
  assert len(ids) >= 2
  results = explain_on_annotation_set(smoke_run, workdir, "flickr_soundnet", tmp_path / "flickr")
  prefix = "explain_flickr_soundnet/attention"
  assert results[f"{prefix}/pointing_spatial_trials"] == len(ids)
  assert results[f"{prefix}/pointing_spatial_class_mean"] == pytest.approx(
      results[f"{prefix}/pointing_spatial"]
  )  # one label: class-agnostic
  for key in ("spatial/positive_auc", "temporal/negative_auc"):  # no labels: not reported
    value = results[f"{prefix}/{key}"]
    assert value is None or math.isnan(value), key

  # The standalone scorer on the run's maps, with the annotations: the same field columns.
  maps_path = workdir / "explain_flickr_soundnet" / "maps" / "attention.npz"
  assert (
      score_maps.main(
          [
              "--maps",
              str(maps_path),
              "--flickr_annotations",
              str(tmp_path / "flickr" / "Annotations"),
              "--segment",
              str(SEGMENT),
              "--out",
              str(tmp_path / "flickr.json"),
          ]
      )
      == 0
  )
  rescored = json.loads((tmp_path / "flickr.json").read_text())
  assert rescored["field_trials"] == len(ids)
  for key in ("field_ciou", "field_auc"):
    assert rescored[key] == pytest.approx(results[f"{prefix}/{key}"], abs=1e-9), key

  table = (workdir / "explain_flickr_soundnet" / "tables.md").read_text()
  assert "| EZ-VSL | 83.94 | 63.60 |" in table and "| SSL-alignment | 86.00 | — |" in table
  assert "no class labels" in table
