"""VGG-SS and Flickr-SoundNet annotations as the arrays the map scorers read.

Maps come as in `python -m stt.explain.score_maps` (video_id [V], where [V,T,h,w], segment_mask
[V,T], optionally frame_size [V,2] original (W, H)). The scored map of a video is
where[v, segment]: for VGG-SS the segment holding the annotated frame
(`vggss_format.annotated_segment`), for Flickr-SoundNet (one image per id) segment 0 unless told.

Pointing games need boxes in the pixels of the frame the map is placed in (stt.explain.pointing
places it on the centred square crop). map_covers='crop': the boxes are the normalised VGG-SS
boxes times the maps' frame_size. map_covers='frame' (a map of the squashed whole frame): the
frame is taken as a virtual VIRTUAL_SIZE x VIRTUAL_SIZE square, whose crop is the whole frame,
and the boxes are scaled to it (the pointing tolerance is then in those pixels). Flickr-SoundNet
boxes are on a 256 x 256 image, which is their frame.

The field's scores (cIoU@0.5, AUC) come from stt.explain.sound_source_benchmark with the
`gt_geometry`, `map_covers` and `median_rule` options; they are returned as `field_ciou`,
`field_auc`, `field_ciou_mean`, `field_trials`.
"""

from __future__ import annotations

import numpy as np

from data_pipelines import flickr_soundnet_format
from data_pipelines import vggss_format
from stt.explain import sound_source_benchmark

VIRTUAL_SIZE = sound_source_benchmark.SCORED_SIZE


class AnnotationSetError(ValueError):
  """The maps and the annotations do not fit together. The message says how."""


def _segment_column(maps: dict, segment: int) -> np.ndarray:
  """[V] bool: videos whose `segment` is valid; AnnotationSetError if T <= segment."""
  num_segments = maps["where"].shape[1]
  if not 0 <= segment < num_segments:
    raise AnnotationSetError(
        f"the annotated segment {segment} is not in the maps' T={num_segments} segments"
    )
  return np.asarray(maps["segment_mask"], bool)[:, segment]


def vggss_arrays(
    maps: dict, annotations: vggss_format.VggssAnnotations, segment: int, map_covers: str = "crop"
) -> tuple[dict, dict, list]:
  """(events, boxes, normalised boxes per video) for `score_maps.score` and `field_metrics`.

  events: labels [V] (class index by first appearance in vggss.json), event_start = event_end = 0
  (VGG-SS has no temporal annotation: no temporal trial). boxes: boxes [V,T,K,4] in the pixels
  described in the module doc at `segment` only, box_mask [V,T,K], frame_size [V,2]."""
  by_file = {entry.file: entry for entry in annotations.entries}
  class_index = {
      name: i
      for i, name in enumerate(dict.fromkeys(entry.class_name for entry in annotations.entries))
  }
  video_ids = [str(v) for v in maps["video_id"]]
  unknown = [v for v in video_ids if v not in by_file]
  if unknown:
    raise AnnotationSetError(
        f"{len(unknown)} video ids of the maps are not VGG-SS files, e.g. "
        f"{unknown[0]!r} (VGG-SS ids are <youtube_id>_<start:06d>)"
    )
  if map_covers == "crop" and "frame_size" not in maps:
    raise AnnotationSetError(
        "maps.npz lacks frame_size [V,2] (original W, H), needed to place the normalised boxes "
        "on a map of the centre crop (--mode=explain writes it); for maps of the whole frame "
        "pass --map_covers=frame"
    )
  valid = _segment_column(maps, segment)
  entries = [by_file[v] for v in video_ids]
  num_boxes = max([len(entry.boxes) for entry in entries] + [1])
  num_videos, num_segments = maps["where"].shape[:2]
  boxes = np.zeros((num_videos, num_segments, num_boxes, 4), np.float32)
  box_mask = np.zeros((num_videos, num_segments, num_boxes), bool)
  if map_covers == "crop":
    frame_size = np.asarray(maps["frame_size"], np.int32).reshape(num_videos, 2)
  else:
    sound_source_benchmark.map_region((1, 1), map_covers)  # checks the choice
    frame_size = np.full((num_videos, 2), VIRTUAL_SIZE, np.int32)
  normalised = []
  for index, entry in enumerate(entries):
    normalised.append(np.asarray(entry.boxes, np.float64).reshape(-1, 4))
    if entry.boxes and valid[index]:
      scale = np.tile(frame_size[index], 2)
      boxes[index, segment, : len(entry.boxes)] = normalised[-1] * scale
      box_mask[index, segment, : len(entry.boxes)] = True
  events = {
      "labels": np.asarray([class_index[entry.class_name] for entry in entries]),
      "event_start": np.zeros(num_videos, int),
      "event_end": np.zeros(num_videos, int),
  }
  return events, {"boxes": boxes, "box_mask": box_mask, "frame_size": frame_size}, normalised


def flickr_arrays(maps: dict, annotation_dir, segment: int = 0) -> tuple[dict, dict, list]:
  """(events, boxes, 256-px boxes per video) as `vggss_arrays`, for Flickr-SoundNet ids whose
  Annotations/<id>.xml is in annotation_dir. All ids share label 0 (no classes)."""
  video_ids = [str(v) for v in maps["video_id"]]
  found, missing = flickr_soundnet_format.read_annotations(annotation_dir, video_ids)
  if missing:
    raise AnnotationSetError(
        f"{len(missing)} video ids of the maps have no "
        f"{annotation_dir}/<id>.xml, e.g. {missing[0]!r}"
    )
  valid = _segment_column(maps, segment)
  num_videos, num_segments = maps["where"].shape[:2]
  num_boxes = max(len(annotation.boxes) for annotation in found.values())
  boxes = np.zeros((num_videos, num_segments, num_boxes, 4), np.float32)
  box_mask = np.zeros((num_videos, num_segments, num_boxes), bool)
  pixel_boxes = []
  for index, video_id in enumerate(video_ids):
    pixel_boxes.append(np.asarray(found[video_id].boxes, np.float64).reshape(-1, 4))
    if valid[index]:
      boxes[index, segment, : len(pixel_boxes[-1])] = pixel_boxes[-1]
      box_mask[index, segment, : len(pixel_boxes[-1])] = True
  frame_size = np.full((num_videos, 2), flickr_soundnet_format.IMAGE_SIZE, np.int32)
  events = {
      "labels": np.zeros(num_videos, int),
      "event_start": np.zeros(num_videos, int),
      "event_end": np.zeros(num_videos, int),
  }
  return events, {"boxes": boxes, "box_mask": box_mask, "frame_size": frame_size}, pixel_boxes


def field_metrics(
    maps: dict,
    gt_boxes: list,
    segment: int,
    ground_truth: str,
    *,
    gt_geometry: str = "reference",
    map_covers: str = "crop",
    median_rule: str = "gt",
) -> dict:
  """`field_ciou`, `field_auc`, `field_ciou_mean`, `field_trials` of where[:, segment] against
  each video's boxes; videos without a box or whose segment is padded are no trials.

  ground_truth: the annotation set's record's (data_pipelines/catalogue.py): 'union', the union
  of VGG-SS's normalised boxes (`vggss_arrays`), or 'consensus', the annotators' consensus map
  of Flickr-SoundNet's 256-px boxes (`flickr_arrays`).
  """
  valid = _segment_column(maps, segment)
  scored, gts = [], []
  for index, video_boxes in enumerate(gt_boxes):
    if not len(video_boxes) or not valid[index]:
      continue
    if ground_truth == "union":
      frame_size = (
          tuple(int(v) for v in maps["frame_size"][index]) if "frame_size" in maps else None
      )
      gt = sound_source_benchmark.vggss_gt_map(
          video_boxes, frame_size, gt_geometry=gt_geometry, map_covers=map_covers
      )
    else:
      gt = sound_source_benchmark.flickr_gt_map(video_boxes)
    scored.append(sound_source_benchmark.scored_map(maps["where"][index, segment]))
    gts.append(gt)
  return sound_source_benchmark.field_scores(scored, gts, median_rule)
