r"""STAN on the embedded synthetic audio-visual event set (generated on first use, no download).

  python -m stt.main --config=configs/synthetic.py --workdir=/tmp/stt_synthetic
  python -m stt.main --config=configs/synthetic.py:smoke --workdir=/tmp/stt_smoke

Arguments (comma-separated): `smoke` shrinks the data and the run to seconds, for tests;
`hard1` | `hard2` | `hard3` trains on that level of the harder set (data_pipelines/
synthetic_hard.py: off-screen sources, silent look-alikes, noise and motion) instead; `hard2`
gives every model frame-level features (`model.frame_features='stack'`, stt/models/encoders.py).
"""

import ml_collections

from configs import common
from data_pipelines import synthetic
from data_pipelines import synthetic_hard


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  parsed = common.parse_arg(
      arg, "configs/synthetic.py", groups={"hard": ("hard1", "hard2", "hard3")}
  )
  smoke = parsed["smoke"]
  config = common.get_common_config()
  config.dataset.name = "synthetic"
  # The generator's settings and build sizes are owned by the data layer (one place, so the
  # build CLI and this config find the same cached set).
  config.dataset.update(synthetic.BUILD_SIZES)
  config.synthetic = ml_collections.ConfigDict(synthetic.default_settings("smoke" if smoke else ""))
  if parsed["hard"]:
    level = int(parsed["hard"][-1])
    config.dataset.name = "synthetic_hard"
    config.dataset.update(synthetic_hard.BUILD_SIZES[level])
    config.synthetic_hard = ml_collections.ConfigDict(
        synthetic_hard.default_settings(level, "smoke" if smoke else "")
    )
    if level == 2:  # the pulses' synchrony with the sound is within a segment: keep it
      config.model.frame_features = "stack"
      config.model.frame_groups = config.dataset.frames_per_segment

  config.model.visual_backbone = "resnet_tiny"
  config.model.audio_backbone = "vggish_tiny"
  config.model.width = 64
  config.model.num_heads = 4
  config.model.num_layers = 1
  config.model.num_segments = 10

  config.batch_size = 32
  config.eval_batch_size = 32
  config.num_train_steps = 400
  config.log_every_steps = 20
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 40

  if parsed["hard"]:  # the synthetic_hard suite's 54 runs: half the steps (docs/reproducing.md)
    config.num_train_steps = 200

  if smoke:
    config.batch_size = 8
    config.eval_batch_size = 8
    config.num_train_steps = 6
    config.log_every_steps = 2
    config.eval_every_steps = 3
    config.checkpoint_every_steps = 3
    config.optimizer.warmup_steps = 2
  return config
