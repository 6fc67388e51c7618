r"""STAN on the embedded synthetic audio-visual event set (generated on first use, no download).

  python -m stt.main --config=configs/synthetic.py --workdir=/tmp/stt_synthetic
  python -m stt.main --config=configs/synthetic.py:smoke --workdir=/tmp/stt_smoke

Arguments (comma-separated): `smoke` shrinks the data and the run to seconds, for tests.
"""

import ml_collections

from configs import common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  args = {a for a in arg.split(",") if a}
  unknown = args - {"smoke"}
  if unknown:
    raise ValueError(f"configs/synthetic.py: unknown arguments {sorted(unknown)}; known: smoke")
  config = common.get_common_config()
  config.dataset.name = "synthetic"
  config.dataset.frame_size = 64
  config.dataset.num_segments = 10
  config.dataset.frames_per_segment = 1
  config.synthetic = ml_collections.ConfigDict(dict(
      num_classes=6, num_train=600, num_val=100, num_test=100, seed=0,
      frame_height=128, frame_width=128, fps=8))

  config.model.visual_backbone = "resnet_tiny"
  config.model.audio_backbone = "vggish_tiny"
  config.model.width = 64
  config.model.num_heads = 4
  config.model.num_layers = 1
  config.model.num_segments = 10
  config.model.grid_size = (8, 8)  # resnet_tiny on 64×64 frames

  config.batch_size = 32
  config.eval_batch_size = 32
  config.num_train_steps = 400
  config.log_every_steps = 20
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 40

  if "smoke" in args:
    config.synthetic.update(num_train=24, num_val=8, num_test=8)
    config.batch_size = 8
    config.eval_batch_size = 8
    config.num_train_steps = 6
    config.log_every_steps = 2
    config.eval_every_steps = 3
    config.checkpoint_every_steps = 3
    config.optimizer.warmup_steps = 2
  return config
