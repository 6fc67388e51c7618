r"""STAN on your own clips: a CSV manifest built with `python -m data_pipelines.build`.

  python -m data_pipelines.build --dataset=manifest --manifest=/data/my_clips.csv \
      --tag=my_clips --data_dir=/data/tfds --num_workers=8
  python -m stt.main --config=configs/manifest.py:tag=my_clips --config.data_dir=/data/tfds \
      --workdir=/tmp/stt_my_clips

The manifest's format (path,label[,start,end][,split]) is in data_pipelines/manifest_format.py;
the class list is its sorted labels, stored in the built dataset.

Arguments (comma-separated): `tag=NAME` (required) is the build's --tag; `smoke` shrinks the
model and the run, on 64 px frames (build with --frame_size=64).
"""

import ml_collections

from configs import common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  parsed = common.parse_arg(arg, "configs/manifest.py", keys=("tag",))
  if not parsed["tag"]:
    raise ValueError(
        "configs/manifest.py needs tag=NAME, the --tag the manifest was built with: "
        "--config=configs/manifest.py:tag=NAME"
    )
  config = common.get_common_config()
  config.dataset.name = "manifest"
  config.dataset.tag = parsed["tag"]
  common.use_raw_video(config)

  # A model and schedule for a few thousand clips; override with --config.KEY=VALUE.
  config.model.width = 256
  config.model.num_heads = 4
  config.model.num_layers = 2
  config.model.dropout = 0.2
  config.batch_size = 64
  config.eval_batch_size = 64
  config.num_train_steps = 5000
  config.log_every_steps = 50
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  config.optimizer.learning_rate = 3e-4
  config.optimizer.warmup_steps = 250
  config.optimizer.weight_decay = 1e-2

  if parsed["smoke"]:
    common.shrink_raw_video_for_smoke(config)
  return config
