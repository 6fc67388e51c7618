"""Small real video clips and a manifest of them, for the manifest / Beam / converter tests.

Each clip is a solid colour at 64x48 px, 4 fps, with a 440 Hz tone (AAC mono, 16 kHz).
"""

import pathlib

import av
import numpy as np

from data_pipelines import synthetic_files

WIDTH, HEIGHT, FPS, SAMPLE_RATE = 64, 48, 4, 16000
NUM_SEGMENTS = 4
FRAME_SIZE = 32


def write_clip(path: pathlib.Path, seconds: int, colour=(200, 40, 40), container: str = "mp4"):
  """A `seconds`-long clip at `path`; container 'mp4' (H.264 + AAC) or 'matroska'."""
  path.parent.mkdir(parents=True, exist_ok=True)
  frames = np.broadcast_to(np.asarray(colour, np.uint8), (seconds * FPS, HEIGHT, WIDTH, 3)).copy()
  t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
  waveform = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
  if container == "mp4":
    synthetic_files.write_mp4(path, frames, waveform, FPS, SAMPLE_RATE)
    return path
  with av.open(str(path), "w", format=container) as output:
    video = output.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "threads": "1"})
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    for i, rgb in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
      frame.pts = i
      output.mux(video.encode(frame))
    output.mux(video.encode())
  return path


# (manifest row, what the build must make of it). Clips: dog_* red, cat_* green; 3 or 4 s long.
# Expected: (split, label name, event_start, event_end, valid segments) or a failure reason part.
def write_manifest_dir(root: pathlib.Path) -> pathlib.Path:
  """A manifest directory: 6 good rows, 1 undecodable file, 1 missing file, 3 refused rows, and
  one row without split (its split is default_split of its path)."""
  clips = root / "clips"
  write_clip(clips / "dog_0.mp4", 4, (220, 30, 30))
  write_clip(clips / "dog_1.mp4", 3, (200, 40, 40))
  write_clip(clips / "dog_2.mp4", 4, (180, 20, 20))
  write_clip(clips / "cat_0.mp4", 3, (30, 220, 30))
  write_clip(clips / "cat_1.mp4", 4, (40, 200, 40))
  write_clip(clips / "cat_2.mp4", 3, (20, 180, 20))
  (clips / "broken.mp4").write_text("this is not a video\n")
  lines = [
      "path,label,start,end,split",
      "clips/dog_0.mp4,dog,1,3,train",  # line 2: event segments 1, 2
      "clips/dog_1.mp4,dog,,,train",  # line 3: whole clip, 3 s -> segments 0..2
      "clips/cat_0.mp4,cat,0.5,2.2,val",  # line 4: floor/ceil -> segments 0..2
      "clips/cat_1.mp4,cat,2,,test",  # line 5: from 2 s to the end -> 2, 3
      f"{clips / 'dog_2.mp4'},dog,,,test",  # line 6: absolute path
      "clips/broken.mp4,cat,,,train",  # line 7: undecodable
      "clips/missing.mp4,dog,,,val",  # line 8: file not found
      "clips/dog_0.mp4,dog,3,1,train",  # line 9: refused, end before start
      "clips/dog_0.mp4,dog,,,holdout",  # line 10: refused, unknown split
      "clips/dog_0.mp4,dog",  # line 11: refused, 2 fields
      "",
      "clips/cat_2.mp4,cat,,,",  # line 13: default split
  ]
  (root / "manifest.csv").write_text("\n".join(lines) + "\n")
  return root / "manifest.csv"
