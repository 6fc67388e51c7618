r"""The viewer's size and build time at AVE's test-split size: 402 videos x 6 explainers.

  python benchmarks/viewer_build.py                       # 402 videos, 6 explainers, 2 threads
  python benchmarks/viewer_build.py --videos=5158 --explainers=6   # VGG-SS's size

Times what `python -m stt.explain.view` does after the model's inference pass: the page data
of every video (stt/explain/viewer_data.build_videos: the pointing game's points and hits, the
quantised maps, the curves) and the page itself (viewer_page.write_page: the data scripts and a
JPEG strip of the frames and of the log-mel per video), on inputs of AVE's shapes: T=10 segments
of one 224 x 224 frame (the model's crop) from 320 x 240 frames, a 7 x 7 "where" grid, log-mel
[10,96,64], one box per segment, per-video perturbation curves. The pictures are random noise,
the hardest case for JPEG, so the size is an upper bound. The inference pass is the model's
evaluation cost (benchmarks/train_throughput.py), not the viewer's. Prints one JSON line: wall
and CPU seconds (all threads; on a shared machine the CPU time is the figure to read) and the
1-minute load average while it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

from stt.explain import perturbation
from stt.explain import viewer_data
from stt.explain import viewer_page

T, GRID, CLASSES, FRAME, ORIGINAL = 10, (7, 7), 28, 224, (320, 240)
EXPLAINERS = ("attention", "rollout", "gradient", "gradcam", "grad_x_input", "random")


def inputs(videos: int, explainers: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  annotations = {
      "label": rng.integers(0, CLASSES, videos),
      "segment_mask": np.ones((videos, T), bool),
      "event_start": rng.integers(0, 5, videos),
      "event_end": rng.integers(5, T + 1, videos),
      "boxes": np.tile(np.array([100.0, 60, 220, 200], np.float32), (videos, T, 1, 1)),
      "box_mask": np.ones((videos, T, 1), bool),
      "frame_size": np.tile(np.array(ORIGINAL), (videos, 1)),
  }
  names = [
      EXPLAINERS[i % len(EXPLAINERS)] + ("" if i < len(EXPLAINERS) else f"_{i}")
      for i in range(explainers)
  ]
  maps = {
      name: {
          "where": rng.random((videos, T, *GRID), np.float32),
          "when": rng.random((videos, T), np.float32),
      }
      for name in names
  }
  curves = {
      name: {
          test: rng.random((videos, len(perturbation.FRACTIONS)), np.float32)
          for test in viewer_data.CURVE_TESTS
      }
      for name in names
  }
  probabilities = rng.dirichlet(np.ones(CLASSES), videos)
  return dict(annotations=annotations, maps=maps, curves=curves, probabilities=probabilities)


def media(videos: int, seed: int = 1):
  rng = np.random.default_rng(seed)
  for row in range(videos):
    frames = rng.integers(0, 256, (T, FRAME, FRAME, 3), dtype=np.uint8)
    log_mel = rng.standard_normal((T, 96, 64)).astype(np.float32)
    yield row, frames, log_mel


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--videos", type=int, default=402)
  parser.add_argument("--explainers", type=int, default=6)
  parser.add_argument("--workers", type=int, default=2, help="JPEG encoding threads")
  args = parser.parse_args(argv)
  data = inputs(args.videos, args.explainers)
  video_ids = np.array([f"video{i:05d}" for i in range(args.videos)])
  with tempfile.TemporaryDirectory() as directory:
    start, cpu_start = time.perf_counter(), time.process_time()
    summaries, details = viewer_data.build_videos(
        video_ids=video_ids,
        annotations=data["annotations"],
        probabilities=data["probabilities"],
        maps=data["maps"],
        class_names=[f"class{c}" for c in range(CLASSES)],
        tolerance_px=15.0,
        video_curves=data["curves"],
    )
    data_s = time.perf_counter() - start
    header = viewer_data.page_header(
        title="benchmark",
        class_names=[f"class{c}" for c in range(CLASSES)],
        explainers=list(data["maps"]),
        num_segments=T,
        has_frames=True,
    )
    index = viewer_page.write_page(
        pathlib.Path(directory) / "viewer",
        header,
        summaries,
        details,
        media(args.videos),
        workers=args.workers,
    )
    total_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start  # all threads of this process
    files = [p for p in pathlib.Path(index).parent.rglob("*") if p.is_file()]
    size = {
        part: sum(p.stat().st_size for p in files if part in p.parts) / 1e6
        for part in ("data", "media")
    }
  result = {
      "videos": args.videos,
      "explainers": args.explainers,
      "workers": args.workers,
      "page_data_s": round(data_s, 1),
      "build_s": round(total_s, 1),
      "build_cpu_s": round(cpu_s, 1),
      "load_average": round(os.getloadavg()[0], 1),
      "data_mb": round(size["data"], 1),
      "media_mb": round(size["media"], 1),
      "total_mb": round(sum(size.values()), 1),
      "files": len(files),
  }
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
