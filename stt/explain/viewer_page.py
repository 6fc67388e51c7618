"""Writes the viewer's static page: HTML, CSS and JavaScript, the data as script files, the pictures.

    <directory>/index.html, viewer.css, viewer.js   (copied from stt/explain/viewer_assets/)
    <directory>/data/index.js        window.STT_VIEWER_INDEX = {header, videos: [summary, ...]}
    <directory>/data/chunk_<k>.js    STT_VIEWER_CHUNK(k, [detail, ...]) for videos
                                     k*CHUNK_SIZE .. (k+1)*CHUNK_SIZE-1 (loaded when shown)
    <directory>/media/<row>_frames.jpg, <row>_mel.jpg   (stt/explain/viewer_images.py)

The page opens from disk (file://): browsers refuse fetch() of local files, so the data are
scripts the page adds with <script> elements, a chunk at a time, and a 5,000-video run loads only
the summaries and the pictures of the cards on screen. No build step, no server code.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent import futures
import importlib.resources
import json
import os

from etils import epath
import numpy as np

from stt.explain import viewer_images

ASSETS = ("index.html", "viewer.css", "viewer.js")
CHUNK_SIZE = 20
DEFAULT_THUMBNAIL = 96  # pixels of a segment frame on the page


def _script(variable_call: str, payload) -> str:
  # "</" cannot end the script early inside a string: JSON may write it as "<\/".
  return variable_call.format(json.dumps(payload, separators=(",", ":")).replace("</", "<\\/"))


def copy_assets(directory: epath.Path) -> None:
  """The page's fixed files, from the package's viewer_assets/."""
  assets = importlib.resources.files("stt.explain") / "viewer_assets"
  for name in ASSETS:
    (directory / name).write_text((assets / name).read_text(encoding="utf-8"))


def _write_media(directory: epath.Path, row: int, frames, log_mel, thumbnail: int) -> None:
  if frames is not None:
    (directory / f"{row}_frames.jpg").write_bytes(viewer_images.frame_strip(frames, thumbnail))
  if log_mel is not None:
    (directory / f"{row}_mel.jpg").write_bytes(viewer_images.log_mel_strip(log_mel))


def write_page(
    directory: epath.PathLike,
    header: dict,
    summaries: list[dict],
    details: list[dict],
    media: Iterable[tuple[int, np.ndarray | None, np.ndarray | None]],
    *,
    thumbnail: int = DEFAULT_THUMBNAIL,
    workers: int | None = None,
) -> epath.Path:
  """Writes the page into `directory` (created); returns the index.html path.

  header: viewer_data.page_header; summaries / details: viewer_data.build_videos; media: (row,
  frames [T,S,S,3] uint8 or None, log_mel [T,frames,mels] or None) per video, encoded as JPEG on
  `workers` threads (default: the CPU count).
  """
  if len(summaries) != len(details):
    raise ValueError(f"{len(summaries)} summaries but {len(details)} details")
  directory = epath.Path(directory)
  (directory / "data").mkdir(parents=True, exist_ok=True)
  (directory / "media").mkdir(parents=True, exist_ok=True)
  copy_assets(directory)
  (directory / "data" / "index.js").write_text(
      _script(
          "window.STT_VIEWER_INDEX = {};\n",
          {"header": {**header, "chunk_size": CHUNK_SIZE}, "videos": summaries},
      )
  )
  for start in range(0, len(details), CHUNK_SIZE):
    chunk = start // CHUNK_SIZE
    (directory / "data" / f"chunk_{chunk}.js").write_text(
        _script(f"STT_VIEWER_CHUNK({chunk}, {{}});\n", details[start : start + CHUNK_SIZE])
    )
  workers = workers or os.cpu_count() or 1
  with futures.ThreadPoolExecutor(max_workers=workers) as pool:
    pending = []
    for row, frames, log_mel in media:  # at most 2 x workers videos' pictures in memory
      pending.append(
          pool.submit(_write_media, directory / "media", row, frames, log_mel, thumbnail)
      )
      if len(pending) >= 2 * workers:
        pending.pop(0).result()
    for job in pending:
      job.result()
  return directory / "index.html"
