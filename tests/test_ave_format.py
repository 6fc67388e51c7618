"""AVE-format parsing, on the real AVE release metadata in tests/data/ave/."""

import h5py
import pytest

from data_pipelines import ave_format
from tests.conftest import AVE_METADATA_DIR as AVE_META


def test_real_annotations_parse_with_classes_in_order_of_first_appearance():
  rows = ave_format.parse_annotation_lines(AVE_META / "Annotations.txt")
  assert len(rows) == 4143
  names = ave_format.class_names_in_order(rows)
  assert len(names) == 28
  assert names[:3] == ["Church bell", "Male speech, man speaking", "Bark"]
  assert rows[1] == ave_format.EventRow("Church bell", "MH3m4AwEcRY", "good", 6, 8)
  assert rows[26] == ave_format.EventRow("Church bell", "VWi2ENBuTbw", "good", 0, 0)  # empty event
  # Several rows share a video id; rows, not ids, are the unit.
  assert len({r.video_id for r in rows}) < len(rows)


def test_segment_labels_agree_with_release_labels():
  rows = ave_format.parse_annotation_lines(AVE_META / "Annotations.txt")
  names = ave_format.class_names_in_order(rows)
  with h5py.File(AVE_META / "mil_labels.h5") as f:
    video_labels = f["avadataset"][:]  # [4143, 29]
  for i in range(0, 4143, 97):
    expected = names.index(rows[i].category)
    assert video_labels[i].argmax() == expected
    labels = ave_format.segment_labels(rows[i], expected, 10, background=28)
    assert labels.count(expected) == rows[i].end - rows[i].start


def test_header_is_optional_and_bad_lines_are_clear(tmp_path):
  path = tmp_path / "Annotations.txt"
  path.write_text(
      "Category&VideoID&Quality&StartTime&EndTime\nDog&abc&good&2&5\n\nCat&x&good&0&10\n"
  )
  rows = ave_format.parse_annotation_lines(path)
  assert [r.video_id for r in rows] == ["abc", "x"]
  path.write_text("Dog&abc&good&2\n")
  with pytest.raises(ave_format.AnnotationError, match="5 '&'-separated fields"):
    ave_format.parse_annotation_lines(path)
  path.write_text("Dog&abc&good&5&2\n")
  with pytest.raises(ave_format.AnnotationError, match="start <= end"):
    ave_format.parse_annotation_lines(path)
  path.write_text("Dog&abc&good&a&2\n")
  with pytest.raises(ave_format.AnnotationError, match="integer seconds"):
    ave_format.parse_annotation_lines(path)


def test_boxes_jsonl(tmp_path):
  (tmp_path / "boxes.jsonl").write_text(
      '{"video_id": "v1", "segment": 3, "frame_size": [320, 240], "boxes": [[1, 2, 30, 40]]}\n'
  )
  boxes = ave_format.read_boxes(tmp_path)
  assert boxes["v1"][3].frame_size == (320, 240)
  assert boxes["v1"][3].boxes == ((1.0, 2.0, 30.0, 40.0),)
  (tmp_path / "boxes.jsonl").write_text('{"video_id": "v1", "segment": 3, "boxes": []}\n')
  with pytest.raises(ave_format.AnnotationError, match="boxes.jsonl:1"):
    ave_format.read_boxes(tmp_path)
  assert ave_format.read_boxes(tmp_path / "missing") == {}
