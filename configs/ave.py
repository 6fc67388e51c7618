r"""STAN on AVE (Tian et al., ECCV 2018): 28 audio-visual event classes, 10 one-second segments.

Build the data once (the build command says where to download what it lacks), then train:

  python -m data_pipelines.build --dataset=ave_features --manual_dir=/data/ave_release \
      --data_dir=/data/tfds
  python -m stt.main --config=configs/ave.py:features --config.data_dir=/data/tfds \
      --workdir=/tmp/stt_ave

  python -m data_pipelines.build --dataset=ave --manual_dir=/data/AVE_Dataset --data_dir=/data/tfds
  python -m stt.main --config=configs/ave.py:raw --config.data_dir=/data/tfds \
      --workdir=/tmp/stt_ave_raw

Arguments (comma-separated, any order; at most one of each group):
  input   `features` (default): the AVE feature release, VGG-19 pool5 maps + VGGish vectors; the
          grid and channel sizes are read from the built dataset.
          `raw`: the AVE videos decoded by the ave_videos builder, ResNet-18 + VGGish backbones.
  task    `recognition` (default): the video's event class.
          `localization`: per-segment labels (28 events + background), trained with them
          (segment head); reports and selects on `{split}/segment_accuracy`.
          `weak`: trained with video labels only; a segment is the predicted event where the
          model's "when" is above uniform, else background; `{split}/segment_accuracy`.
  `smoke` a tiny model and a handful of steps, for tests.
"""

import ml_collections
from ml_collections import config_dict

from configs import common
from data_pipelines import catalogue
from stt import tasks

# The inputs AVE has (the catalogue's records trained as dataset.name='ave'), and the tasks.
INPUTS = catalogue.inputs_of("ave")
TASKS = tasks.TASKS


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  parsed = common.parse_arg(arg, "configs/ave.py", groups={"input": INPUTS, "task": TASKS})
  input_kind = parsed["input"] or "features"
  task = parsed["task"] or "recognition"
  config = common.get_common_config()
  config.task = task
  config.dataset.name = "ave"
  config.dataset.input = input_kind
  config.dataset.num_segments = 10
  config.model.num_segments = 10

  if input_kind == "features":
    config.dataset.visual_dtype = "float16"  # how the builder stored the maps (ave_features.py)
    config.model.visual_backbone = "features"
    config.model.audio_backbone = "features"
    # Taken from the built dataset (stt/datasets.py), as is model.grid_size; set them only to
    # assert a shape.
    config.model.visual_feature_dim = config_dict.placeholder(int)
    config.model.audio_feature_dim = config_dict.placeholder(int)
    config.input.random_flip = False  # a flipped CNN map is not the map of a flipped frame
  else:
    common.use_raw_video(config)

  # Model and schedule for ~3.3k training videos: 52 steps per epoch at batch 64.
  config.model.width = 256
  config.model.num_heads = 4
  config.model.num_layers = 2
  config.model.dropout = 0.2
  config.batch_size = 64
  config.eval_batch_size = 64
  config.num_train_steps = 5000  # ~96 epochs
  config.log_every_steps = 50
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  config.optimizer.learning_rate = 3e-4
  config.optimizer.warmup_steps = 250
  config.optimizer.weight_decay = 1e-2

  if task == "localization":  # AVE's supervised event localization: C+1 labels per segment
    config.model.segment_head = True
    config.loss.segment_weight = 1.0
  elif task == "weak":  # AVE's weakly-supervised localization: video labels only in training;
    config.loss.segment_weight = 0.0  # segments come from the model's "when" (evaluate.py)

  if parsed["smoke"]:
    common.shrink_for_smoke(config, batch_size=8, eval_batch_size=128)
    if input_kind == "raw":
      common.use_tiny_backbones(config)
  return config
