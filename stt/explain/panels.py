"""Explanation panels: the frames with the "where" heatmap, and the "when" bars over the audio.

One panel shows one video (T segments): a row of T frames (the last frame of each segment, the
S×S centre crop the model saw) each overlaid with its `where` map, and below it the log-mel
spectrogram of all T seconds with the `when` weights as bars (joint) and steps (per modality).
Feature-input models have no frames or spectrogram; their panel shows the maps alone.

`render_panel` returns an RGB image, so the same picture goes to PNG files (`save_png`) and to
TensorBoard (`clu` image summaries).
"""

from __future__ import annotations

from etils import epath
from matplotlib import figure as figure_lib
from matplotlib.backends import backend_agg
import numpy as np

_INVALID_GREY = 0.85


def render_panel(
    *,
    where: np.ndarray,
    when: np.ndarray,
    segment_mask: np.ndarray,
    frames: np.ndarray | None = None,
    log_mel: np.ndarray | None = None,
    when_audio: np.ndarray | None = None,
    when_visual: np.ndarray | None = None,
    title: str = "",
    dpi: int = 80,
) -> np.ndarray:
  """One video's explanation as an RGB image [H,W,3] uint8.

  Args:
    where: [T,h,w] spatial map per segment (any non-negative scale).
    when: [T] temporal weights (the explainer's joint map).
    segment_mask: [T] bool; invalid segments are drawn grey.
    frames: [T,S,S,3] uint8 frame per segment, or None (feature input).
    log_mel: [T,96,64] log-mel per segment, or None.
    when_audio, when_visual: [T] per-modality temporal weights, or None.
    title: text above the panel (e.g. label and prediction).
  """
  where = np.asarray(where, np.float32)
  segment_mask = np.asarray(segment_mask, bool)
  t = where.shape[0]
  figure = figure_lib.Figure(figsize=(max(1.3 * t, 6.0), 3.6), dpi=dpi)
  backend_agg.FigureCanvasAgg(figure)
  grid = figure.add_gridspec(2, t, height_ratios=(1.0, 1.1), hspace=0.35, wspace=0.05)
  peak = float(where.max()) if where.size and where.max() > 0 else 1.0
  for segment in range(t):
    axis = figure.add_subplot(grid[0, segment])
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(f"{segment}s", fontsize=7, pad=2)
    if not segment_mask[segment]:
      axis.imshow(np.full((2, 2), _INVALID_GREY), cmap="gray", vmin=0, vmax=1)
      continue
    if frames is not None:
      size = frames.shape[1]
      axis.imshow(frames[segment], extent=(0, size, size, 0))
      extent = (0, size, size, 0)
    else:
      extent = (0, where.shape[2], where.shape[1], 0)
    axis.imshow(
        where[segment],
        cmap="jet",
        alpha=0.5 if frames is not None else 1.0,
        vmin=0.0,
        vmax=peak,
        interpolation="bilinear",
        extent=extent,
    )

  axis = figure.add_subplot(grid[1, :])
  if log_mel is not None:
    spectrogram = np.concatenate(list(np.asarray(log_mel, np.float32)), axis=0).T  # [64, T*96]
    axis.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma", extent=(0, t, 0, 1))
    axis.set_ylabel("mel", fontsize=7)
  axis.set_yticks([])
  when_axis = axis.twinx() if log_mel is not None else axis
  centres = np.arange(t) + 0.5
  when = np.where(segment_mask, np.asarray(when, np.float32), 0.0)
  top = max(float(when.max()), 1e-6)
  for extra in (when_audio, when_visual):
    if extra is not None:
      top = max(top, float(np.max(extra)))
  when_axis.bar(centres, when, width=0.8, color="cyan", alpha=0.55, label="when")
  for values, colour, label in ((when_audio, "white", "audio"), (when_visual, "lime", "visual")):
    if values is not None:
      when_axis.step(
          np.arange(t + 1),
          np.append(values, values[-1]),
          where="post",
          color=colour,
          linewidth=1.2,
          label=label,
      )
  for segment in np.flatnonzero(~segment_mask):
    when_axis.axvspan(segment, segment + 1, color="grey", alpha=0.6)
  when_axis.set_ylim(0, top * 1.15)
  when_axis.set_xlim(0, t)
  when_axis.tick_params(labelsize=6)
  axis.set_xticks(np.arange(t + 1))
  axis.tick_params(labelsize=6)
  axis.set_xlabel("seconds", fontsize=7)
  when_axis.legend(fontsize=6, loc="upper right", framealpha=0.5)
  if title:
    figure.suptitle(title, fontsize=9)
  figure.canvas.draw()
  return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def save_png(path: epath.Path, image: np.ndarray) -> None:
  """Writes an RGB image [H,W,3] uint8 as PNG (a local path or gs://)."""
  figure = figure_lib.Figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
  backend_agg.FigureCanvasAgg(figure)
  axis = figure.add_axes((0, 0, 1, 1))
  axis.imshow(image)
  axis.axis("off")
  with epath.Path(path).open("wb") as file:
    figure.savefig(file, format="png", dpi=100)


def record_panel_inputs(record: dict) -> dict:
  """The frames [T,S,S,3] (last frame of each segment) and log-mel [T,96,64] of a dataset record.

  Feature-input records have neither; their entries are None.
  """
  frames = record.get("frames")
  return {
      "frames": None if frames is None else np.asarray(frames)[:, -1],
      "log_mel": None if record.get("log_mel") is None else np.asarray(record["log_mel"]),
  }


def panels_for_examples(outputs: dict, source, positions, class_names) -> dict[str, np.ndarray]:
  """{video_id: panel} for the examples at `positions` of the split.

  outputs: per-example arrays in split order with 'where' [N,T,h,w], 'when' [N,T],
    'segment_mask', 'label' (and optionally 'prediction', 'when_audio', 'when_visual').
  source: the split's random-access source (records hold frames / log_mel and video_id).
  """
  panels = {}
  for position in positions:
    record = source[int(position)]
    video_id = record["video_id"]
    video_id = video_id.decode() if isinstance(video_id, bytes) else str(video_id)
    label = class_names[int(outputs["label"][position])]
    title = f"{video_id}: {label}"
    if "prediction" in outputs:
      title += f" (predicted {class_names[int(outputs['prediction'][position])]})"
    optional = {
        key: outputs[key][position] for key in ("when_audio", "when_visual") if key in outputs
    }
    panels[video_id] = render_panel(
        where=outputs["where"][position],
        when=outputs["when"][position],
        segment_mask=outputs["segment_mask"][position],
        title=title,
        **record_panel_inputs(record),
        **optional,
    )
  return panels
