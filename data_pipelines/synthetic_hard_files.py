"""One level of the harder synthetic set written as an AVE-format directory of real MP4s.

The layout is synthetic_files.py's (AVE/<video_id>.mp4, Annotations.txt, the split files,
classes.txt, spec.json, _COMPLETE), with:

* boxes.jsonl: one row per event segment of an ON-SCREEN video, the SOURCE's box in that
  segment only (a moving source's box moves; off-screen videos have no row; look-alikes are
  not boxed), so the AVE builder gives every model the same boxes as the default set.
* scenes.jsonl: one row per video, `HardTruth` as a dict plus `source_boxes` (per segment),
  `lookalike_boxes` (per look-alike, per segment) and the label's `event_class_name`.
  Read it with `read_truth`.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import pathlib
import shutil

from data_pipelines import synthetic_files
from data_pipelines import synthetic_hard as hard
from data_pipelines import synthetic_hard_render as render
from data_pipelines.synthetic_hard import HardSpec
from data_pipelines.synthetic_hard import HardTruth


def _render_and_write(job: tuple[HardSpec, str, int]) -> int:
  spec, video_dir, index = job
  final_path = pathlib.Path(video_dir) / f"{hard.video_id(spec.level, index)}.mp4"
  if not final_path.exists():
    frames, waveform, _ = render.render_video(spec, index)
    tmp_path = final_path.with_suffix(".tmp.mp4")
    synthetic_files.write_mp4(tmp_path, frames, waveform, spec.fps, spec.sample_rate)
    os.replace(tmp_path, final_path)
  return index


def truth_row(spec: HardSpec, truth: HardTruth) -> dict:
  """The scenes.jsonl row of one video."""
  return {
      **dataclasses.asdict(truth),
      "event_class_name": spec.class_names[truth.event_class],
      "source_boxes": [list(b) for b in truth.source_boxes],
      "lookalike_boxes": [
          [list(b) for b in truth.object_boxes[i]] for i in truth.lookalike_indices
      ],
  }


def _write_text_files(root: pathlib.Path, spec: HardSpec, truths: list[HardTruth]):
  rows = [
      f"{spec.class_names[t.event_class]}&{t.video_id}&good&{t.event_start}&{t.event_end}\n"
      for t in truths
  ]
  (root / "Annotations.txt").write_text(synthetic_files.ANNOTATION_HEADER + "\n" + "".join(rows))
  for split, filename in synthetic_files.SPLIT_FILES.items():
    (root / filename).write_text("".join(r for r, t in zip(rows, truths) if t.split == split))
  (root / "classes.txt").write_text("".join(n + "\n" for n in spec.class_names))
  size = [spec.frame_width, spec.frame_height]
  (root / "boxes.jsonl").write_text(
      "".join(
          json.dumps(
              {
                  "video_id": t.video_id,
                  "segment": s,
                  "frame_size": size,
                  "boxes": [list(t.source_boxes[s])],
              }
          )
          + "\n"
          for t in truths
          if t.source_on_screen
          for s in t.event_segments
      )
  )
  (root / "scenes.jsonl").write_text("".join(json.dumps(truth_row(spec, t)) + "\n" for t in truths))


def read_truth(directory) -> dict[str, dict]:
  """{video_id: scenes.jsonl row} of a generated level directory."""
  lines = (pathlib.Path(directory) / "scenes.jsonl").read_text().splitlines()
  return {row["video_id"]: row for row in map(json.loads, lines)}


def generate(out_dir, spec: HardSpec, *, num_workers: int = 1) -> pathlib.Path:
  """Writes the level's set to out_dir (kept when complete with the same spec); see
  synthetic_files.generate for the locking and resuming."""
  out_dir = pathlib.Path(out_dir)
  out_dir.parent.mkdir(parents=True, exist_ok=True)
  with synthetic_files.exclusive(out_dir.with_name(out_dir.name + ".lock")):
    return _generate_unlocked(out_dir, spec, num_workers=num_workers)


def _generate_unlocked(out_dir: pathlib.Path, spec: HardSpec, *, num_workers: int):
  spec_json = json.dumps(dataclasses.asdict(spec), indent=1, sort_keys=True)
  complete = synthetic_files.COMPLETE_MARKER
  if (out_dir / complete).exists():
    if (out_dir / "spec.json").read_text() != spec_json:
      raise FileExistsError(f"{out_dir} holds a dataset of another spec")
    return out_dir
  if out_dir.exists() and any(out_dir.iterdir()):
    raise FileExistsError(f"{out_dir} is not empty and has no {complete} marker")
  work_dir = out_dir.with_name(out_dir.name + ".partial")
  if work_dir.exists() and (
      not (work_dir / "spec.json").exists() or (work_dir / "spec.json").read_text() != spec_json
  ):
    shutil.rmtree(work_dir)
  (work_dir / "AVE").mkdir(parents=True, exist_ok=True)
  (work_dir / "spec.json").write_text(spec_json)
  jobs = [(spec, str(work_dir / "AVE"), i) for i in range(spec.num_videos)]
  if num_workers > 1:
    with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
      for _ in pool.imap_unordered(_render_and_write, jobs, chunksize=8):
        pass
  else:
    for job in jobs:
      _render_and_write(job)
  _write_text_files(work_dir, spec, [hard.sample_scene(spec, i) for i in range(spec.num_videos)])
  (work_dir / complete).write_text("")
  if out_dir.exists():
    out_dir.rmdir()  # empty, checked above
  os.replace(work_dir, out_dir)
  return out_dir
