r"""Explains one video with a trained model: what event it shows, where and when.

  python -m stt.explain.video --workdir=W --video=clip.mp4 --out=DIR \
      [--explainer=attention] [--top_k=5] [--class_name=NAME]

Uses the best checkpoint and the config recorded in the workdir (config.json,
class_names.json). The video is decoded as the dataset builder decodes it (one-second segments,
the config's frames per segment and frame size, VGGish log-mel; a missing audio track is
silence) and cut into consecutive windows of T seconds (the model's T; the last window is
padded and masked), so any length works. Video-level class probabilities are the mean of the
windows' probabilities weighted by their valid seconds; the explanation is of the top class (or
`--class_name`) in every window. Writes into DIR:

  explanation.json   top-k classes, per-window top-k, `where` [N,h,w] and `when` [N] per second
                     (N seconds; `when` sums to 1 within each window), the crop the maps cover
  panel.png          frames with "where" and "when" over the spectrogram, for the window in
                     which the explained class is most probable
  overlay.mp4        the video with "where" and "when" drawn on it, with the original audio

Exit status 2 with a one-line message when the video, workdir or arguments are unusable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import av  # pylint: disable=g-import-not-at-top,wrong-import-position
from etils import epath  # pylint: disable=g-import-not-at-top,wrong-import-position
from flax import nnx  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from data_pipelines import media  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt import checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt import sharding  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt import state as state_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt import trained_run  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt.explain import explainers as explainer_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt.explain import overlay_video  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt.explain import panels  # pylint: disable=g-import-not-at-top,wrong-import-position


class VideoExplainError(RuntimeError):
  """The video, the workdir or the arguments cannot be used. The message says why."""


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m stt.explain.video",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--workdir", required=True, help="workdir of a trained run")
  parser.add_argument("--video", required=True, help="the video file (any format FFmpeg reads)")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--explainer", default="attention", choices=sorted(explainer_lib.EXPLAINERS))
  parser.add_argument("--top_k", type=int, default=5)
  parser.add_argument(
      "--class_name", default=None, help="explain this class instead of the most probable one"
  )
  return parser.parse_args(argv)


def load_model(workdir: epath.Path):
  """(config, class_names, model) of the best checkpoint of the run in `workdir`."""
  info = trained_run.read(workdir)
  config = info.config
  if config.model.visual_backbone == "features" or config.model.audio_backbone == "features":
    raise VideoExplainError(
        f"the model in {workdir} takes precomputed features (dataset.input="
        f"{config.dataset.input!r}); explaining a video file needs a model trained on raw input"
    )
  mesh = jax.sharding.Mesh(
      np.asarray(jax.devices()[:1]).reshape(1, 1), (sharding.DATA_AXIS, sharding.FSDP_AXIS)
  )
  config.mesh.fsdp = 1
  _, graphdef, state = state_lib.restore_best(workdir, config, len(info.class_names), mesh)
  model, _ = nnx.merge(graphdef, state)
  return config, info.class_names, model


def decode_windows(path: str, config) -> tuple[media.DecodedClip, dict, int]:
  """(clip, model inputs of W windows of T seconds, number of seconds N of the video).

  inputs: frames [W,T,F,S,S,3] uint8, log_mel [W,T,96,64] f32, segment_mask [W,T] bool.
  """
  if pathlib.Path(path).is_dir():
    raise VideoExplainError(f"{path} is a directory; --video takes one video file")
  if not pathlib.Path(path).is_file():
    raise VideoExplainError(f"{path}: no such file")
  try:
    with av.open(path) as container:
      duration = container.duration
  except Exception as error:  # any FFmpeg failure to open is the same for the user
    raise VideoExplainError(f"cannot read {path} as a video ({type(error).__name__}: {error})")
  t = config.model.num_segments
  seconds = max(1, math.ceil(duration / av.time_base)) if duration else t
  try:
    clip = media.decode_clip(
        path,
        num_segments=seconds,
        frames_per_segment=config.dataset.frames_per_segment,
        frame_size=config.dataset.frame_size,
    )
  except media.MediaError as error:
    raise VideoExplainError(str(error)) from error
  valid = int(np.flatnonzero(clip.segment_mask).max()) + 1 if clip.segment_mask.any() else 0
  if valid == 0:
    raise VideoExplainError(f"{path}: no decodable frames")
  windows = math.ceil(valid / t)
  pad = windows * t - valid

  def windowed(array):
    array = array[:valid]
    array = np.concatenate([array, np.zeros((pad,) + array.shape[1:], array.dtype)])
    return array.reshape((windows, t) + array.shape[1:])

  inputs = {
      "frames": windowed(clip.frames),
      "log_mel": windowed(clip.log_mel),
      "segment_mask": windowed(clip.segment_mask),
  }
  return clip, inputs, valid


@nnx.jit
def _probabilities(model, inputs: dict) -> jax.Array:
  """[W,C] class probabilities of each window."""
  return jax.nn.softmax(model(inputs, train=False)["logits"].astype(jnp.float32))


@nnx.jit(static_argnames=("explainer",))
def _explain(model, inputs: dict, target: jax.Array, explainer: str) -> dict:
  """The explainer's maps for class `target` [W]: where [W,T,h,w], when [W,T] (+ per modality)."""
  maps = explainer_lib.EXPLAINERS[explainer](model, inputs, target)
  result = {"where": maps["where"], "when": maps["when"]}
  if explainer == "attention":
    outputs = model(inputs, train=False)
    result["when_audio"] = outputs["explanations"]["when_audio"]
    result["when_visual"] = outputs["explanations"]["when_visual"]
  return result


def _top_k(probabilities: np.ndarray, class_names, k: int) -> list[dict]:
  order = np.argsort(-probabilities, kind="stable")[:k]
  return [
      {"class": class_names[i], "index": int(i), "probability": float(probabilities[i])}
      for i in order
  ]


def explain_video(
    model,
    config,
    class_names,
    video: str,
    out_dir: pathlib.Path,
    *,
    explainer: str = "attention",
    top_k: int = 5,
    class_name: str | None = None,
) -> dict:
  """Writes explanation.json, panel.png and overlay.mp4 into `out_dir`; returns the JSON dict."""
  clip, inputs, seconds = decode_windows(video, config)
  windows, t = inputs["segment_mask"].shape
  probabilities = np.asarray(_probabilities(model, inputs))
  valid_per_window = inputs["segment_mask"].sum(1).astype(np.float64)
  video_probabilities = (probabilities * valid_per_window[:, None]).sum(0) / valid_per_window.sum()
  if class_name is None:
    target = int(np.argmax(video_probabilities))
  elif class_name in class_names:
    target = class_names.index(class_name)
  else:
    raise VideoExplainError(f"--class_name={class_name!r} is not one of {class_names}")
  result = jax.device_get(
      _explain(model, inputs, jnp.full((windows,), target, jnp.int32), explainer)
  )
  per_second = {
      key: np.asarray(result[key]).reshape((windows * t,) + result[key].shape[2:])[:seconds]
      for key in ("where", "when", "when_audio", "when_visual")
      if key in result
  }
  crop = overlay_video.centre_crop_box(*clip.frame_size)
  explanation = {
      "video": str(video),
      "duration_s": clip.duration_s,
      "num_seconds": seconds,
      # A last part shorter than a segment (no frame at its centre) is not explained.
      "unexplained_tail_s": round(max(0.0, float(clip.duration_s) - seconds), 3),
      "has_audio": bool(clip.has_audio),
      "frame_size": list(clip.frame_size),
      "explainer": explainer,
      "segments_per_window": t,
      "top_k": _top_k(video_probabilities, class_names, top_k),
      "explained_class": class_names[target],
      "explained_probability": float(video_probabilities[target]),
      "windows": [
          {
              "start_s": w * t,
              "num_seconds": int(valid_per_window[w]),
              "top_k": _top_k(probabilities[w], class_names, top_k),
          }
          for w in range(windows)
      ],
      "where_grid": list(per_second["where"].shape[1:]),
      "where_region": {
          "box_xyxy": list(crop),
          "note": "the maps cover this centre square of "
          "the original frame (the crop the model sees)",
      },
      **{key: value.round(6).tolist() for key, value in per_second.items()},
  }
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "explanation.json").write_text(json.dumps(explanation, indent=1))

  best = int(np.argmax(probabilities[:, target]))
  window = slice(best * t, (best + 1) * t)
  optional = {
      key: np.asarray(result[key][best]) for key in ("when_audio", "when_visual") if key in result
  }
  image = panels.render_panel(
      where=np.asarray(result["where"][best]),
      when=np.asarray(result["when"][best]),
      segment_mask=inputs["segment_mask"][best],
      frames=inputs["frames"][best][:, -1],
      log_mel=inputs["log_mel"][best] if clip.has_audio else None,
      title=f"{pathlib.Path(video).name} [{window.start}s-{window.stop}s]: "
      f"{class_names[target]} (p={probabilities[best, target]:.2f}), {explainer}",
      **optional,
  )
  panels.save_png(out_dir / "panel.png", image)
  try:
    overlay_video.write_overlay(
        video,
        out_dir / "overlay.mp4",
        where=per_second["where"],
        when=per_second["when"],
        segments_per_window=t,
        banner=f"{class_names[target]}  p={video_probabilities[target]:.2f}  ({explainer})",
    )
  except (av.FFmpegError, ValueError) as error:
    raise VideoExplainError(
        f"cannot re-encode {video} ({type(error).__name__}: {error}); "
        "explanation.json and panel.png are written"
    ) from error
  return explanation


def main(argv=None) -> int:
  args = _parse_args(argv)
  try:
    if args.top_k < 1:
      raise VideoExplainError(f"--top_k must be >= 1, got {args.top_k}")
    if pathlib.Path(args.out).exists() and not pathlib.Path(args.out).is_dir():
      raise VideoExplainError(f"--out={args.out} is a file; give a directory (created if absent)")
    config, class_names, model = load_model(epath.Path(args.workdir))
    explanation = explain_video(
        model,
        config,
        class_names,
        args.video,
        pathlib.Path(args.out),
        explainer=args.explainer,
        top_k=args.top_k,
        class_name=args.class_name,
    )
  except (VideoExplainError, trained_run.RunInfoError, checkpoint.NoUsableCheckpointError) as error:
    print(f"stt.explain.video: error: {error}", file=sys.stderr)
    return 2
  top = explanation["top_k"][0]
  explained = explanation["explained_class"]
  what = f"top class {top['class']} (p={top['probability']:.3f})"
  if explained != top["class"]:
    what = f"explained {explained} (p={explanation['explained_probability']:.3f}); {what}"
  print(f"{args.video}: {what}; wrote explanation.json, panel.png, overlay.mp4 to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
