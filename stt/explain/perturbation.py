"""Perturbation tests (DESIGN §5, after Chefer et al. 2021): remove what an explanation calls
relevant and watch top-1 accuracy and the predicted class's probability fall.

For each fraction p (default 0, 0.1, ..., 0.9), starting again from the clean input:
- spatial test: in every frame remove k = round(p * N) of the N = h*w cells;
- temporal test: remove k = round(p * T_valid) of the video's valid segments, in the audio, the
  visual or both modalities (padded segments are never removed and do not count).
round() is round-half-up, floor(p * n + 0.5), with 1e-4 of slack for float error in p * n.
Order 'positive' removes the most relevant first, 'negative' the least relevant first; ties keep
index order (stable sort). What "remove" means:
- mode 'feature': set the backbone outputs to a value (visual_value for a cell's Cv vector or a
  segment's whole map, audio_value for a segment's Ca vector; zeros by default, a dataset
  mean [Cv] / [Ca] is the usual alternative);
- mode 'pixel': set the cell's block of every frame of the segment (pixel (r, c) belongs to cell
  (r*h // H, c*w // W)) to pixel_value (uint8 RGB, default the ImageNet mean, i.e. 0 after
  normalisation); temporally, all frames of the segment and/or its log-mel (to log_mel_value,
  default 0). The backbones then run on the perturbed inputs.
Baseline 'road' (feature mode only) instead imputes the removed cells / segments from their
neighbours by ROAD's noisy linear imputation (stt/explain/road_imputation.py; Rong et al. 2022,
MoRF = 'positive', LeRF = 'negative'); baseline 'zero' is the removal value above.
Recorded per fraction and video: correct = (argmax == label), probability = softmax probability
of the class predicted on the clean input. AUC = trapz(accuracy, p) * 100 (at most 90).

`perturbation_curves` is one jitted computation vmapped over the fractions;
`perturbation_reference` is a plain per-video, per-fraction loop used to check it.
"""

from __future__ import annotations

import math

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from stt.explain import road_imputation
from stt.explain.explainers import segment_mask_of
from stt.models.encoders import IMAGENET_MEAN

FRACTIONS = tuple(i / 10 for i in range(10))
TESTS = ("spatial", "temporal")
ORDERS = ("positive", "negative")
MODALITIES = ("audio", "visual", "both")
MODES = ("feature", "pixel")
BASELINES = ("zero", "road")  # what replaces a removed cell: the removal value, or ROAD's
PIXEL_MEAN = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)  # (124, 116, 104)
_ROUNDING_SLACK = 1e-4


def num_removed(fraction, count):
  """k = round-half-up(fraction * count); works on Python numbers and on arrays."""
  if isinstance(fraction, (int, float, np.floating)) and isinstance(count, (int, np.integer)):
    return int(math.floor(fraction * count + 0.5 + _ROUNDING_SLACK))
  return jnp.floor(fraction * count + 0.5 + _ROUNDING_SLACK).astype(jnp.int32)


def removal_ranks(relevance: jax.Array, valid: jax.Array, order: str) -> jax.Array:
  """relevance [..., M], valid [..., M] bool -> rank [..., M] int32 in the removal order.

  Element m is removed at fraction p iff rank[m] < k(p). Invalid elements rank last.
  """
  key = -relevance if order == "positive" else relevance
  key = jnp.where(valid, key.astype(jnp.float32), jnp.inf)
  removal_order = jnp.argsort(key, axis=-1, stable=True)
  return jnp.argsort(removal_order, axis=-1, stable=True).astype(jnp.int32)


def cell_block_mask(cell_mask: jax.Array, frame_height: int, frame_width: int) -> jax.Array:
  """cell_mask [..., h, w] bool -> pixel mask [..., H, W]: pixel (r, c) is in cell
  (r*h // H, c*w // W)."""
  h, w = cell_mask.shape[-2:]
  rows = np.arange(frame_height) * h // frame_height
  cols = np.arange(frame_width) * w // frame_width
  return cell_mask[..., rows, :][..., cols]


def _check_options(test, order, modality, mode, inputs, baseline="zero"):
  for value, allowed in (
      (test, TESTS),
      (order, ORDERS),
      (modality, MODALITIES),
      (mode, MODES),
      (baseline, BASELINES),
  ):
    if value not in allowed:
      raise ValueError(f"{value!r} is not one of {allowed}")
  if baseline == "road" and mode != "feature":
    raise ValueError("baseline 'road' imputes backbone features: it needs mode 'feature'")
  if mode == "pixel":
    needs_frames = test == "spatial" or modality in ("visual", "both")
    needs_log_mel = test == "temporal" and modality in ("audio", "both")
    if (needs_frames and "frames" not in inputs) or (needs_log_mel and "log_mel" not in inputs):
      raise ValueError("mode 'pixel' needs inputs['frames'] (and 'log_mel' to remove audio)")


def _removed_cells(removed: jax.Array, test: str, grid: tuple[int, int]) -> jax.Array:
  """[B,T,h,w] cells removed: `removed` itself (spatial) or whole removed [B,T] segments."""
  if test == "spatial":
    return removed
  return jnp.broadcast_to(removed[:, :, None, None], removed.shape + tuple(grid))


def _removes(test: str, modality: str) -> tuple[bool, bool]:
  """(visual, audio): which modalities a test removes from."""
  return (
      test == "spatial" or modality in ("visual", "both"),
      test == "temporal" and modality in ("audio", "both"),
  )


def _replace_removed(clean: tuple, replacement: tuple, removed, *, test, modality, grid):
  """(visual, audio) of `clean` with the removed cells/segments taken from `replacement`.

  clean: (visual [B,T,h,w,C] features or [B,T,h*w,D] per-cell tokens, audio [B,T,C]);
  replacement: the same, or broadcastable to it (a removal value, or its tokens [1,T,...]);
  removed: [B,T,h,w] cells (spatial) or [B,T] segments (temporal).
  """
  remove_visual, remove_audio = _removes(test, modality)
  visual, audio = clean
  if remove_visual:
    mask = _removed_cells(removed, test, grid).reshape(visual.shape[:-1])
    visual = jnp.where(mask[..., None], jnp.asarray(replacement[0], visual.dtype), visual)
  if remove_audio:
    audio = jnp.where(removed[..., None], jnp.asarray(replacement[1], audio.dtype), audio)
  return visual, audio


def _segment_swapped_attention(model, clean: tuple, removal: tuple, *, modality, grid):
  """Feature-mode temporal test: the spatial attention (audio, attended, alpha) of every
  segment clean [B,T,...] and removed [B,T,...]. A segment's attention depends on its own
  tokens only, so each fraction selects per segment instead of rerunning it."""
  all_removed = jnp.ones(clean[1].shape[:2], bool)  # [B,T]
  removed_tokens = _replace_removed(
      clean, removal, all_removed, test="temporal", modality=modality, grid=grid
  )
  return tuple(
      (tokens[1],) + tuple(model.spatial_attention(tokens[1], tokens[0]))
      for tokens in (clean, removed_tokens)
  )


def _remove_pixels(
    model, inputs, visual_map, removed, *, test, modality, pixel_value, log_mel_value
):
  """Pixel mode: backbone outputs (visual_map, audio_vec) of the inputs with `removed`
  ([B,T,h,w] cells or [B,T] segments) set to the pixel / log-mel values."""
  remove_visual, remove_audio = _removes(test, modality)
  cells = _removed_cells(removed, test, visual_map.shape[2:4])
  inputs = dict(inputs)
  if remove_visual:
    frames = inputs["frames"]  # [B,T,F,H,W,3]
    pixels = cell_block_mask(cells, frames.shape[3], frames.shape[4])  # [B,T,H,W]
    value = jnp.asarray(pixel_value, frames.dtype)
    inputs["frames"] = jnp.where(pixels[:, :, None, :, :, None], value, frames)
  if remove_audio:
    log_mel = inputs["log_mel"]  # [B,T,96,64]
    inputs["log_mel"] = jnp.where(
        removed[:, :, None, None], jnp.asarray(log_mel_value, log_mel.dtype), log_mel
    )
  return model.encode(inputs, train=False)


def curves(
    model,
    inputs: dict,
    labels: jax.Array,
    where: jax.Array,
    when: jax.Array,
    *,
    test: str = "spatial",
    order: str = "positive",
    modality: str = "both",
    mode: str = "feature",
    fractions: tuple = FRACTIONS,
    visual_value=0.0,
    audio_value=0.0,
    pixel_value=PIXEL_MEAN,
    log_mel_value=0.0,
    baseline: str = "zero",
    road_noise: float = road_imputation.DEFAULT_NOISE,
) -> dict:
  """`perturbation_curves` without its jit, for callers that are already inside one."""
  _check_options(test, order, modality, mode, inputs, baseline)
  segment_mask = segment_mask_of(inputs)
  visual_map, audio_vec = model.encode(inputs, train=False)
  grid = visual_map.shape[2:4]
  clean_tokens = model.embed(visual_map, audio_vec)
  clean_logits = model.head_from_tokens(*clean_tokens, segment_mask)["logits"]
  # Feature mode swaps the removed cells' and segments' tokens for the removal value's, which
  # is exact where each visual token is one cell's (`tokens_are_cells`); otherwise the
  # perturbed features are embedded again.
  swap_tokens = mode == "feature" and model.tokens_are_cells and baseline == "zero"
  if swap_tokens:  # The removal value's tokens, once: [1,T,N,D] and [1,T,D].
    removal_tokens = model.embed(
        jnp.broadcast_to(jnp.asarray(visual_value, jnp.float32), (1,) + visual_map.shape[1:]),
        jnp.broadcast_to(jnp.asarray(audio_value, jnp.float32), (1,) + audio_vec.shape[1:]),
    )
  # A model that splits its head after the per-segment spatial attention (STAN's
  # `head_from_attended`) lets the temporal test select segments instead of rerunning it.
  swap_attention = swap_tokens and test == "temporal" and hasattr(model, "head_from_attended")
  if swap_attention:  # [B,T,...] of (audio, attended, alpha), twice
    clean_attention, removed_attention = _segment_swapped_attention(
        model, clean_tokens, removal_tokens, modality=modality, grid=grid
    )
  predicted = jnp.argmax(clean_logits, axis=-1)  # [B]
  if test == "spatial":
    b, t, h, w = where.shape
    ranks = removal_ranks(where.reshape(b, t, h * w), jnp.ones((b, t, h * w), bool), order)
    counts = jnp.full((b, 1, 1), h * w)
  else:
    ranks = removal_ranks(when, segment_mask, order)  # [B,T]
    counts = segment_mask.sum(axis=1, keepdims=True)  # [B,1]
  features = (visual_map, audio_vec)
  sigmas = tuple(road_imputation.noise_scale(x, road_noise) for x in features)  # [B] each

  def at_fraction(fraction, index):
    removed = ranks < num_removed(fraction, counts)
    if test == "spatial":
      removed = removed.reshape(where.shape)
    if baseline == "road":  # a fixed key per fraction: deterministic
      tokens = model.embed(
          *road_imputation.impute_removed(
              features,
              removed,
              test=test,
              removes=_removes(test, modality),
              segment_mask=segment_mask,
              sigmas=sigmas,
              key=jax.random.fold_in(jax.random.key(0), index),
          )
      )
      logits = model.head_from_tokens(*tokens, segment_mask)["logits"]
    elif swap_attention:
      select = lambda r, c: jnp.where(removed.reshape(removed.shape + (1,) * (r.ndim - 2)), r, c)
      logits = model.head_from_attended(
          *map(select, removed_attention, clean_attention), segment_mask
      )["logits"]
    elif swap_tokens:  # equals embedding the perturbed features: a token is one cell's
      tokens = _replace_removed(
          clean_tokens, removal_tokens, removed, test=test, modality=modality, grid=grid
      )
      logits = model.head_from_tokens(*tokens, segment_mask)["logits"]
    elif mode == "feature":  # tokens that pool cells (joint_transformer's token_pool)
      tokens = model.embed(
          *_replace_removed(
              (visual_map, audio_vec),
              (visual_value, audio_value),
              removed,
              test=test,
              modality=modality,
              grid=grid,
          )
      )
      logits = model.head_from_tokens(*tokens, segment_mask)["logits"]
    else:
      tokens = model.embed(
          *_remove_pixels(
              model,
              inputs,
              visual_map,
              removed,
              test=test,
              modality=modality,
              pixel_value=pixel_value,
              log_mel_value=log_mel_value,
          )
      )
      logits = model.head_from_tokens(*tokens, segment_mask)["logits"]
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return {
        "correct": jnp.argmax(logits, axis=-1) == labels,
        "probability": jnp.take_along_axis(probs, predicted[:, None], axis=1)[:, 0],
    }

  return jax.vmap(at_fraction)(jnp.asarray(fractions, jnp.float32), jnp.arange(len(fractions)))


_jitted_curves = nnx.jit(
    curves,
    static_argnames=("test", "order", "modality", "mode", "fractions", "baseline", "road_noise"),
)


def perturbation_curves(model, inputs: dict, labels, where, when, **options) -> dict:
  """One perturbation test on a batch: one jitted computation, vmapped over the fractions.

  Args: model (Stan), inputs (as Stan.__call__), labels [B] int, where [B,T,h,w], when [B,T];
    options: test 'spatial' | 'temporal', order 'positive' | 'negative', modality 'audio' |
    'visual' | 'both' (temporal only), mode 'feature' | 'pixel', fractions (a tuple), the
    removal values visual_value, audio_value, pixel_value, log_mel_value, and baseline 'zero'
    (the removal values) | 'road' (ROAD's imputation, feature mode; road_noise its noise).
  Returns {'correct': [P,B] bool, 'probability': [P,B] f32}; see the module docstring.
  """
  if "fractions" in options:
    options["fractions"] = tuple(float(p) for p in options["fractions"])
  return _jitted_curves(model, inputs, labels, where, when, **options)


def summarise(correct: np.ndarray, probability: np.ndarray, fractions=FRACTIONS) -> dict:
  """correct, probability [P,V] over all videos -> {'accuracy': [P], 'probability': [P],
  'auc': trapz(accuracy, fractions) * 100, 'probability_auc': the same for probability}."""
  accuracy = np.asarray(correct, np.float64).mean(axis=1)
  probability = np.asarray(probability, np.float64).mean(axis=1)
  return {
      "fractions": [float(p) for p in fractions],
      "accuracy": accuracy.tolist(),
      "probability": probability.tolist(),
      "auc": trapezoid_auc(accuracy, fractions),
      "probability_auc": trapezoid_auc(probability, fractions),
  }


def trapezoid_auc(values, fractions=FRACTIONS) -> float:
  """trapz(values, fractions) * 100."""
  values, fractions = np.asarray(values, np.float64), np.asarray(fractions, np.float64)
  return float(100 * np.sum((values[1:] + values[:-1]) / 2 * np.diff(fractions)))


@nnx.jit
def _reference_logits(model, visual_map, audio_vec, segment_mask):
  return model.head(visual_map, audio_vec, segment_mask, train=False)["logits"]


@nnx.jit
def _reference_encode(model, inputs):
  return model.encode(inputs, train=False)


def perturbation_reference(
    model,
    inputs: dict,
    labels,
    where,
    when,
    *,
    test: str = "spatial",
    order: str = "positive",
    modality: str = "both",
    mode: str = "feature",
    fractions: tuple = FRACTIONS,
    visual_value=0.0,
    audio_value=0.0,
    pixel_value=PIXEL_MEAN,
    log_mel_value=0.0,
) -> dict:
  """The same test as `perturbation_curves` as a plain loop over videos, fractions and removed
  cells/segments in numpy (one video at a time through the model). For tests.

  Returns {'correct': [P,V] bool, 'probability': [P,V] f32, 'predicted': [V] clean argmax}.
  """
  _check_options(test, order, modality, mode, inputs)
  inputs = {key: np.asarray(value) for key, value in inputs.items()}
  segment_mask = np.asarray(segment_mask_of(inputs))
  labels, where, when = np.asarray(labels), np.asarray(where), np.asarray(when)
  num_videos, num_segments, h, w = where.shape
  correct = np.zeros((len(fractions), num_videos), bool)
  predicted = np.zeros(num_videos, np.int64)
  probability = np.zeros((len(fractions), num_videos), np.float32)
  remove_visual = test == "spatial" or modality in ("visual", "both")
  remove_audio = test == "temporal" and modality in ("audio", "both")

  for video in range(num_videos):
    sample = {key: value[video : video + 1].copy() for key, value in inputs.items()}
    mask = segment_mask[video : video + 1]
    visual_map, audio_vec = (np.asarray(x) for x in _reference_encode(model, sample))
    predicted[video] = np.argmax(_reference_logits(model, visual_map, audio_vec, mask)[0])
    for index, fraction in enumerate(fractions):
      perturbed = {key: value.copy() for key, value in sample.items()}
      visual, audio = visual_map.copy(), audio_vec.copy()
      if test == "spatial":
        for segment in range(num_segments):
          relevance = where[video, segment].reshape(-1)
          ranked = np.argsort(-relevance if order == "positive" else relevance, kind="stable")
          for cell in ranked[: num_removed(float(fraction), h * w)]:
            row, col = divmod(int(cell), w)
            if mode == "feature":
              visual[0, segment, row, col] = visual_value
            else:
              frames = perturbed["frames"]
              height, width = frames.shape[3:5]
              rows = [r for r in range(height) if r * h // height == row]
              cols = [c for c in range(width) if c * w // width == col]
              frames[0, segment, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = pixel_value
      else:
        valid = np.flatnonzero(segment_mask[video])
        relevance = when[video, valid]
        ranked = valid[np.argsort(-relevance if order == "positive" else relevance, kind="stable")]
        for segment in ranked[: num_removed(float(fraction), len(valid))]:
          if mode == "feature":
            if remove_visual:
              visual[0, segment] = visual_value
            if remove_audio:
              audio[0, segment] = audio_value
          else:
            if remove_visual:
              perturbed["frames"][0, segment] = pixel_value
            if remove_audio:
              perturbed["log_mel"][0, segment] = log_mel_value
      if mode == "pixel":
        visual, audio = (np.asarray(x) for x in _reference_encode(model, perturbed))
      logits = np.asarray(_reference_logits(model, visual, audio, mask)[0], np.float64)
      probs = np.exp(logits - logits.max())
      probs /= probs.sum()
      correct[index, video] = np.argmax(logits) == labels[video]
      probability[index, video] = probs[predicted[video]]
  return {"correct": correct, "probability": probability, "predicted": predicted}
