"""ROAD's noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022), on the backbone features the perturbation tests remove.

The paper (and its code, `NoisyLinearImputer`) fills every removed pixel with the weighted mean of
its 8 neighbours inside the image (direct neighbours weight 1/6, diagonal ones 1/12, the mean
normalised by the weights of the neighbours that exist), all removed pixels solved jointly as one
sparse linear system (so a chain of removed pixels is filled consistently from the kept ones),
then adds N(0, sigma^2) noise to the imputed values (sigma = 0.01 on normalised images). Removed
pixel i satisfies

  (sum_j w_ij) x_i - sum_j w_ij x_j = 0   over i's in-image neighbours j (kept j: known values).

What we do, and where it departs:
- "pixels" are the cells of the visual feature map [T,h,w,C] (the grid of the spatial test,
  e.g. 4x4 or 8x8), each channel imputed independently with the same weights (the paper imputes
  the 3 colour channels the same way); spatially, each frame is its own system.
- temporal test: a removed segment is imputed from its neighbouring *valid* segments along T
  (weight 1 to t-1 and t+1, normalised, the 1-D analogue; padded segments are never neighbours),
  per cell and channel of the visual map and per channel of the audio vector.
- the system is solved densely over all N cells of a frame, as the symmetric positive definite
  N x N matrix that is the removed cells' block of the weighted Laplacian (plus a ridge
  epsilon = 1e-6 on its diagonal) and the identity on the kept cells, by a Cholesky
  factorisation: jittable, batched and exact on these small grids. Measured on 2 CPU cores for
  one batch of the synthetic suite (10 fractions x 32 videos x 10 frames of 8x8 cells x 32
  channels): LU solve 14 s, Cholesky 3.9 s (1.6e-5 from LU), 32 CG iterations 8 s (5e-6),
  100 Jacobi sweeps 5 s (2e-4). A system with no kept cell (a frame, or a video's valid
  segments, removed whole: nothing to impute from) gives 0, the zero baseline's value; the
  ridge moves other solutions by about 1e-6 relative.
- noise: sigma = noise x the standard deviation of the clean features of the video (all its
  cells and channels), so that noise=0.01 is the paper's 1 % of the data's scale on unit-variance
  images; drawn from a fixed key (the suite's results are deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

DIRECT_WEIGHT = 1 / 6
DIAGONAL_WEIGHT = 1 / 12
RIDGE = 1e-6
DEFAULT_NOISE = 0.01


def grid_weights(height: int, width: int) -> np.ndarray:
  """[N,N] float32, N = height*width (row-major cells): w_ij = 1/6 for a direct neighbour, 1/12
  for a diagonal one inside the grid, else 0."""
  n = height * width
  weights = np.zeros((n, n), np.float32)
  for row in range(height):
    for col in range(width):
      for d_row in (-1, 0, 1):
        for d_col in (-1, 0, 1):
          other_row, other_col = row + d_row, col + d_col
          if (d_row, d_col) == (0, 0) or not (0 <= other_row < height and 0 <= other_col < width):
            continue
          direct = d_row == 0 or d_col == 0
          weights[row * width + col, other_row * width + other_col] = (
              DIRECT_WEIGHT if direct else DIAGONAL_WEIGHT
          )
  return weights


def line_weights(length: int) -> np.ndarray:
  """[T,T] float32: weight 1 between segments t and t+1 (the temporal neighbours)."""
  weights = np.zeros((length, length), np.float32)
  index = np.arange(length - 1)
  weights[index, index + 1] = weights[index + 1, index] = 1.0
  return weights


def linear_impute(values: jax.Array, removed: jax.Array, weights: jax.Array) -> jax.Array:
  """The linear system's solution, no noise.

  Args:
    values: [..., N, C] clean values of the N cells (segments) of each system.
    removed: [..., N] bool, the cells to impute.
    weights: [N,N] or [..., N, N] neighbour weights (symmetric, zero diagonal; a [..., N, N]
      per-system matrix drops neighbours that do not exist, e.g. padded segments).
  Returns: [..., N, C] float32: kept cells unchanged, removed ones the weighted mean of their
    neighbours, all removed cells solved jointly.
  """
  values = values.astype(jnp.float32)
  weights = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), removed.shape + removed.shape[-1:])
  n = removed.shape[-1]
  identity = jnp.eye(n, dtype=jnp.float32)
  # Nothing kept: nothing to impute from; those cells become 0 (identity system, zero right side).
  removed_or_none = removed & (~removed).any(axis=-1, keepdims=True)
  nowhere = removed & ~removed_or_none
  mask = removed_or_none.astype(jnp.float32)  # [..., N]
  degree = weights.sum(axis=-1)  # [..., N]
  laplacian = (degree + RIDGE)[..., None] * identity - weights
  # Symmetric positive definite: the removed block of the (ridged) Laplacian, identity on the kept
  # cells; the kept neighbours' values move to the right-hand side.
  system = mask[..., :, None] * mask[..., None, :] * laplacian + identity * (1 - mask)[..., None]
  kept = jnp.where((removed_or_none | nowhere)[..., None], 0.0, values)
  right_hand_side = mask[..., None] * jnp.einsum("...ij,...jc->...ic", weights, kept) + kept
  factor = jnp.linalg.cholesky(system)
  return jax.scipy.linalg.cho_solve((factor, True), right_hand_side)


def noise_scale(values: jax.Array, noise: float) -> jax.Array:
  """values [B, ...] -> [B] sigma: noise x the std of each video's clean values."""
  flat = values.reshape(values.shape[0], -1).astype(jnp.float32)
  return noise * flat.std(axis=1)


def noisy_impute(
    values: jax.Array,
    removed: jax.Array,
    weights: jax.Array,
    sigma: jax.Array,
    key: jax.Array,
) -> jax.Array:
  """`linear_impute` plus N(0, sigma^2) noise on the removed cells.

  values [B, ..., N, C], removed [B, ..., N], sigma [B] (per video); key: a jax PRNG key.
  Returns [B, ..., N, C] float32.
  """
  imputed = linear_impute(values, removed, weights)
  sigma = sigma.reshape(sigma.shape + (1,) * (imputed.ndim - 1))
  noise = sigma * jax.random.normal(key, imputed.shape, jnp.float32)
  return jnp.where(removed[..., None], imputed + noise, imputed)


def impute_cells(visual_map: jax.Array, removed: jax.Array, sigma, key) -> jax.Array:
  """Spatial test: visual_map [B,T,h,w,C], removed [B,T,h,w] bool -> [B,T,h,w,C], each frame's
  removed cells imputed from its kept cells (8-neighbourhood, 1/6 and 1/12)."""
  b, t, h, w, c = visual_map.shape
  imputed = noisy_impute(
      visual_map.reshape(b, t, h * w, c),
      removed.reshape(b, t, h * w),
      grid_weights(h, w),
      sigma,
      key,
  )
  return imputed.reshape(visual_map.shape)


def impute_segments(
    values: jax.Array, removed: jax.Array, segment_mask: jax.Array, sigma, key
) -> jax.Array:
  """Temporal test: values [B,T,...] (a visual map [B,T,h,w,C] or audio [B,T,C]), removed [B,T]
  bool, segment_mask [B,T] bool -> [B,T,...], each removed segment imputed from its neighbouring
  valid segments, every trailing entry (cell x channel) independently."""
  b, t = removed.shape
  valid = segment_mask.astype(jnp.float32)
  weights = line_weights(t)[None] * valid[:, :, None] * valid[:, None, :]  # [B,T,T]
  imputed = noisy_impute(values.reshape(b, t, -1), removed, weights, sigma, key)
  return imputed.reshape(values.shape)


def impute_removed(
    features: tuple,
    removed: jax.Array,
    *,
    test: str,
    removes: tuple[bool, bool],
    segment_mask: jax.Array,
    sigmas: tuple,
    key: jax.Array,
) -> tuple:
  """A perturbation test's ROAD removal: (visual_map [B,T,h,w,C], audio_vec [B,T,Ca]) with the
  removed cells (test 'spatial', removed [B,T,h,w]) or segments ('temporal', removed [B,T]) of the
  modalities `removes` = (visual, audio) imputed; sigmas: (visual [B], audio [B]) noise std."""
  visual, audio = features
  visual_key, audio_key = jax.random.split(key)
  if test == "spatial":
    return impute_cells(visual, removed, sigmas[0], visual_key), audio
  if removes[0]:
    visual = impute_segments(visual, removed, segment_mask, sigmas[0], visual_key)
  if removes[1]:
    audio = impute_segments(audio, removed, segment_mask, sigmas[1], audio_key)
  return visual, audio
