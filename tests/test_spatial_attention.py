"""The folded spatial attention equals the textbook form (keys and values of every cell)."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stt.models import layers


def _textbook(module: layers.AudioGuidedSpatialAttention, audio_tokens, visual_cells):
  """Project every cell to keys and values, attend per head: the form the module avoids."""
  b, t, n, _ = visual_cells.shape
  heads, dh = module.num_heads, module.head_dim
  values = module.value(visual_cells).reshape(b, t, n, heads, dh)
  if module.spatial_query == "none":
    alpha = jnp.full((b, t, heads, n), 1.0 / n)
  else:
    query_in = (
        audio_tokens
        if module.spatial_query == "audio"
        else jnp.broadcast_to(module.learned_query[...], audio_tokens.shape)
    )
    q = module.query(query_in).reshape(b, t, heads, dh)
    k = module.key(visual_cells).reshape(b, t, n, heads, dh)
    alpha = jax.nn.softmax(jnp.einsum("bthd,btnhd->bthn", q, k) / np.sqrt(dh), axis=-1)
  attended = jnp.einsum("bthn,btnhd->bthd", alpha, values).reshape(b, t, -1)
  return module.out(attended), alpha


@pytest.mark.parametrize("spatial_query", ["audio", "learned", "none"])
def test_folded_attention_equals_textbook_form(spatial_query):
  module = layers.AudioGuidedSpatialAttention(32, 4, spatial_query, rngs=nnx.Rngs(0))
  # Non-zero biases so the folding of the value bias is exercised.
  module.value.bias[...] = jax.random.normal(jax.random.key(1), (32,))
  if spatial_query != "none":
    module.query.bias[...] = jax.random.normal(jax.random.key(2), (32,))
  rng = np.random.default_rng(0)
  audio = jnp.asarray(rng.standard_normal((2, 3, 32)), jnp.float32)
  cells = jnp.asarray(rng.standard_normal((2, 3, 6, 32)), jnp.float32)
  attended, alpha = module(audio, cells)
  expected_attended, expected_alpha = _textbook(module, audio, cells)
  np.testing.assert_allclose(alpha, expected_alpha, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(attended, expected_attended, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(alpha).sum(-1), 1.0, rtol=1e-6)


def test_folded_attention_gradients_equal_textbook_form():
  module = layers.AudioGuidedSpatialAttention(16, 2, "audio", rngs=nnx.Rngs(3))
  rng = np.random.default_rng(1)
  audio = jnp.asarray(rng.standard_normal((2, 2, 16)), jnp.float32)
  cells = jnp.asarray(rng.standard_normal((2, 2, 5, 16)), jnp.float32)

  def loss(fn, module, cells):
    attended, alpha = fn(module, audio, cells)
    return jnp.sum(jnp.sin(attended)) + jnp.sum(alpha**2)

  folded = nnx.grad(lambda m, c: loss(lambda m, a, c: m(a, c), m, c), argnums=(0, 1))(module, cells)
  textbook = nnx.grad(lambda m, c: loss(_textbook, m, c), argnums=(0, 1))(module, cells)
  for got, want in zip(jax.tree.leaves(folded), jax.tree.leaves(textbook)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
