"""Small VGG-SS and Flickr-SoundNet annotation files in the real formats, with the real defects."""

import json
import pathlib

# Five entries: a clean one with two boxes, one with a sentinel box beside a good one, one whose
# only box is degenerate (no usable box left), one not in the test list, one whose clip the tests
# never write. The test list (CRLF) also names an id without an entry.
VGGSS_ENTRIES = [
    {
        "file": "abc_000010",
        "class": "dog barking",
        "bbox": [[0.25, 0.5, 0.5, 1.0], [0.0, 0.0, 0.1, 0.1]],
    },
    {
        "file": "x-y_Z_000030",
        "class": "cat meowing",
        "bbox": [[0.1, 0.2, -2.8823037615171174e16, 0.5], [0.5, 0.25, 1.0, 0.75]],
    },
    {"file": "def_000000", "class": "dog barking", "bbox": [[0.3, 0.3, 0.3, 0.6]]},
    {"file": "ghi_000020", "class": "bird chirping", "bbox": [[0.0, 0.0, 1.0, 1.0]]},
    {"file": "noclip_000050", "class": "cat meowing", "bbox": [[0.2, 0.2, 0.4, 0.4]]},
]
VGGSS_TEST_IDS = ["abc_000010", "x-y_Z_000030", "def_000000", "missing_000040", "noclip_000050"]

# Flickr-SoundNet: three annotators' boxes on the 256-px image (the consensus case of
# tests/test_sound_source_benchmark.py), the first child of <bbox> being skipped by the references.
FLICKR_XML = """<?xml version="1.0"?>
<annotation>
  <file>{image_id}.jpg</file>
  <object><bbox><name>s</name>
    <xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox></object>
  <object><bbox><name>s</name>
    <xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox></object>
  <object><bbox><name>s</name>
    <xmin>128</xmin><ymin>128</ymin><xmax>256</xmax><ymax>256</ymax></bbox></object>
</annotation>
"""


def write_vggss(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """metadata/vggss.json and metadata/vggss_test.csv (CRLF) under root."""
  metadata = root / "metadata"
  metadata.mkdir(parents=True, exist_ok=True)
  (metadata / "vggss.json").write_text(json.dumps(VGGSS_ENTRIES))
  (metadata / "vggss_test.csv").write_bytes("\r\n".join(VGGSS_TEST_IDS).encode() + b"\r\n")
  return metadata / "vggss.json", metadata / "vggss_test.csv"


def write_flickr(root: pathlib.Path, image_ids=("1001", "1002")) -> pathlib.Path:
  """Annotations/<id>.xml for each id and metadata/flickr_test.csv (CRLF); returns Annotations/."""
  annotations = root / "Annotations"
  annotations.mkdir(parents=True, exist_ok=True)
  for image_id in image_ids:
    (annotations / f"{image_id}.xml").write_text(FLICKR_XML.format(image_id=image_id))
  (root / "metadata").mkdir(exist_ok=True)
  (root / "metadata" / "flickr_test.csv").write_bytes("\r\n".join(image_ids).encode() + b"\r\n")
  return annotations
