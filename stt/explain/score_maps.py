"""The maps-file CLI: scores explanation maps made by any model against AVE-format annotations
(or VGG-SS / Flickr-SoundNet). Not the trainer's split evaluator (stt/split_evaluator.py).

    python -m stt.explain.score_maps --maps maps.npz --events Annotations.txt \\
        [--boxes boxes.jsonl] --out metrics.json [--tolerance_px 15]

maps.npz (written by numpy.savez / savez_compressed, no pickled objects) holds `video_id` [V]
str, `where` [V,T,h,w], `when` [V,T], and optionally `segment_mask` [V,T] bool (default all
valid), `when_audio` / `when_visual` [V,T]; the maps are real numbers, finite in every valid
segment. Padded segments (segment_mask false) are never trials, and a video without a valid
segment is no temporal trial.
The events file has `Category&VideoID&Quality&StartTime&EndTime` rows (the class index is the
order of first appearance, as in training). A video id that occurs n times in the maps is paired
with its first n rows, in file order (AVE has a few videos with several rows). Boxes come from a
JSON-lines file of any name in the format of AVE's boxes.jsonl, as read by
`ave_format.read_boxes` (segment index < T).

metrics.json: pointing_spatial, pointing_spatial_class_mean, pointing_spatial_trials,
pointing_temporal, pointing_temporal_class_mean, pointing_temporal_trials (and _audio / _visual
variants when those maps are given), relevance_mass, ciou, ciou_auc, ciou_mean,
localization_trials, num_videos. Scores without trials (no boxes) are null. Missing folders
above --out are created.
VGG-SS / Flickr-SoundNet instead of --events/--boxes (stt/explain/annotation_arrays.py):

    python -m stt.explain.score_maps --maps maps.npz --vggss vggss.json \
        [--vggss_test_list vggss_test.csv] [--annotated_frame middle|frame125] --out metrics.json
    python -m stt.explain.score_maps --maps maps.npz --flickr_annotations Annotations/ --out m.json

score the spatial pointing game and the LVS-style scores at the annotated segment, plus the
sound-localization field's field_ciou (share of images with cIoU >= 0.5), field_auc,
field_ciou_mean and field_trials (stt/explain/sound_source_benchmark.py), with --map_covers
crop|frame (the part of the frame a map covers; crop needs frame_size [V,2] in maps.npz),
--gt_geometry reference|aligned and --median_rule gt|ge (defaults: LVS's protocol).

Bad input (unreadable files, a file that is not an .npz, object arrays, unknown video ids, shape
mismatches, NaN / Inf in the maps, an --out that cannot be written) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import pathlib
import sys
import tempfile
import zipfile
import zlib

import numpy as np

from data_pipelines import ave_format
from data_pipelines import catalogue
from data_pipelines import vggss_format
from stt.explain import annotation_arrays
from stt.explain import box_scores
from stt.explain import pointing
from stt.explain import sound_source_benchmark

EXIT_BAD_INPUT = 2
MAP_KEYS = ("where", "when", "when_audio", "when_visual")  # the maps a model or explainer gives
NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip file with members / an empty one
NPY_MAGIC = b"\x93NUMPY"


class InputError(ValueError):
  """The maps, events or boxes do not fit together."""


def _read_npz(path: pathlib.Path) -> dict:
  """Every array of an .npz file, without unpickling; InputError naming `path` otherwise."""
  with open(path, "rb") as file:
    magic = file.read(len(NPY_MAGIC))
  if magic.startswith(NPY_MAGIC):
    raise InputError(
        f"{path}: a .npy file (one array); save video_id, where, when together with numpy.savez"
    )
  if not magic.startswith(NPZ_MAGIC):
    raise InputError(f"{path}: not a .npz file written by numpy.savez")
  maps = {}
  try:
    with np.load(path, allow_pickle=False) as data:
      for key in data.files:
        try:
          maps[key] = data[key]
        except ValueError as error:
          if "allow_pickle" not in str(error):
            raise InputError(f"{path}: {key}: {error}") from None
          hint = "a str array, e.g. np.asarray(ids, str)" if key == "video_id" else "numbers"
          raise InputError(f"{path}: {key} is an object array; save it as {hint}") from None
        if not isinstance(maps[key], np.ndarray):
          raise InputError(f"{path}: {key} is not a .npy array; write the file with numpy.savez")
  except (zipfile.BadZipFile, zlib.error, EOFError) as error:
    raise InputError(f"{path}: not a readable .npz file ({error})") from None
  return maps


def load_maps(path: pathlib.Path) -> dict:
  """maps.npz as a dict of arrays, with shapes, dtypes and values checked."""
  maps = _read_npz(path)
  missing = [key for key in ("video_id", "where", "when") if key not in maps]
  if missing:
    raise InputError(f"{path}: missing arrays {missing} (need video_id, where, when)")
  video_id = maps["video_id"]
  if video_id.ndim != 1:
    raise InputError(f"{path}: video_id must be a 1-D array [V], got shape {video_id.shape}")
  if video_id.dtype.kind not in "USiu":
    raise InputError(
        f"{path}: video_id has dtype {video_id.dtype}; save it as a str array, "
        "e.g. np.asarray(ids, str)"
    )
  for key in MAP_KEYS + ("segment_mask",):
    if key in maps and maps[key].dtype.kind not in "biuf":
      raise InputError(f"{path}: {key} has dtype {maps[key].dtype}, expected real numbers")
  where, num_videos = maps["where"], len(video_id)
  if where.ndim != 4 or where.shape[0] != num_videos or 0 in where.shape[1:]:
    raise InputError(
        f"{path}: where has shape {where.shape}, expected [V={num_videos},T,h,w] "
        "with T, h, w >= 1"
    )
  expected = where.shape[:2]
  for key in ("when", "segment_mask", "when_audio", "when_visual"):
    if key in maps and maps[key].shape != expected:
      raise InputError(f"{path}: {key} has shape {maps[key].shape}, expected [V,T]={expected}")
  maps["video_id"] = np.asarray(
      [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in video_id], str
  )
  if "frame_size" in maps and (
      maps["frame_size"].shape != (num_videos, 2)
      or maps["frame_size"].dtype.kind not in "iuf"
      or not np.all(maps["frame_size"] >= 1)
  ):
    raise InputError(
        f"{path}: frame_size must be [V={num_videos},2] positive (W, H), got "
        f'shape {maps["frame_size"].shape}'
    )
  maps["segment_mask"] = maps.get("segment_mask", np.ones(expected, bool)).astype(bool)
  for key in MAP_KEYS:  # only valid segments are ever scored
    if key in maps:
      values = maps[key][maps["segment_mask"]]
      bad = values.size - np.count_nonzero(np.isfinite(values))
      if bad:
        raise InputError(
            f"{path}: {key} has {bad} non-finite value(s) (NaN or Inf) of "
            f"{values.size} in valid segments"
        )
  return maps


def event_arrays(video_ids: np.ndarray, rows: list) -> dict:
  """labels, event_start, event_end [V] for each map, pairing repeated ids with rows in order."""
  class_index = {name: i for i, name in enumerate(ave_format.class_names_in_order(rows))}
  rows_by_video = collections.defaultdict(list)
  for row in rows:
    rows_by_video[row.video_id].append(row)
  seen = collections.Counter()
  labels, starts, ends = [], [], []
  for video_id in map(str, video_ids):  # str: np.str_ prints as np.str_('...')
    candidates = rows_by_video.get(video_id, [])
    if seen[video_id] >= len(candidates):
      raise InputError(
          f"video id {video_id!r} (occurrence {seen[video_id] + 1}) is not in the events file"
      )
    row = candidates[seen[video_id]]
    seen[video_id] += 1
    labels.append(class_index[row.category])
    starts.append(row.start)
    ends.append(row.end)
  return {
      "labels": np.asarray(labels),
      "event_start": np.asarray(starts),
      "event_end": np.asarray(ends),
  }


def read_events(path: pathlib.Path) -> list:
  """`ave_format.parse_annotation_lines`, with a binary file reported by name."""
  try:
    return ave_format.parse_annotation_lines(path)
  except UnicodeDecodeError:
    raise InputError(f"{path}: not a UTF-8 text file") from None


def read_boxes_file(path: pathlib.Path) -> dict:
  """`ave_format.read_boxes` for a boxes file of any name; its errors name `path`."""
  if not path.is_file():
    raise InputError(f'{path}: {"not a file" if path.exists() else "no such file"}')
  if path.name == "boxes.jsonl":
    return ave_format.read_boxes(path.parent)
  with tempfile.TemporaryDirectory() as directory:
    link = pathlib.Path(directory) / "boxes.jsonl"  # the only name read_boxes reads
    link.symlink_to(path.resolve())
    try:
      return ave_format.read_boxes(directory)
    except UnicodeDecodeError:
      raise InputError(f"{path}: not a UTF-8 text file") from None
    except ValueError as error:  # AnnotationError: '<link>:<line>: bad boxes record ...'
      raise InputError(str(error).replace(str(link), str(path))) from None


def box_arrays(video_ids: np.ndarray, boxes_by_video: dict, num_segments: int) -> dict:
  """boxes [V,T,K,4], box_mask [V,T,K], frame_size [V,2] from read_boxes' dict."""
  num_boxes = max([len(s.boxes) for v in boxes_by_video.values() for s in v.values()] + [1])
  boxes = np.zeros((len(video_ids), num_segments, num_boxes, 4), np.float32)
  box_mask = np.zeros((len(video_ids), num_segments, num_boxes), bool)
  frame_size = np.ones((len(video_ids), 2), np.int32)
  for index, video_id in enumerate(map(str, video_ids)):
    for segment, record in boxes_by_video.get(video_id, {}).items():
      if not 0 <= segment < num_segments:
        raise InputError(f"boxes of {video_id!r} segment {segment}: maps have T={num_segments}")
      if min(record.frame_size) < 1:
        raise InputError(
            f"boxes of {video_id!r} segment {segment}: frame_size "
            f"{list(record.frame_size)} must be positive [W,H]"
        )
      frame_size[index] = record.frame_size
      boxes[index, segment, : len(record.boxes)] = record.boxes
      box_mask[index, segment, : len(record.boxes)] = True
  return {"boxes": boxes, "box_mask": box_mask, "frame_size": frame_size}


def score(maps: dict, events: dict, boxes: dict | None, tolerance_px: float = 15.0) -> dict:
  """All metrics as a flat dict (NaN where there is no trial)."""
  metrics = {"num_videos": int(len(maps["video_id"]))}
  for key, suffix in (("when", ""), ("when_audio", "_audio"), ("when_visual", "_visual")):
    if key in maps:
      temporal = pointing.temporal_pointing(
          maps[key],
          maps["segment_mask"],
          events["event_start"],
          events["event_end"],
          events["labels"],
      )
      metrics[f"pointing_temporal{suffix}"] = temporal.overall
      metrics[f"pointing_temporal{suffix}_class_mean"] = temporal.class_mean
      metrics[f"pointing_temporal{suffix}_trials"] = temporal.num_trials
  nan = float("nan")
  spatial = pointing.PointingResult(nan, nan, 0)
  located = {**{name: nan for name in box_scores.METRICS[:-1]}, "localization_trials": 0}
  if boxes is not None:
    spatial = pointing.spatial_pointing(
        maps["where"],
        boxes["boxes"],
        boxes["box_mask"],
        boxes["frame_size"],
        events["labels"],
        tolerance_px,
        segment_mask=maps["segment_mask"],
    )
    located = box_scores.box_scores(
        maps["where"], boxes["boxes"], boxes["box_mask"], boxes["frame_size"], maps["segment_mask"]
    )
  metrics.update(
      {
          "pointing_spatial": spatial.overall,
          "pointing_spatial_class_mean": spatial.class_mean,
          "pointing_spatial_trials": spatial.num_trials,
      }
  )
  metrics.update(located)
  return metrics


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m stt.explain.score_maps",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--maps", type=pathlib.Path, required=True, help="maps.npz")
  parser.add_argument(
      "--events",
      type=pathlib.Path,
      help="Annotations.txt (not with --vggss / --flickr_annotations)",
  )
  parser.add_argument("--boxes", type=pathlib.Path, help="boxes.jsonl (spatial scores)")
  parser.add_argument("--out", type=pathlib.Path, required=True, help="metrics.json to write")
  parser.add_argument("--tolerance_px", type=float, default=15.0, help="pointing hit radius")
  parser.add_argument("--vggss", type=pathlib.Path, help="VGG-SS metadata/vggss.json")
  parser.add_argument(
      "--vggss_test_list",
      type=pathlib.Path,
      help="VGG-SS metadata/vggss_test.csv (only its ids are read)",
  )
  parser.add_argument(
      "--annotated_frame",
      choices=tuple(vggss_format.ANNOTATED_FRAMES),
      default=vggss_format.DEFAULT_ANNOTATED_FRAME,
      help="VGG-SS: the frame the boxes annotate (default: middle)",
  )
  parser.add_argument(
      "--flickr_annotations",
      type=pathlib.Path,
      help="Flickr-SoundNet Annotations/ directory of <id>.xml",
  )
  parser.add_argument(
      "--segment", type=int, help="the segment scored (default: the annotated frame's; Flickr: 0)"
  )
  parser.add_argument("--map_covers", choices=sound_source_benchmark.MAP_COVERS, default="crop")
  parser.add_argument(
      "--gt_geometry", choices=sound_source_benchmark.GT_GEOMETRIES, default="reference"
  )
  parser.add_argument("--median_rule", choices=sound_source_benchmark.MEDIAN_RULES, default="gt")
  args = parser.parse_args(argv)
  given = [name for name in ("events", "vggss", "flickr_annotations") if getattr(args, name)]
  if len(given) != 1:
    parser.error("give one of --events, --vggss, --flickr_annotations")
  if args.boxes is not None and not args.events:
    parser.error("--boxes goes with --events; VGG-SS and Flickr-SoundNet bring their boxes")
  return args


def annotation_set_metrics(args, maps: dict) -> dict:
  """All metrics of maps against VGG-SS (--vggss) or Flickr-SoundNet (--flickr_annotations)."""
  if args.vggss:
    test_list = vggss_format.read_test_list(args.vggss_test_list) if args.vggss_test_list else None
    segment = (
        args.segment
        if args.segment is not None
        else vggss_format.annotated_segment(args.annotated_frame)
    )
    annotations = vggss_format.read(args.vggss, test_list)
    events, boxes, gt_boxes = annotation_arrays.vggss_arrays(
        maps, annotations, segment, args.map_covers
    )
    ground_truth = catalogue.spec("vggss").ground_truth
  else:
    segment = args.segment if args.segment is not None else 0
    events, boxes, gt_boxes = annotation_arrays.flickr_arrays(
        maps, args.flickr_annotations, segment
    )
    ground_truth = catalogue.spec("flickr_soundnet").ground_truth
  metrics = score(maps, events, boxes, args.tolerance_px)
  metrics.update(
      annotation_arrays.field_metrics(
          maps,
          gt_boxes,
          segment,
          ground_truth,
          gt_geometry=args.gt_geometry,
          map_covers=args.map_covers,
          median_rule=args.median_rule,
      )
  )
  return metrics


def prepare_out(path: pathlib.Path) -> None:
  """Creates the folders above --out; InputError if it cannot be written there."""
  if path.is_dir():
    raise InputError(f'--out {path} is a directory; give a file, e.g. {path / "metrics.json"}')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise InputError(
        f"--out {path}: cannot create folder {error.filename or path.parent} "
        f"({error.strerror or error})"
    ) from None


def _fail(error: Exception | str) -> int:
  print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
  return EXIT_BAD_INPUT


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    if not 0 <= args.tolerance_px < math.inf:
      raise InputError(f"--tolerance_px must be a finite number >= 0, got {args.tolerance_px}")
    maps = load_maps(args.maps)
    if args.events:
      events = event_arrays(maps["video_id"], read_events(args.events))
      boxes = None
      if args.boxes is not None:
        boxes = box_arrays(maps["video_id"], read_boxes_file(args.boxes), maps["where"].shape[1])
      metrics = score(maps, events, boxes, args.tolerance_px)
    else:  # VggssError, FlickrSoundnetError, AnnotationSetError are ValueErrors
      metrics = annotation_set_metrics(args, maps)
    prepare_out(args.out)  # after the inputs: bad input leaves no new folders behind
  except (ValueError, OSError) as error:  # InputError, AnnotationError too
    return _fail(error)
  clean = {
      key: None if isinstance(value, float) and math.isnan(value) else value
      for key, value in metrics.items()
  }
  try:
    args.out.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
  except OSError as error:
    return _fail(f"--out {args.out}: cannot write ({error.strerror or error})")
  print(json.dumps(clean, sort_keys=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())
