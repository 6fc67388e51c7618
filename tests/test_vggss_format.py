"""VGG-SS / Flickr-SoundNet files in their real formats: parsing, defects, and the map scorer.

CLI cases: each map's annotated segment equals the 224x224 ground truth itself. VGG-SS: both
usable entries' gts cover under half the image, so the binarised map is the gt: cIoU 1, and its
argmax (first index) lies in a box: a pointing hit. Flickr: the consensus map covers exactly half
the image (two 112x112 blocks), so `>` the median keeps only the 1-valued block (cIoU 2/3) and
`>=` keeps both (cIoU 1); both keep every pixel of a constant map of zeros (LVS: 1 - 0 >= 1).
"""

import json

import numpy as np
import pytest

from data_pipelines import flickr_soundnet_format
from data_pipelines import vggss_format
from stt.explain import score_maps
from stt.explain import sound_source_benchmark as sl
from tests import vggss_files


def test_vggss_reads_entries_and_counts_the_defects(tmp_path):
  json_path, test_csv = vggss_files.write_vggss(tmp_path)
  test_ids = vggss_format.read_test_list(test_csv)
  assert test_ids == vggss_files.VGGSS_TEST_IDS  # CRLF stripped
  annotations = vggss_format.read(json_path, test_ids)
  assert [e.file for e in annotations.entries] == [
      "abc_000010",
      "x-y_Z_000030",
      "def_000000",
      "noclip_000050",
  ]
  cat = annotations.entries[1]
  assert (cat.youtube_id, cat.start_s, cat.class_name) == ("x-y_Z", 30, "cat meowing")
  assert cat.boxes == ((0.5, 0.25, 1.0, 0.75),)  # the sentinel box clamps to empty
  assert annotations.entries[2].boxes == ()
  assert vggss_format.no_box_reason(annotations.entries[2]) == (
      "no usable box (0 with the sentinel coordinate, 1 degenerate)"
  )
  assert annotations.counts == {
      "sentinel_boxes": 1,
      "degenerate_boxes": 1,
      "entries_without_box": 1,
      "not_in_test_list": 1,
      "test_ids_without_entry": 1,
  }
  assert len(vggss_format.read(json_path).entries) == 5


def test_entries_are_named_by_their_position_in_the_file_and_their_id(tmp_path):
  # The test list leaves out the first two entries: the third keeps position 2 (not 0).
  json_path, _ = vggss_files.write_vggss(tmp_path)
  entries = vggss_format.read(json_path, ["def_000000", "noclip_000050"]).entries
  assert [(e.position, e.file) for e in entries] == [(2, "def_000000"), (4, "noclip_000050")]
  assert vggss_format.entry_name(entries[0]) == "vggss.json entry 2 (def_000000)"


def test_the_test_list_is_read_by_its_first_csv_field(tmp_path):
  # EZ-VSL reads item[0] of each csv row: further fields (a class, a split) are not part of the
  # id. The reference rule, independently: split each non-blank line at its first comma.
  test_csv = tmp_path / "vggss_test.csv"
  lines = ["abc_000010,dog barking", "x-y_Z_000030", "def_000000,dog,test", "", "ghi_000020,"]
  test_csv.write_bytes("\r\n".join(lines).encode() + b"\r\n")
  expected = [line.split(",")[0] for line in lines if line]
  assert expected == ["abc_000010", "x-y_Z_000030", "def_000000", "ghi_000020"]
  assert vggss_format.read_test_list(test_csv) == expected


def test_vggss_annotated_frame_option_and_bad_files(tmp_path):
  assert vggss_format.annotated_segment() == 5
  assert vggss_format.annotated_segment("frame125") == 4
  with pytest.raises(vggss_format.VggssError, match="known: middle, frame125"):
    vggss_format.annotated_segment("first")
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps([{"file": "abc", "class": "x", "bbox": []}]))
  with pytest.raises(vggss_format.VggssError, match="not <youtube_id>_<start:06d>"):
    vggss_format.read(bad)
  bad.write_text(json.dumps([{"file": "abc_000001", "class": "x", "bbox": [[0, 1]]}]))
  with pytest.raises(vggss_format.VggssError, match="entry 0 .*a box must be"):
    vggss_format.read(bad)
  bad.write_text("{")
  with pytest.raises(vggss_format.VggssError, match="not JSON"):
    vggss_format.read(bad)


def test_flickr_reads_every_annotators_box(tmp_path):
  annotation_dir = vggss_files.write_flickr(tmp_path)
  assert flickr_soundnet_format.read_test_list(tmp_path / "metadata" / "flickr_test.csv") == [
      "1001",
      "1002",
  ]
  annotation = flickr_soundnet_format.read_annotation(annotation_dir / "1001.xml")
  assert annotation.boxes == ((0, 0, 128, 128), (0, 0, 128, 128), (128, 128, 256, 256))
  found, missing = flickr_soundnet_format.read_annotations(annotation_dir, ["1001", "9"])
  assert list(found) == ["1001"] and missing == ["9"]
  (annotation_dir / "bad.xml").write_text("<annotation>")
  with pytest.raises(flickr_soundnet_format.FlickrSoundnetError, match="bad.xml: not XML"):
    flickr_soundnet_format.read_annotation(annotation_dir / "bad.xml")


def _vggss_maps(path, with_frame_size=True):
  """maps.npz of the three test-listed entries; segment 5 holds each one's gt."""
  ids = ["abc_000010", "x-y_Z_000030", "def_000000"]
  where = np.zeros((3, 10, 224, 224), np.float32)
  by_file = {e["file"]: e["bbox"] for e in vggss_files.VGGSS_ENTRIES}
  for index, video_id in enumerate(ids):
    where[index, 5] = sl.vggss_gt_map(np.asarray(by_file[video_id]))
  arrays = dict(video_id=np.asarray(ids), where=where, when=np.zeros((3, 10), np.float32))
  if with_frame_size:
    arrays["frame_size"] = np.full((3, 2), 100, np.int32)
  np.savez(path, **arrays)
  return path


def _run(tmp_path, capsys, *args):
  out = tmp_path / "metrics.json"
  code = score_maps.main([*map(str, args), "--out", str(out)])
  captured = capsys.readouterr()
  return code, (json.loads(out.read_text()) if code == 0 else captured.err)


def test_evaluate_scores_vggss_maps(tmp_path, capsys):
  json_path, test_csv = vggss_files.write_vggss(tmp_path)
  maps = _vggss_maps(tmp_path / "maps.npz")
  code, metrics = _run(
      tmp_path, capsys, "--maps", maps, "--vggss", json_path, "--vggss_test_list", test_csv
  )
  assert code == 0
  assert (metrics["field_ciou"], metrics["field_auc"], metrics["field_ciou_mean"]) == (1, 1, 1)
  assert metrics["field_trials"] == 2  # def_000000 has no usable box
  assert (metrics["pointing_spatial"], metrics["pointing_spatial_trials"]) == (1.0, 2)
  assert metrics["pointing_temporal"] is None and metrics["localization_trials"] == 2
  # The 125th frame is in segment 4, whose maps are 0: constant maps predict nothing.
  code, metrics = _run(
      tmp_path, capsys, "--maps", maps, "--vggss", json_path, "--annotated_frame", "frame125"
  )
  assert code == 0 and (metrics["field_ciou"], metrics["field_trials"]) == (0.0, 2)
  # Without frame_size, maps of the crop cannot be placed; maps of the whole frame can.
  maps = _vggss_maps(tmp_path / "no_size.npz", with_frame_size=False)
  code, error = _run(tmp_path, capsys, "--maps", maps, "--vggss", json_path)
  assert code == 2 and "lacks frame_size" in error
  code, metrics = _run(
      tmp_path, capsys, "--maps", maps, "--vggss", json_path, "--map_covers", "frame"
  )
  assert code == 0 and metrics["field_ciou"] == 1 and metrics["pointing_spatial"] == 1.0


def test_evaluate_scores_flickr_maps_with_both_median_rules(tmp_path, capsys):
  annotation_dir = vggss_files.write_flickr(tmp_path)
  gt = sl.flickr_gt_map(np.array([[0, 0, 128, 128], [0, 0, 128, 128], [128, 128, 256, 256]]))
  where = np.stack([gt, np.zeros_like(gt)])[:, None].astype(np.float32)  # [2,1,224,224]
  maps = tmp_path / "maps.npz"
  np.savez(
      maps, video_id=np.asarray(["1001", "1002"]), where=where, when=np.zeros((2, 1), np.float32)
  )
  code, metrics = _run(tmp_path, capsys, "--maps", maps, "--flickr_annotations", annotation_dir)
  assert code == 0
  # 1002's constant map of zeros keeps every pixel under LVS's rule too: 18816 / (18816 + 25088)
  # of its gt.
  assert metrics["field_ciou_mean"] == pytest.approx((2 / 3 + 18816 / 43904) / 2)
  assert (metrics["field_ciou"], metrics["field_trials"]) == (0.5, 2)
  code, metrics = _run(
      tmp_path,
      capsys,
      "--maps",
      maps,
      "--flickr_annotations",
      annotation_dir,
      "--median_rule",
      "ge",
  )
  # `>=` keeps both blocks of 1001 (cIoU 1) and every pixel of the constant map of 1002:
  # 18816 / (18816 + 25088) of its gt.
  assert code == 0 and metrics["field_ciou_mean"] == pytest.approx((1 + 18816 / 43904) / 2)
  np.savez(maps, video_id=np.asarray(["1001", "7"]), where=where, when=np.zeros((2, 1), np.float32))
  code, error = _run(tmp_path, capsys, "--maps", maps, "--flickr_annotations", annotation_dir)
  assert code == 2 and "1 video ids of the maps have no" in error and "'7'" in error
