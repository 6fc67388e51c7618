"""--mode=explain on VGG-SS: the smoke run's synthetic test set written out in the VGG-SS format.

Each synthetic test video with boxes at segment 5 (the 'middle' annotated frame) becomes a VGG-SS
entry `<video_id>_000000` with those boxes normalised by the frame size; its clip is linked
under that name, and vggsound.csv lists the synthetic classes, so labels map to the run's.
Rescoring the VGG-SS run's maps against the synthetic set's own boxes of segment 5 must give the
same pointing numbers, and the field's cIoU@0.5 / AUC columns must be filled.
"""

import csv
import json

import numpy as np
import pytest

from data_pipelines import ave_format
from stt.explain import score_maps
from tests.conftest import explain_on_annotation_set

SEGMENT = 5


def _write_vggss_from_synthetic(raw, out):
  """VGG-SS files for the synthetic AVE-format directory `raw`; returns boxes.jsonl lines of
  segment 5 (the synthetic set's own boxes of the annotated segment)."""
  boxes = ave_format.read_boxes(raw)
  entries, own_boxes = [], []
  (out / "clips").mkdir(parents=True)
  for row in ave_format.read_split(raw, "test"):
    record = boxes.get(row.video_id, {}).get(SEGMENT)
    if record is None:
      continue
    width, height = record.frame_size
    entries.append(
        {
            "file": f"{row.video_id}_000000",
            "class": row.category,
            "bbox": [
                [x0 / width, y0 / height, x1 / width, y1 / height]
                for x0, y0, x1, y1 in record.boxes
            ],
        }
    )
    own_boxes.append(
        json.dumps(
            {
                "video_id": row.video_id,
                "segment": SEGMENT,
                "frame_size": [width, height],
                "boxes": [list(box) for box in record.boxes],
            }
        )
    )
    (out / "clips" / f"{row.video_id}_000000.mp4").symlink_to(raw / "AVE" / f"{row.video_id}.mp4")
  (out / "metadata").mkdir()
  (out / "metadata" / "vggss.json").write_text(json.dumps(entries))
  (out / "metadata" / "vggss_test.csv").write_bytes(
      b"".join(f"{entry['file']}\r\n".encode() for entry in entries)
  )
  with (out / "vggsound.csv").open("w", newline="") as file:
    writer = csv.writer(file)
    for index, name in enumerate(ave_format.read_class_names(raw)):
      writer.writerow([f"class{index}", 0, name, "train"])
  return own_boxes


def test_explain_on_vggss_matches_the_synthetic_boxes(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  workdir = tmp_path / "w"
  (raw,) = data_dir.glob("downloads/manual/synthetic_*/")
  own_boxes = _write_vggss_from_synthetic(raw, tmp_path / "vggss")
  assert len(own_boxes) >= 2
  results = explain_on_annotation_set(smoke_run, workdir, "vggss", tmp_path / "vggss")
  prefix = "explain_vggss/attention"
  assert results[f"{prefix}/pointing_spatial_trials"] == len(own_boxes)
  assert 0.0 <= results[f"{prefix}/field_ciou"] <= 1.0
  assert 0.0 <= results[f"{prefix}/field_auc"] <= 1.0
  assert results[f"{prefix}/pointing_temporal"] is None  # VGG-SS has no temporal annotation
  # The run's own explain figures are kept apart.
  assert results["explain/attention/pointing_spatial_trials"] > len(own_boxes)

  # The same maps against the synthetic set's own boxes of segment 5: the same pointing.
  maps_path = workdir / "explain_vggss" / "maps" / "attention.npz"
  maps = dict(np.load(maps_path))
  maps["video_id"] = np.asarray([v[: -len("_000000")] for v in maps["video_id"]])
  own_maps = tmp_path / "own.npz"
  np.savez(own_maps, **maps)
  (tmp_path / "own_boxes.jsonl").write_text("\n".join(own_boxes) + "\n")
  assert (
      score_maps.main(
          [
              "--maps",
              str(own_maps),
              "--events",
              str(raw / "Annotations.txt"),
              "--boxes",
              str(tmp_path / "own_boxes.jsonl"),
              "--out",
              str(tmp_path / "own.json"),
          ]
      )
      == 0
  )
  own = json.loads((tmp_path / "own.json").read_text())
  for key in ("pointing_spatial", "pointing_spatial_class_mean", "pointing_spatial_trials"):
    assert own[key] == pytest.approx(results[f"{prefix}/{key}"], abs=1e-9), key
  # And the standalone scorer, given vggss.json, gives the run's field columns.
  assert (
      score_maps.main(
          [
              "--maps",
              str(maps_path),
              "--vggss",
              str(tmp_path / "vggss" / "metadata" / "vggss.json"),
              "--out",
              str(tmp_path / "vggss.json"),
          ]
      )
      == 0
  )
  rescored = json.loads((tmp_path / "vggss.json").read_text())
  for key in ("field_ciou", "field_auc", "pointing_spatial"):
    assert rescored[key] == pytest.approx(results[f"{prefix}/{key}"], abs=1e-9), key

  table = (workdir / "explain_vggss" / "tables.md").read_text()
  header, _, attention = table.splitlines()[:3]
  columns = [cell.strip() for cell in header.strip("|").split("|")]
  values = [cell.strip() for cell in attention.strip("|").split("|")]
  row = dict(zip(columns, values))
  assert row["pointing_spatial"] == f"{own['pointing_spatial']:.3f}"
  assert row["field_ciou"] != "—" and row["field_auc"] != "—"
  assert "| EZ-VSL | 39.34 | 39.78 |" in table and "trained to localize sounds" in table
