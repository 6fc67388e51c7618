"""Scores explanation maps made by any model against AVE-format annotations.

    python -m stt.explain.evaluate --maps maps.npz --events Annotations.txt \\
        [--boxes boxes.jsonl] --out metrics.json [--tolerance_px 15]

maps.npz holds `video_id` [V] str, `where` [V,T,h,w], `when` [V,T], and optionally
`segment_mask` [V,T] bool (default all valid), `when_audio` / `when_visual` [V,T].
The events file has `Category&VideoID&Quality&StartTime&EndTime` rows (the class index is the
order of first appearance, as in training). A video id that occurs n times in the maps is paired
with its first n rows, in file order (AVE has a few videos with several rows). Boxes come from a
boxes.jsonl as read by `ave_format.read_boxes` (segment index < T).

metrics.json: pointing_spatial, pointing_spatial_class_mean, pointing_spatial_trials,
pointing_temporal, pointing_temporal_class_mean, pointing_temporal_trials (and _audio / _visual
variants when those maps are given), relevance_mass, ciou, ciou_auc, ciou_mean,
localization_trials, num_videos. Scores without trials (no boxes) are null.
Bad input (unreadable files, unknown video ids, shape mismatches) prints one line and exits 2.
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

import numpy as np

from data_pipelines import ave_format
from stt.explain import localization
from stt.explain import pointing

EXIT_BAD_INPUT = 2


class InputError(ValueError):
  """The maps, events or boxes do not fit together."""


def load_maps(path: pathlib.Path) -> dict:
  """maps.npz as a dict of arrays, with shapes checked against each other."""
  with np.load(path, allow_pickle=False) as data:
    maps = {key: data[key] for key in data.files}
  missing = [key for key in ('video_id', 'where', 'when') if key not in maps]
  if missing:
    raise InputError(f'{path}: missing arrays {missing} (need video_id, where, when)')
  where, when = maps['where'], maps['when']
  num_videos = len(maps['video_id'])
  if where.ndim != 4 or where.shape[0] != num_videos:
    raise InputError(f'{path}: where has shape {where.shape}, expected [V={num_videos},T,h,w]')
  expected = where.shape[:2]
  for key in ('when', 'segment_mask', 'when_audio', 'when_visual'):
    if key in maps and maps[key].shape != expected:
      raise InputError(f'{path}: {key} has shape {maps[key].shape}, expected [V,T]={expected}')
  maps['video_id'] = np.asarray([str(v) for v in maps['video_id']])
  if 'segment_mask' not in maps:
    maps['segment_mask'] = np.ones(expected, bool)
  maps['segment_mask'] = maps['segment_mask'].astype(bool)
  return maps


def event_arrays(video_ids: np.ndarray, rows: list) -> dict:
  """labels, event_start, event_end [V] for each map, pairing repeated ids with rows in order."""
  class_index = {name: i for i, name in enumerate(ave_format.class_names_in_order(rows))}
  rows_by_video = collections.defaultdict(list)
  for row in rows:
    rows_by_video[row.video_id].append(row)
  seen = collections.Counter()
  labels, starts, ends = [], [], []
  for video_id in video_ids:
    candidates = rows_by_video.get(video_id, [])
    if seen[video_id] >= len(candidates):
      raise InputError(f'video id {video_id!r} (occurrence {seen[video_id] + 1}) is not in the '
                       'events file')
    row = candidates[seen[video_id]]
    seen[video_id] += 1
    labels.append(class_index[row.category])
    starts.append(row.start)
    ends.append(row.end)
  return {'labels': np.asarray(labels), 'event_start': np.asarray(starts),
          'event_end': np.asarray(ends)}


def read_boxes_file(path: pathlib.Path) -> dict:
  """`ave_format.read_boxes` for a boxes file of any name."""
  if path.name == 'boxes.jsonl':
    return ave_format.read_boxes(path.parent)
  if not path.exists():
    raise FileNotFoundError(f'no such file: {path}')
  with tempfile.TemporaryDirectory() as directory:
    (pathlib.Path(directory) / 'boxes.jsonl').symlink_to(path.resolve())
    return ave_format.read_boxes(pathlib.Path(directory))


def box_arrays(video_ids: np.ndarray, boxes_by_video: dict, num_segments: int) -> dict:
  """boxes [V,T,K,4], box_mask [V,T,K], frame_size [V,2] from read_boxes' dict."""
  num_boxes = max([len(s.boxes) for v in boxes_by_video.values() for s in v.values()] + [1])
  boxes = np.zeros((len(video_ids), num_segments, num_boxes, 4), np.float32)
  box_mask = np.zeros((len(video_ids), num_segments, num_boxes), bool)
  frame_size = np.ones((len(video_ids), 2), np.int32)
  for index, video_id in enumerate(video_ids):
    for segment, record in boxes_by_video.get(video_id, {}).items():
      if not 0 <= segment < num_segments:
        raise InputError(f'boxes of {video_id!r} segment {segment}: maps have T={num_segments}')
      frame_size[index] = record.frame_size
      boxes[index, segment, :len(record.boxes)] = record.boxes
      box_mask[index, segment, :len(record.boxes)] = True
  return {'boxes': boxes, 'box_mask': box_mask, 'frame_size': frame_size}


def score(maps: dict, events: dict, boxes: dict | None, tolerance_px: float = 15.0) -> dict:
  """All metrics as a flat dict (NaN where there is no trial)."""
  metrics = {'num_videos': int(len(maps['video_id']))}
  for key, suffix in (('when', ''), ('when_audio', '_audio'), ('when_visual', '_visual')):
    if key in maps:
      temporal = pointing.temporal_pointing(maps[key], maps['segment_mask'], events['event_start'],
                                            events['event_end'], events['labels'])
      metrics[f'pointing_temporal{suffix}'] = temporal.overall
      metrics[f'pointing_temporal{suffix}_class_mean'] = temporal.class_mean
      metrics[f'pointing_temporal{suffix}_trials'] = temporal.num_trials
  nan = float('nan')
  spatial = pointing.PointingResult(nan, nan, 0)
  located = localization.LocalizationResult(nan, nan, nan, nan, 0)
  if boxes is not None:
    spatial = pointing.spatial_pointing(maps['where'], boxes['boxes'], boxes['box_mask'],
                                        boxes['frame_size'], events['labels'], tolerance_px)
    located = localization.localization_scores(maps['where'], boxes['boxes'], boxes['box_mask'],
                                               boxes['frame_size'])
  metrics.update({
      'pointing_spatial': spatial.overall,
      'pointing_spatial_class_mean': spatial.class_mean,
      'pointing_spatial_trials': spatial.num_trials,
      'relevance_mass': located.relevance_mass,
      'ciou': located.ciou,
      'ciou_auc': located.ciou_auc,
      'ciou_mean': located.ciou_mean,
      'localization_trials': located.num_trials,
  })
  return metrics


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m stt.explain.evaluate', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--maps', type=pathlib.Path, required=True, help='maps.npz')
  parser.add_argument('--events', type=pathlib.Path, required=True, help='Annotations.txt')
  parser.add_argument('--boxes', type=pathlib.Path, help='boxes.jsonl (spatial scores)')
  parser.add_argument('--out', type=pathlib.Path, required=True, help='metrics.json to write')
  parser.add_argument('--tolerance_px', type=float, default=15.0, help='pointing hit radius')
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    maps = load_maps(args.maps)
    events = event_arrays(maps['video_id'], ave_format.parse_annotation_lines(args.events))
    boxes = None
    if args.boxes is not None:
      boxes = box_arrays(maps['video_id'], read_boxes_file(args.boxes), maps['where'].shape[1])
  except (ValueError, OSError, zipfile.BadZipFile) as error:  # InputError, AnnotationError too
    print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
    return EXIT_BAD_INPUT
  metrics = score(maps, events, boxes, args.tolerance_px)
  clean = {key: None if isinstance(value, float) and math.isnan(value) else value
           for key, value in metrics.items()}
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(clean, indent=2, sort_keys=True) + '\n')
  print(json.dumps(clean, sort_keys=True))
  return 0


if __name__ == '__main__':
  sys.exit(main())
