"""The synthetic set written as an AVE-format directory of real MP4s (data_pipelines/synthetic.py
says what each video holds).

Output (in `out_dir`): AVE/<video_id>.mp4 (H.264 yuv420p + AAC mono), Annotations.txt
(header + `ClassName&video_id&good&start&end`, end exclusive), trainSet.txt / valSet.txt /
testSet.txt (same rows, no header), boxes.jsonl (one row per event segment), classes.txt,
scenes.jsonl (full per-video truth, distractors included), spec.json and, last, _COMPLETE.
Decoded AAC audio carries up to 1024 padding samples at the end: truncate to
num_segments * sample_rate. Videos are rendered into `<out_dir>.partial/` (re-running
resumes there) and the directory is renamed to `out_dir` once complete.

Usage: python -m data_pipelines.synthetic_files --out_dir=/tmp/syn [--num_train=600 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import multiprocessing
import os
import pathlib
import shutil
import time

import av
import numpy as np

from data_pipelines import synthetic
from data_pipelines.synthetic import SyntheticSpec
from data_pipelines.synthetic import VideoTruth

ANNOTATION_HEADER = "Category&VideoID&Quality&StartTime&EndTime"
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
COMPLETE_MARKER = "_COMPLETE"
X264_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1"}
AAC_BIT_RATE = 64000
AAC_OPTIONS = {"aac_coder": "fast"}  # ~20 % faster than the default coder, no worse here


def write_mp4(path, frames: np.ndarray, waveform: np.ndarray, fps: int, sample_rate: int):
  """Encodes frames uint8 [T, H, W, 3] (H.264, yuv420p) and waveform float32 [S] (AAC mono)."""
  with av.open(str(path), "w", format="mp4") as container:
    video = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
    video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    audio = container.add_stream("aac", rate=sample_rate, layout="mono", options=AAC_OPTIONS)
    audio.bit_rate = AAC_BIT_RATE
    for i, rgb in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
      frame.pts = i
      container.mux(video.encode(frame))
    container.mux(video.encode())
    samples = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(waveform[None, :], np.float32), format="fltp", layout="mono"
    )
    samples.sample_rate, samples.pts = sample_rate, 0
    container.mux(audio.encode(samples))
    container.mux(audio.encode())


def _render_and_write(job: tuple[SyntheticSpec, str, int]) -> int:
  spec, video_dir, index = job
  final_path = pathlib.Path(video_dir) / f"{synthetic.video_id(index)}.mp4"
  if not final_path.exists():
    frames, waveform, _ = synthetic.render_video(spec, index)
    tmp_path = final_path.with_suffix(".tmp.mp4")
    write_mp4(tmp_path, frames, waveform, spec.fps, spec.sample_rate)
    os.replace(tmp_path, final_path)
  return index


def _annotation_row(spec: SyntheticSpec, truth: VideoTruth) -> str:
  name = spec.class_names[truth.event_class]
  return f"{name}&{truth.video_id}&good&{truth.event_start}&{truth.event_end}\n"


def _write_text_files(root: pathlib.Path, spec: SyntheticSpec, truths: list[VideoTruth]):
  rows = [_annotation_row(spec, t) for t in truths]
  (root / "Annotations.txt").write_text(ANNOTATION_HEADER + "\n" + "".join(rows))
  for split, filename in SPLIT_FILES.items():
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
                  "boxes": [list(t.event_box)],
              }
          )
          + "\n"
          for t in truths
          for s in t.event_segments
      )
  )
  (root / "scenes.jsonl").write_text(
      "".join(json.dumps(dataclasses.asdict(t)) + "\n" for t in truths)
  )


def generate(
    out_dir, spec: SyntheticSpec = SyntheticSpec(), *, num_workers: int = 1, verbose: bool = False
) -> pathlib.Path:
  """Writes the dataset to out_dir (see module docstring); returns out_dir.

  A complete out_dir made with the same spec is returned as is; a leftover
  `<out_dir>.partial` of the same spec is resumed. Processes that generate the same out_dir at
  once (parallel runs of a suite) take turns on `<out_dir>.lock`: the first generates, the
  others wait and then return its complete out_dir.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.parent.mkdir(parents=True, exist_ok=True)
  with exclusive(out_dir.with_name(out_dir.name + ".lock")):
    return _generate_unlocked(out_dir, spec, num_workers=num_workers, verbose=verbose)


@contextlib.contextmanager
def exclusive(lock_path: pathlib.Path):
  """Holds an exclusive advisory lock (flock) on lock_path; blocks while another holds it."""
  with open(lock_path, "a") as lock_file:
    fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock_file, fcntl.LOCK_UN)


def _generate_unlocked(
    out_dir: pathlib.Path, spec: SyntheticSpec, *, num_workers: int, verbose: bool
) -> pathlib.Path:
  spec_json = json.dumps(dataclasses.asdict(spec), indent=1, sort_keys=True)
  if (out_dir / COMPLETE_MARKER).exists():
    if (out_dir / "spec.json").read_text() != spec_json:
      raise FileExistsError(f"{out_dir} holds a dataset of another spec")
    return out_dir
  if out_dir.exists() and any(out_dir.iterdir()):
    raise FileExistsError(f"{out_dir} is not empty and has no {COMPLETE_MARKER} marker")
  work_dir = out_dir.with_name(out_dir.name + ".partial")
  if work_dir.exists() and (
      not (work_dir / "spec.json").exists() or (work_dir / "spec.json").read_text() != spec_json
  ):
    shutil.rmtree(work_dir)
  (work_dir / "AVE").mkdir(parents=True, exist_ok=True)
  (work_dir / "spec.json").write_text(spec_json)

  started = time.perf_counter()
  jobs = [(spec, str(work_dir / "AVE"), i) for i in range(spec.num_videos)]
  if num_workers > 1:
    with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
      for _ in pool.imap_unordered(_render_and_write, jobs, chunksize=8):
        pass
  else:
    for job in jobs:
      _render_and_write(job)
  elapsed = time.perf_counter() - started
  if verbose:
    print(
        f"wrote {spec.num_videos} videos in {elapsed:.1f} s "
        f"({elapsed / spec.num_videos:.3f} s/video, {num_workers} workers)"
    )

  _write_text_files(
      work_dir, spec, [synthetic.sample_scene(spec, i) for i in range(spec.num_videos)]
  )
  (work_dir / COMPLETE_MARKER).write_text("")
  if out_dir.exists():
    out_dir.rmdir()  # empty, checked above
  os.replace(work_dir, out_dir)
  return out_dir


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1)
  for field in dataclasses.fields(SyntheticSpec):
    parser.add_argument(f"--{field.name}", type=int, default=field.default)
  args = parser.parse_args(argv)
  fields = dataclasses.fields(SyntheticSpec)
  spec = SyntheticSpec(**{f.name: getattr(args, f.name) for f in fields})
  print(generate(args.out_dir, spec, num_workers=args.num_workers, verbose=True))


if __name__ == "__main__":
  main()
