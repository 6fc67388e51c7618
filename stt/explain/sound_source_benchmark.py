"""The sound-source localization benchmarks' scores (cIoU@0.5 and AUC) on VGG-SS and
Flickr-SoundNet: the field's protocol, with the cIoU of stt/explain/ciou.py.

The protocol of LVS (Chen et al. 2021, "Localizing Visual Sounds the Hard Way", test.py and
utils.py) as EZ-VSL and SSL-alignment also report it:

1. Ground truth on the S x S scored image (S = 224):
   - VGG-SS (`vggss_gt_map`): boxes normalised to the frame, each coordinate v -> int(S *
     max(v, 0)), a box covering rows y0..y1-1 and columns x0..x1-1; the union of the boxes (0/1).
   - Flickr-SoundNet (`flickr_gt_map`): boxes on a 256-px image, v -> int(S * v / 256); the
     consensus map: sum of the box masks of all annotators / 2, clipped to 1 (values 0, .5, 1).
2. The map is resized to S x S as cv2's INTER_LINEAR (no antialiasing when it shrinks),
   min-max normalised, and binarised at its median: threshold = the value at index floor(S*S/2)
   of the ascending sorted pixels; LVS keeps pixels `> threshold` and those at the maximum (a
   flat top half stays; a constant map >= 0 keeps every pixel) (MEDIAN_RULES 'gt', the
   default), EZ-VSL `>= threshold` ('ge'). The exact rules: stt/explain/ciou.py.
3. Per image cIoU = sum(pred * gt) / (sum(gt) + sum(pred * [gt == 0])) (0 when both are empty).
   Reported (bare names, the caller adds its namespace): `field_ciou` = share of images with
   cIoU >= 0.5; `field_auc` = trapezoid area under the success rate (share of images with
   cIoU >= theta) over theta = 0, 0.05, ..., 1 (sklearn.metrics.auc in the references);
   `field_ciou_mean`; `field_trials`, the number of images scored.

Geometry. LVS scores the maps of its test images, made by resize-then-crop (shorter side to S,
centre crop), against int(S * v) of box coordinates normalised to the WHOLE frame; EZ-VSL squashes
the whole frame to S x S, where the same boxes fit. `gt_geometry`: 'reference' (the default, the
references' code: the map, whatever part of the frame it covers, is laid on int(S * v) of the
whole-frame boxes; with LVS's crop and a non-square frame the boxes are off by the crop) or
'aligned' (the boxes are mapped onto the part of the frame the map covers, so a box outside the
crop is cut away). `map_covers`: 'crop' (STAN and every model here see the centred square crop,
as LVS's test images) or 'frame' (squashed frames, as EZ-VSL). On a square frame, or with
map_covers='frame', the two geometries coincide.
"""

from __future__ import annotations

import numpy as np

from data_pipelines import catalogue
from data_pipelines import dataset_spec
from stt.explain import ciou as ciou_lib
from stt.explain.pointing import crop_region

SCORED_SIZE = 224
MEDIAN_RULES = ciou_lib.MEDIAN_RULES  # LVS: > median (and the maximum); EZ-VSL: >= median
GT_GEOMETRIES = ("reference", "aligned")  # boxes on the whole frame / on the map's region
MAP_COVERS = ("crop", "frame")  # the part of the frame a model's map covers
FLICKR_IMAGE_SIZE = 256  # Flickr-SoundNet boxes are given on 256 x 256 images
# The ground truth of a set: the union of its boxes (VGG-SS) or the annotators' consensus map;
# each annotation set's is its catalogue record's (data_pipelines/catalogue.py), as are the
# published rows printed beside ours.
GROUND_TRUTHS = dataset_spec.GROUND_TRUTHS


# The keys of `field_scores` and `box_field_scores`, bare (the caller adds its namespace).
METRICS = ("field_ciou", "field_auc", "field_ciou_mean", "field_trials")


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
  if value not in choices:
    raise ValueError(f"{name}={value!r}; known: {', '.join(choices)}")


def map_region(
    frame_size: tuple[int, int], map_covers: str = "crop"
) -> tuple[float, float, float, float]:
  """(x_offset, y_offset, width, height) of the part of a (W, H) frame a map covers, in pixels."""
  _check_choice(map_covers, MAP_COVERS, "map_covers")
  width, height = frame_size
  if map_covers == "frame":
    return 0.0, 0.0, float(width), float(height)
  x_offset, y_offset, side = crop_region(frame_size)
  return x_offset, y_offset, side, side


def scored_map(where_map: np.ndarray, size: int = SCORED_SIZE) -> np.ndarray:
  """[h,w] -> [S,S] float64, resized as cv2.INTER_LINEAR in LVS (growing or shrinking)."""
  return np.asarray(ciou_lib.resize_linear(where_map, size), np.float64)


def vggss_gt_map(
    boxes: np.ndarray,
    frame_size: tuple[int, int] | None = None,
    *,
    gt_geometry: str = "reference",
    map_covers: str = "crop",
    size: int = SCORED_SIZE,
) -> np.ndarray:
  """VGG-SS ground truth [S,S] float (0/1): the union of boxes [K,4] ([x0,y0,x1,y1] normalised
  to the whole frame; negative values count as 0, as the references clamp the sentinel).

  gt_geometry='reference': each coordinate v -> int(S * v), frame_size unused. 'aligned': the
  boxes are mapped onto the part (map_covers) of the (W, H) frame the map covers."""
  _check_choice(gt_geometry, GT_GEOMETRIES, "gt_geometry")
  gt = np.zeros((size, size))
  if gt_geometry == "aligned":
    if frame_size is None:
      raise ValueError("gt_geometry='aligned' needs the frame size (W, H)")
    width, height = frame_size
    x_offset, y_offset, region_w, region_h = map_region(frame_size, map_covers)
  else:
    width = height = region_w = region_h = 1.0
    x_offset = y_offset = 0.0
  for x0, y0, x1, y1 in np.maximum(np.asarray(boxes, np.float64).reshape(-1, 4), 0.0):
    columns = [int(np.clip((x * width - x_offset) / region_w * size, 0, size)) for x in (x0, x1)]
    rows = [int(np.clip((y * height - y_offset) / region_h * size, 0, size)) for y in (y0, y1)]
    gt[rows[0] : rows[1], columns[0] : columns[1]] = 1.0
  return gt


def flickr_gt_map(boxes: np.ndarray, size: int = SCORED_SIZE) -> np.ndarray:
  """Flickr-SoundNet consensus ground truth [S,S] in {0, .5, 1}: boxes [K,4] of all annotators
  ([x0,y0,x1,y1] on the 256-px image) -> sum of box masks / 2, clipped to 1."""
  gt = np.zeros((size, size))
  for box in np.asarray(boxes).reshape(-1, 4):
    x0, y0, x1, y1 = (int(size * int(v) / FLICKR_IMAGE_SIZE) for v in box)
    mask = np.zeros((size, size))
    mask[y0:y1, x0:x1] = 1.0
    gt += mask
  return consensus_map(gt)


def consensus_map(mask_sum: np.ndarray) -> np.ndarray:
  """Flickr-SoundNet's consensus: the sum of the annotators' 0/1 box masks / 2, clipped to 1."""
  return np.minimum(np.asarray(mask_sum, np.float64) / 2.0, 1.0)


def field_scores(scored_maps, gt_maps, median_rule: str = "gt") -> dict[str, float]:
  """{field_ciou, field_auc, field_ciou_mean, field_trials} of [S,S] maps on the scored image
  against [S,S] gt maps (NaN scores when there is no image)."""
  cious = np.asarray(
      [
          ciou_lib.ciou(ciou_lib.binarise(scored, median_rule), gt)
          for scored, gt in zip(scored_maps, gt_maps)
      ],
      np.float64,
  )
  if cious.size == 0:
    return {**{name: float("nan") for name in METRICS[:-1]}, "field_trials": 0}
  return {
      "field_ciou": float(np.mean(cious >= 0.5)),
      "field_auc": ciou_lib.ciou_auc(cious),
      "field_ciou_mean": float(cious.mean()),
      "field_trials": int(cious.size),
  }


def published_rows(dataset: str) -> list[tuple[str, float, float | None, str]]:
  """[(method, cIoU@0.5 %, AUC % or None, source)] published for `dataset` (its catalogue
  record's; these methods are trained to localize sounds, STAN's maps explain a classifier's
  decision)."""
  record = catalogue.DATASETS.get(dataset)
  return list(record.published_rows) if record is not None else []


def box_field_scores(
    where: np.ndarray,
    boxes: np.ndarray,
    box_mask: np.ndarray,
    frame_size: np.ndarray,
    segment_mask: np.ndarray | None = None,
    *,
    gt_geometry: str = "reference",
    median_rule: str = "gt",
    ground_truth: str = "union",
) -> dict[str, float]:
  """The field's scores (`field_scores`) of maps of the centre crop on every trial of the pointing game (an
  annotated valid segment) of a built dataset, against the union of the boxes (VGG-SS) or,
  ground_truth='consensus', the annotators' consensus map (Flickr-SoundNet: the box masks of
  vggss_gt_map, one per box, summed by consensus_map; on the reference geometry this is
  flickr_gt_map of the boxes on the 256-px scale).

  Args:
    where: [V,T,h,w] maps of the centre crop.
    boxes: [V,T,K,4] boxes [x0,y0,x1,y1] in original-frame pixels.
    box_mask: [V,T,K] which boxes exist.
    frame_size: [V,2] original (W, H).
    segment_mask: [V,T] valid segments (None: all).

  Returns:
    {field_ciou, field_auc, field_ciou_mean: `field_scores`'s, field_trials: the images scored}.
  """
  _check_choice(ground_truth, GROUND_TRUTHS, "ground_truth")
  trials = np.asarray(box_mask, bool).any(-1)
  if segment_mask is not None:
    trials &= np.asarray(segment_mask, bool)
  scored, gts = [], []
  for video, segment in zip(*np.nonzero(trials)):
    width, height = (int(v) for v in frame_size[video])
    normalised = np.asarray(boxes[video, segment][box_mask[video, segment]], np.float64) / np.array(
        [width, height, width, height], np.float64
    )
    if ground_truth == "consensus":
      gts.append(
          consensus_map(
              sum(
                  (
                      vggss_gt_map(box, (width, height), gt_geometry=gt_geometry)
                      for box in normalised
                  ),
                  np.zeros((SCORED_SIZE, SCORED_SIZE)),
              )
          )
      )
    else:
      gts.append(vggss_gt_map(normalised, (width, height), gt_geometry=gt_geometry))
    scored.append(scored_map(where[video, segment]))
  return field_scores(scored, gts, median_rule)
