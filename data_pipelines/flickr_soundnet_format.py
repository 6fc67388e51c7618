"""Reading the Flickr-SoundNet sound-source test annotations (Senocak et al. 2018, "Learning to
Localize Sound Source in Visual Scenes"; the test set as LVS and EZ-VSL use it).

`Annotations/<id>.xml`: three annotators' `<bbox>` elements, each holding a first child (skipped
by the reference loaders) then xmin, ymin, xmax, ymax as integers on a 256 x 256 image. The
reference loaders walk `root -> child -> bbox`; here every `<bbox>` element of the file is read,
by its xmin/ymin/xmax/ymax children when they are named so, else by position after the first.
`metadata/flickr_test.csv`: one id per line (249 in LVS's list; other repositories list 250, one
id differing). The ground truth is the consensus map of stt.explain.sound_source_benchmark.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ElementTree

from etils import epath

COORDINATE_TAGS = ("xmin", "ymin", "xmax", "ymax")
IMAGE_SIZE = 256


class FlickrSoundnetError(ValueError):
  """An annotation file cannot be read. The message names the file."""


@dataclasses.dataclass(frozen=True)
class FlickrAnnotation:
  image_id: str
  boxes: tuple[tuple[int, int, int, int], ...]  # all annotators', [x0,y0,x1,y1] on 256 px
  degenerate_boxes: int  # zero width or height (kept: they add nothing to the consensus map)


def read_test_list(path: epath.PathLike) -> list[str]:
  """flickr_test.csv: ids, one a line (CRLF or LF; a trailing `,<split>` column is dropped)."""
  text = epath.Path(path).read_text(encoding="utf-8-sig")
  return [line.split(",")[0].strip() for line in text.splitlines() if line.strip()]


def _box(element, path) -> tuple[int, int, int, int]:
  named = {child.tag: child.text for child in element}
  if all(tag in named for tag in COORDINATE_TAGS):
    texts = [named[tag] for tag in COORDINATE_TAGS]
  else:
    texts = [child.text for child in list(element)[1:5]]
  try:
    values = tuple(int(float((text or "").strip())) for text in texts)
  except ValueError:
    raise FlickrSoundnetError(f"{path}: a <bbox> holds non-numbers {texts}") from None
  if len(values) != 4:
    raise FlickrSoundnetError(f"{path}: a <bbox> needs xmin, ymin, xmax, ymax, got {texts}")
  return values


def read_annotation(path: epath.PathLike) -> FlickrAnnotation:
  """Annotations/<id>.xml -> every annotator's box."""
  path = epath.Path(path)
  try:
    root = ElementTree.fromstring(path.read_bytes())
  except ElementTree.ParseError as error:
    raise FlickrSoundnetError(f"{path}: not XML ({error})") from None
  boxes = tuple(_box(element, path) for element in root.iter("bbox"))
  if not boxes:
    raise FlickrSoundnetError(f"{path}: no <bbox> element")
  degenerate = sum(x1 <= x0 or y1 <= y0 for x0, y0, x1, y1 in boxes)
  return FlickrAnnotation(path.stem, boxes, degenerate)


def read_annotations(
    annotation_dir: epath.PathLike, image_ids: list[str]
) -> tuple[dict[str, FlickrAnnotation], list[str]]:
  """({id: annotation} for the ids with an Annotations/<id>.xml, [ids without one])."""
  annotation_dir = epath.Path(annotation_dir)
  found, missing = {}, []
  for image_id in image_ids:
    path = annotation_dir / f"{image_id}.xml"
    if path.exists():
      found[image_id] = read_annotation(path)
    else:
      missing.append(image_id)
  return found, missing
