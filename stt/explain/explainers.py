"""Explainers of a model (STAN or a compared one): where [B,T,h,w] and when [B,T] for a batch.

Every explainer is a function `(model, inputs, target_class=None, **options) -> {'where', 'when'}`
with inputs as for the models' `__call__` (stt/models/__init__.py); all are batched and run under
`nnx.jit` (options static).
`target_class` is None (explain each video's predicted class), an int, or [B] ints. The
model-intrinsic and baseline explainers (attention, rollout, random, center; their records say
`class_agnostic`) ignore it: their maps are the same for every class.

`EXPLAINERS` is the one table of explainers: `{name: Explainer(fn, class_agnostic, needs,
needs_any, spatial_is_attention_on, reads_model)}`, one record per explainer, all that the suite, the sanity
checks and the tables know of it. An explainer asks the model (its class or instance) what it
has, never its name: this module imports no model module (stt/models/__init__.py says what a
model exposes). Adding an explainer is its function plus its record (docs/design.md §6).

Attribution explainers act on the backbone outputs (`Stan.encode`), so they work alike for
precomputed features and for backbone models: visual_map [B,T,h,w,Cv], audio_vec [B,T,Ca].
From per-element attributions A_v [B,T,h,w,Cv] and A_a [B,T,Ca] (the "attribution" explainers):
    where[t,i,j] = sum_c A_v[t,i,j,c]
    when[t]      = sum_c A_a[t,c] + sum_{i,j,c} A_v[t,i,j,c]   (the segment's total attribution)

Normalisation (all explainers): padded segments get 0; 'where' is divided by its sum of absolute
values over the whole video (sum_{t,i,j} |where| = 1, so frames keep their relative scale) and
'when' by its sum of absolute values over segments (sum_t |when| = 1). Signs are kept, so signed
attributions (grad_x_input, integrated_gradients, occlusion) can be negative. An all-zero map stays
zero.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

_VISUAL_INPUTS = ("visual_features", "frames")
_AUDIO_INPUTS = ("audio_features", "log_mel")


def batch_shape(inputs: dict) -> tuple[int, int]:
  """(B, T) of an inputs dict."""
  for key in _VISUAL_INPUTS + _AUDIO_INPUTS + ("segment_mask",):
    if key in inputs:
      return tuple(inputs[key].shape[:2])
  raise ValueError(f"inputs hold none of {_VISUAL_INPUTS + _AUDIO_INPUTS}")


def segment_mask_of(inputs: dict) -> jax.Array:
  """inputs['segment_mask'] [B,T] bool, all True when absent."""
  if inputs.get("segment_mask") is None:
    return jnp.ones(batch_shape(inputs), bool)
  return jnp.asarray(inputs["segment_mask"]).astype(bool)


def target_classes(logits: jax.Array, target_class) -> jax.Array:
  """[B] int32: argmax of logits [B,C] when target_class is None, else target_class broadcast."""
  if target_class is None:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return jnp.broadcast_to(jnp.asarray(target_class, jnp.int32), logits.shape[:1])


def normalise(where: jax.Array, when: jax.Array, segment_mask: jax.Array) -> dict:
  """where [B,T,h,w], when [B,T] -> zero at padded segments, sum of |.| per video = 1."""
  tiny = jnp.finfo(jnp.float32).tiny
  where = jnp.where(segment_mask[:, :, None, None], where.astype(jnp.float32), 0.0)
  when = jnp.where(segment_mask, when.astype(jnp.float32), 0.0)
  where = where / jnp.maximum(jnp.abs(where).sum(axis=(1, 2, 3), keepdims=True), tiny)
  when = when / jnp.maximum(jnp.abs(when).sum(axis=1, keepdims=True), tiny)
  return {"where": where, "when": when}


def maps_from_attributions(
    visual_attribution: jax.Array, audio_attribution: jax.Array, segment_mask: jax.Array
) -> dict:
  """A_v [B,T,h,w,Cv], A_a [B,T,Ca] -> normalised {'where', 'when'} (module docstring)."""
  where = visual_attribution.sum(axis=-1)
  when = audio_attribution.sum(axis=-1) + where.sum(axis=(2, 3))
  return normalise(where, when, segment_mask)


class _Encoded:
  """The backbone outputs of a batch, its mask, clean logits and the classes to explain."""

  def __init__(self, model, inputs: dict, target_class):
    self.model = model
    visual_map, audio_vec = model.encode(inputs, train=False)
    self.visual_map = visual_map.astype(jnp.float32)  # [B,T,h,w,Cv]
    self.audio_vec = audio_vec.astype(jnp.float32)  # [B,T,Ca]
    self.segment_mask = segment_mask_of(inputs)  # [B,T]
    self.outputs = model.head(self.visual_map, self.audio_vec, self.segment_mask, train=False)
    self.target = target_classes(self.outputs["logits"], target_class)  # [B]

  def target_logit(self, visual_map: jax.Array, audio_vec: jax.Array) -> jax.Array:
    """[B] logit of each video's target class for these backbone outputs."""
    logits = self.model.head(visual_map, audio_vec, self.segment_mask, train=False)["logits"]
    return jnp.take_along_axis(logits, self.target[:, None], axis=1)[:, 0]

  def target_probability(self, visual_map: jax.Array, audio_vec: jax.Array) -> jax.Array:
    """[B] softmax probability of each video's target class."""
    logits = self.model.head(visual_map, audio_vec, self.segment_mask, train=False)["logits"]
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(probs, self.target[:, None], axis=1)[:, 0]

  def gradients(self, visual_map: jax.Array, audio_vec: jax.Array):
    """(d logit / d visual_map [B,T,h,w,Cv], d logit / d audio_vec [B,T,Ca]); videos are
    independent in `head`, so the gradient of the batch sum is each video's own gradient."""
    total = lambda v, a: self.target_logit(v, a).sum()
    return jax.grad(total, argnums=(0, 1))(visual_map, audio_vec)


def attention(model, inputs: dict, target_class=None) -> dict:
  """The model's own maps: where = alpha averaged over heads (alpha / T_valid once normalised
  over the video), when = the model's joint beta^a * beta^v renormalised.

  A model with only one of them (AVEL has a "where" and no "when") gets zeros for the other:
  the record's `dimensions` says which maps are the model's, and the suite, the sanity checks
  and the tables report the missing one as not applicable, never as a score of the zero map.
  """
  del target_class  # intrinsic: the same for every class
  encoded = _Encoded(model, inputs, None)
  explanations = encoded.outputs["explanations"]
  if not {"where", "when"} & set(explanations):
    raise ValueError(
        f"attention needs the model's own 'where' or 'when'; {type(model).__name__} returns "
        f"{sorted(explanations)}"
    )
  b, t = encoded.segment_mask.shape
  where = explanations.get("where", jnp.zeros((b, t) + tuple(model.grid_size)))
  when = explanations.get("when", jnp.zeros((b, t)))
  return normalise(where, when, encoded.segment_mask)


def rollout_relevance(attention: jax.Array, readout: jax.Array) -> jax.Array:
  """Attention rollout (Abnar & Zuidema 2020) read out by `readout`: r = q Â_L ... Â_1.

  attention [L,B,heads,S,S] (each layer's weights, query i -> key j), readout q [B,S] (the
  weights with which the model reads its output tokens). Per layer Â_l = (A_l + I)
  row-normalised, A_l the attention averaged over heads; R = Â_L ... Â_1 gives R[i, j], the
  share of output token i that comes from input token j, and r [B,S] = q R the relevance of each
  input token. Computed as L vector-matrix products from the last layer down, never forming R.
  """
  attention_maps = attention.astype(jnp.float32).mean(axis=2)  # [L,B,S,S]
  augmented = attention_maps + jnp.eye(attention_maps.shape[-1], dtype=jnp.float32)
  augmented = augmented / augmented.sum(axis=-1, keepdims=True)
  relevance = readout.astype(jnp.float32)
  for layer in reversed(range(augmented.shape[0])):
    relevance = jnp.einsum("bi,bij->bj", relevance, augmented[layer])
  return relevance


def rollout(model, inputs: dict, target_class=None) -> dict:
  """Attention rollout (`rollout_relevance`) through the model's transformer, as the model says
  (`models.RolloutModel`): `model.rollout_readout` gives each layer's attention and the readout
  q with which the model reads its output tokens, r = q R the relevance of the input tokens, and
  `model.rollout_maps` turns r into "where" and "when".

  STAN (`temporal_attention` over [a_1..a_T, v̂_1..v̂_T], q = ½ [beta^a ; beta^v]): when[t] is
  the relevance of both tokens of segment t, and "where" is alpha scaled per frame by v̂_t's
  relevance, so its spatial scores are attention's (`spatial_is_attention_on`); it is kept for the
  panels, and "when" is rollout's own.
  joint_transformer (MBT; `token_attention` over [CLS_a, a_1..a_T, CLS_v, cells, bottlenecks],
  q = 1/2 on each CLS): every cell is a token, so "where" is rollout's own.
  """
  del target_class  # class-agnostic
  if not _has(model, "rollout_readout"):
    raise ValueError(
        f"rollout needs the model's per-layer attention and readout (models.RolloutModel); "
        f"{type(model).__name__} has no rollout_readout"
    )
  encoded = _Encoded(model, inputs, None)
  explanations = encoded.outputs["explanations"]
  attention, readout = model.rollout_readout(explanations)
  where, when = model.rollout_maps(rollout_relevance(attention, readout), explanations)
  return normalise(where, when, encoded.segment_mask)


def gradient(model, inputs: dict, target_class=None) -> dict:
  """Saliency: attributions |d logit / d x| for x = visual_map and audio_vec."""
  encoded = _Encoded(model, inputs, target_class)
  visual_grad, audio_grad = encoded.gradients(encoded.visual_map, encoded.audio_vec)
  return maps_from_attributions(jnp.abs(visual_grad), jnp.abs(audio_grad), encoded.segment_mask)


def grad_x_input(model, inputs: dict, target_class=None) -> dict:
  """Attributions x * d logit / d x (signed) for x = visual_map and audio_vec."""
  encoded = _Encoded(model, inputs, target_class)
  visual_grad, audio_grad = encoded.gradients(encoded.visual_map, encoded.audio_vec)
  return maps_from_attributions(
      visual_grad * encoded.visual_map, audio_grad * encoded.audio_vec, encoded.segment_mask
  )


def gradcam_maps(
    visual_grad: jax.Array, visual_map: jax.Array, audio_grad: jax.Array, audio_vec: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Grad-CAM per segment: (visual cam [B,T,h,w], audio cam [B,T]).

  visual cam = ReLU(sum_c w_c F_c) with w_c = d logit / d F_c averaged over the h x w cells of
  the segment; the audio vector is a 1x1 map, so its cam is ReLU(sum_c g_c a_c).
  """
  weights = visual_grad.mean(axis=(2, 3))  # [B,T,Cv]
  visual_cam = jax.nn.relu(jnp.einsum("btc,bthwc->bthw", weights, visual_map))
  audio_cam = jax.nn.relu((audio_grad * audio_vec).sum(axis=-1))
  return visual_cam, audio_cam


def gradcam(model, inputs: dict, target_class=None) -> dict:
  """Grad-CAM on the visual feature map; when[t] = audio cam[t] + sum of visual cam[t]."""
  encoded = _Encoded(model, inputs, target_class)
  visual_grad, audio_grad = encoded.gradients(encoded.visual_map, encoded.audio_vec)
  visual_cam, audio_cam = gradcam_maps(
      visual_grad, encoded.visual_map, audio_grad, encoded.audio_vec
  )
  return normalise(visual_cam, audio_cam + visual_cam.sum(axis=(2, 3)), encoded.segment_mask)


def integrated_gradient_attributions(
    model, inputs: dict, target_class=None, *, steps: int = 50, step_batch_size: int | None = None
):
  """Integrated gradients from the zero baseline, Gauss-Legendre quadrature over `steps` points.

  A(x) = x * sum_k w_k d logit / d x at s_k * x, for x = visual_map and audio_vec jointly, with
  (s_k, w_k) the Gauss-Legendre nodes and weights on [0, 1] (Captum's default rule; the path is
  steep near s = 0, where LayerNorm sees near-constant tokens, and the midpoint rule needs many
  more steps there). Completeness: sum A ≈ logit(x) - logit(0). The steps run as one vmapped
  batch, or as `lax.map` chunks of `step_batch_size` steps to bound memory.
  Returns (A_v [B,T,h,w,Cv], A_a [B,T,Ca]).
  """
  encoded = _Encoded(model, inputs, target_class)
  nodes, weights = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
  scales = jnp.asarray((nodes + 1) / 2, jnp.float32)
  weights = jnp.asarray(weights / 2, jnp.float32)
  at_scale = lambda s: encoded.gradients(s * encoded.visual_map, s * encoded.audio_vec)
  if step_batch_size is None:
    visual_grads, audio_grads = jax.vmap(at_scale)(scales)
  else:
    visual_grads, audio_grads = jax.lax.map(at_scale, scales, batch_size=step_batch_size)
  visual_path = jnp.tensordot(weights, visual_grads, axes=1)
  audio_path = jnp.tensordot(weights, audio_grads, axes=1)
  return encoded.visual_map * visual_path, encoded.audio_vec * audio_path


def integrated_gradients(
    model, inputs: dict, target_class=None, *, steps: int = 50, step_batch_size: int | None = None
) -> dict:
  """Integrated gradients (zero baseline), reduced to where/when as in the module docstring."""
  visual_attribution, audio_attribution = integrated_gradient_attributions(
      model, inputs, target_class, steps=steps, step_batch_size=step_batch_size
  )
  return maps_from_attributions(visual_attribution, audio_attribution, segment_mask_of(inputs))


def occlusion(model, inputs: dict, target_class=None, *, batch_size: int = 16) -> dict:
  """Drop in target probability when one part is zeroed, the rest kept.

  where[t,i,j] = p(x) - p(x with visual_map[t,i,j,:] = 0)               (T*N occlusions)
  when[t]      = p(x) - p(x with visual_map[t] = 0 and audio_vec[t] = 0)   (T occlusions)
  The T*N + T occlusions run in `lax.map` chunks of `batch_size`, each chunk a vmapped batch of
  forward passes (padded with no-op occlusions to a whole number of chunks).
  """
  encoded = _Encoded(model, inputs, target_class)
  visual_map, audio_vec = encoded.visual_map, encoded.audio_vec
  b, t, h, w, _ = visual_map.shape
  num_cells = t * h * w
  # Occlusion patterns: one cell at a time, then one segment at a time, then no-op padding.
  num_patterns = -(-(num_cells + t) // batch_size) * batch_size
  cell_patterns = np.zeros((num_patterns, t, h, w), bool)
  cell_patterns[np.arange(num_cells)] = np.eye(num_cells, dtype=bool).reshape(-1, t, h, w)
  cell_patterns[num_cells + np.arange(t), np.arange(t)] = True
  segment_patterns = np.zeros((num_patterns, t), bool)
  segment_patterns[num_cells + np.arange(t), np.arange(t)] = True

  def occluded_probability(patterns):
    cells, segment = patterns
    return encoded.target_probability(
        jnp.where(cells[:, :, :, None], 0.0, visual_map),
        jnp.where(segment[:, None], 0.0, audio_vec),
    )

  probs = jax.lax.map(
      occluded_probability,
      (jnp.asarray(cell_patterns), jnp.asarray(segment_patterns)),
      batch_size=batch_size,
  )  # [num_patterns, B]
  drops = encoded.target_probability(visual_map, audio_vec)[None] - probs
  where = drops[:num_cells].T.reshape(b, t, h, w)
  when = drops[num_cells : num_cells + t].T
  return normalise(where, when, encoded.segment_mask)


def random(model, inputs: dict, target_class=None, *, key: jax.Array | None = None) -> dict:
  """Uniform noise maps from `key` (default jax.random.key(0)); the same key, the same maps."""
  del target_class
  key = jax.random.key(0) if key is None else key
  b, t = batch_shape(inputs)
  where_key, when_key = jax.random.split(key)
  where = jax.random.uniform(where_key, (b, t) + tuple(model.grid_size))
  when = jax.random.uniform(when_key, (b, t))
  return normalise(where, when, segment_mask_of(inputs))


def center(model, inputs: dict, target_class=None, *, sigma: float = 0.25) -> dict:
  """Centre baseline: where = Gaussian at the grid centre with std sigma * (h, w) cells, the same
  in every frame; when uniform over valid segments.

  The map is symmetric about the frame centre, so its pointing games' point (the centre of the
  resized map's plateau of maxima, `pointing.points_of_maps`) is the frame centre
  (`pointing.frame_centre`, 63.5 on 128 px), the point of the tables' `center_prior` row."""
  del target_class
  b, t = batch_shape(inputs)
  h, w = model.grid_size
  rows = (jnp.arange(h) - (h - 1) / 2) / (sigma * h)
  cols = (jnp.arange(w) - (w - 1) / 2) / (sigma * w)
  gaussian = jnp.exp(-0.5 * (rows[:, None] ** 2 + cols[None, :] ** 2))
  return normalise(
      jnp.broadcast_to(gaussian, (b, t, h, w)), jnp.ones((b, t)), segment_mask_of(inputs)
  )


def _has(model, need: str) -> bool:
  """Whether `model` (a class or an instance) has `need`: a key of its own explanations
  (`EXPLANATIONS`) or a method of its (e.g. `rollout_readout`)."""
  return need in model.EXPLANATIONS or callable(getattr(model, need, None))


@dataclasses.dataclass(frozen=True)
class Explainer:
  """One explainer: its function and what the suite, the sanity checks and the tables know of it.

  fn: `(model, inputs, target_class=None, **options) -> {'where' [B,T,h,w], 'when' [B,T]}`.
  class_agnostic: its maps do not depend on `target_class`: the suite computes them once for
    both the ground-truth class (pointing, localisation) and the predicted class (perturbation).
  needs: what it asks of the model beyond the interface of every model: keys of the model's own
    explanations (`EXPLANATIONS`) or names of its methods. A model without them cannot have it.
  needs_any: of these, the model must have at least one (attention: "where" or "when"). Those
    of them that are maps ("where", "when") and that the model lacks are the maps this
    explainer does not give on it (`dimensions`): not applicable, "—" in the tables.
  spatial_is_attention_on: a need that marks a structure: on a model that has it, the
    explainer's "where" is attention's alpha times a per-frame constant, so every spatial score
    (pointing, relevance mass, cIoU, the spatial perturbation test: all rank cells within a
    frame) equals attention's by construction, and the suite reports them as not applicable.
  reads_model: False for the baselines that never read the model (the sanity checks, which
    randomise the model, leave them out).
  map_sources: for an explainer computed from the model's own explanations alone (attention,
    rollout), per map ("where", "when") the keys of `EXPLANATIONS` it reads: randomising only
    parameter blocks above the ones that make them (the model's `EXPLANATION_BLOCKS`) cannot
    change the map, so the sanity checks mark those cells as 1 by construction. Empty for the
    others (they read the whole model).
  """

  fn: Callable[..., dict]
  class_agnostic: bool = False
  needs: tuple[str, ...] = ()
  needs_any: tuple[str, ...] = ()
  spatial_is_attention_on: str | None = None
  reads_model: bool = True
  map_sources: tuple[tuple[str, tuple[str, ...]], ...] = ()

  def __call__(self, model, inputs: dict, target_class=None, **options) -> dict:
    return self.fn(model, inputs, target_class=target_class, **options)

  def applies_to(self, model) -> bool:
    """Whether `model` (a class or an instance) has everything this explainer `needs`."""
    return all(_has(model, need) for need in self.needs) and (
        not self.needs_any or any(_has(model, need) for need in self.needs_any)
    )

  def dimensions(self, model) -> tuple[str, ...]:
    """The maps of ("where", "when") this explainer gives on `model` (a class or an instance):
    both, less the ones of its `needs_any` that the model lacks (AVEL's attention: "where")."""
    lacking = {need for need in self.needs_any if not _has(model, need)}
    return tuple(dimension for dimension in ("where", "when") if dimension not in lacking)

  def spatial_is_attention(self, model) -> bool:
    """Whether this explainer's spatial scores are attention's on `model` (a class or an
    instance): it has the structure `spatial_is_attention_on` names."""
    return self.spatial_is_attention_on is not None and _has(model, self.spatial_is_attention_on)


# What rollout reads of a model's own explanations (`rollout_readout`): its layers' attention
# and the readout weights (STAN's pooling weights beta; joint_transformer's CLS reads one-hot).
_ROLLOUT_READS = ("temporal_attention", "token_attention", "when_audio", "when_visual")

EXPLAINERS = {
    "attention": Explainer(
        attention,
        class_agnostic=True,
        needs_any=("where", "when"),
        map_sources=(("where", ("where",)), ("when", ("when",))),
    ),
    # On STAN (`temporal_attention`) the visual cells reach the transformer only through
    # v_hat_t = sum_n alpha[t,n] cell[t,n] (no residual), so any rollout splits v_hat_t's
    # relevance over its cells by alpha; with pool_values='local' the pooled values bypass the
    # transformer as well. On joint_transformer, whose cells are tokens, "where" is its own.
    "rollout": Explainer(
        rollout,
        class_agnostic=True,
        needs=("rollout_readout", "rollout_maps"),
        spatial_is_attention_on="temporal_attention",
        map_sources=(
            ("where", ("where",) + _ROLLOUT_READS),
            ("when", _ROLLOUT_READS),
        ),
    ),
    "gradient": Explainer(gradient),
    "grad_x_input": Explainer(grad_x_input),
    "gradcam": Explainer(gradcam),
    "integrated_gradients": Explainer(integrated_gradients),
    "occlusion": Explainer(occlusion),
    "random": Explainer(random, class_agnostic=True, reads_model=False),
    "center": Explainer(center, class_agnostic=True, reads_model=False),
}
