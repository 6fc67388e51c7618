"""A trained smoke STAN on feature videos, and the same model as a Keras model for Quantus.

The videos (`make_videos`) are silent feature videos: visual features [V,T,h,w,Cv] of unit
Gaussian noise with the class's prototype vector added in a 2x2-cell object that stays in place
for the whole video, audio features [V,T,Ca] all zero. The object's box, in pixels of a
(cell_px * w) x (cell_px * h) frame, is every segment's annotation. `train_stan` fits STAN to
them in a few seconds of CPU, so its attention maps point at the object.

Quantus wraps single-input Keras (TensorFlow) and PyTorch models. `keras_model` converts the
trained STAN's head (`embed` + `head_from_tokens`, softmax on top) with jax2tf into a Keras
layer: TensorFlow is already a dependency (tensorflow-cpu), while PyTorch would add a second
framework of several hundred MB to the extra, and jax2tf runs the very same XLA computation, so
the two sides score one model. Its input is the visual features channel-first, [B, T*Cv, h, w]
(channel t*Cv + c is segment t's feature c), so one Quantus patch of 1x1 is one grid cell in
every segment, as in our spatial test; the audio input is the (all-zero) silent track.
"""

from __future__ import annotations

import dataclasses

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import synthetic
from stt.models import stan


@dataclasses.dataclass(frozen=True)
class Videos:
  visual_features: np.ndarray  # [V,T,h,w,Cv] f32
  audio_features: np.ndarray  # [V,T,Ca] f32, zero (silent)
  labels: np.ndarray  # [V] int
  boxes: np.ndarray  # [V,T,1,4] [x0,y0,x1,y1] pixels of the frame
  frame_size: np.ndarray  # [V,2] (W, H)

  def inputs(self) -> dict:
    v, t = self.labels.shape[0], self.visual_features.shape[1]
    return {
        "visual_features": self.visual_features,
        "audio_features": self.audio_features,
        "segment_mask": np.ones((v, t), bool),
    }


def make_videos(
    num_videos: int,
    seed: int,
    *,
    num_classes: int = 6,
    num_segments: int = 10,
    grid: int = 7,
    visual_dim: int = 32,
    audio_dim: int = 16,
    cell_px: int = 16,
    object_cells: int = 2,
) -> Videos:
  """Silent feature videos of one object each (see the module docstring); the class prototypes
  are fixed (seed 1234), so the train and test sets share them."""
  prototypes = np.random.default_rng(1234).standard_normal((num_classes, visual_dim))
  prototypes *= 2.0 / np.linalg.norm(prototypes, axis=-1, keepdims=True)
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, num_videos)
  shape = (num_videos, num_segments, grid, grid, visual_dim)
  visual = rng.standard_normal(shape).astype(np.float32)
  corners = rng.integers(0, grid - object_cells + 1, (num_videos, 2))  # (row, col)
  boxes = np.zeros((num_videos, num_segments, 1, 4), np.float32)
  for video, ((row, col), label) in enumerate(zip(corners, labels)):
    block = (video, slice(None), slice(row, row + object_cells), slice(col, col + object_cells))
    visual[block] += prototypes[label].astype(np.float32)
    x0, y0 = col * cell_px, row * cell_px
    boxes[video, :, 0] = (x0, y0, x0 + object_cells * cell_px, y0 + object_cells * cell_px)
  return Videos(
      visual_features=visual,
      audio_features=np.zeros((num_videos, num_segments, audio_dim), np.float32),
      labels=labels,
      boxes=boxes,
      frame_size=np.full((num_videos, 2), grid * cell_px, np.int64),
  )


def build_stan(videos: Videos, num_classes: int, seed: int = 0) -> stan.Stan:
  """An untrained small STAN (width 32, 2 heads, 1 layer) on the videos' feature sizes."""
  _, t, h, w, cv = videos.visual_features.shape
  config = synthetic.get_config("").model
  config.update(
      visual_backbone="features",
      audio_backbone="features",
      width=32,
      num_heads=2,
      num_layers=1,
      visual_feature_dim=cv,
      audio_feature_dim=videos.audio_features.shape[-1],
      grid_size=(h, w),
      num_segments=t,
  )
  return stan.Stan(config, num_classes, rngs=nnx.Rngs(seed))


def train_stan(
    videos: Videos, num_classes: int, *, steps: int = 200, batch_size: int = 32, seed: int = 0
) -> tuple[stan.Stan, float]:
  """(STAN trained with Adam on `videos`, its final training accuracy)."""
  model = build_stan(videos, num_classes, seed)
  optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, inputs, labels):
    def loss_fn(model):
      logits = model(inputs, train=True)["logits"]
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  inputs, rng = videos.inputs(), np.random.default_rng(seed)
  for _ in range(steps):
    rows = rng.choice(len(videos.labels), batch_size, replace=False)
    step(model, optimizer, {k: v[rows] for k, v in inputs.items()}, videos.labels[rows])
  model.eval()
  logits = nnx.jit(lambda m, x: m(x)["logits"])(model, inputs)
  return model, float(np.mean(np.argmax(logits, -1) == videos.labels))


def channel_first_cells(visual_features: np.ndarray) -> np.ndarray:
  """[V,T,h,w,Cv] -> [V, T*Cv, h, w] (channel t*Cv + c = segment t's feature c)."""
  v, t, h, w, cv = visual_features.shape
  return np.ascontiguousarray(visual_features.transpose(0, 1, 4, 2, 3).reshape(v, t * cv, h, w))


def probabilities_fn(model: stan.Stan, num_segments: int, audio_dim: int):
  """JAX function: visual [B, T*Cv, h, w] (channel-first cells) -> softmax probabilities [B,C]
  of the model on those features and a silent audio track."""

  def probabilities(cells_first):
    b, tc, h, w = cells_first.shape
    visual = cells_first.reshape(b, num_segments, tc // num_segments, h, w)
    visual = visual.transpose(0, 1, 3, 4, 2)  # [B,T,h,w,Cv]
    audio = jnp.zeros((b, num_segments, audio_dim), jnp.float32)
    logits = model.head_from_tokens(*model.embed(visual, audio))["logits"]
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  return probabilities


def keras_model(model: stan.Stan, videos: Videos, num_classes: int):
  """The trained model as a single-input Keras model (Quantus's TensorFlow interface):
  [B, T*Cv, h, w] -> softmax probabilities [B,C], through jax2tf with a polymorphic batch."""
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top  (the `peers` extra)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  _, t, h, w, cv = videos.visual_features.shape
  converted = tf.function(
      jax2tf.convert(
          probabilities_fn(model, t, videos.audio_features.shape[-1]),
          polymorphic_shapes=["(b, _, _, _)"],
          with_gradient=False,
      ),
      autograph=False,
  )

  class StanHead(keras.layers.Layer):
    """The converted head; `activation` tells Quantus the outputs are already softmax."""

    def __init__(self):
      super().__init__()
      self.activation = keras.activations.softmax

    def call(self, cells_first):
      return converted(cells_first)

    def compute_output_shape(self, input_shape):
      return (input_shape[0], num_classes)

  cells = keras.Input(shape=(t * cv, h, w), dtype="float32")
  return keras.Model(cells, StanHead()(cells))
