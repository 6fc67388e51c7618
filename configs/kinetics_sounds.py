r"""STAN on Kinetics-Sounds: the Kinetics classes that can be both seen and heard, 10 s clips.

Source: R. Arandjelović and A. Zisserman, "Look, Listen and Learn", ICCV 2017, section 4
(arXiv:1705.08168): 34 Kinetics classes chosen to be potentially manifested both visually and
aurally; 19k 10-second clips (15k train, 1.9k val, 1.9k test). The paper names them as in a
pre-release Kinetics. The released Kinetics-400 renamed four of them and does not
have three (typing, fingerpicking, patting), so a Kinetics-400 download gives 31 classes
(data_pipelines/kinetics_sounds_classes.py), the set later audio-visual papers call
Kinetics-Sounds (e.g. OGM-GE, CVPR 2022).

Build the data once (the build command says where to download what it lacks), then train:

  python -m data_pipelines.build --dataset=kinetics_sounds --manual_dir=/data/kinetics400 \
      --data_dir=/data/tfds --num_workers=16
  python -m stt.main --config=configs/kinetics_sounds.py --config.data_dir=/data/tfds \
      --workdir=/tmp/stt_ks

manual_dir holds the Kinetics-400 CSVs (train.csv, validate.csv or val.csv, test.csv; in it or
in manual_dir/annotations) and the downloaded clips anywhere below it, named
<youtube_id>_<time_start:06d>_<time_end:06d>.mp4 (data_pipelines/manifest_converters.py).

Arguments (comma-separated): `smoke` shrinks the model and the run, on 64 px frames (build with
--frame_size=64).
"""

import ml_collections

from configs import common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  smoke = common.parse_arg(arg, "configs/kinetics_sounds.py")["smoke"]
  config = common.get_common_config()
  config.dataset.name = "kinetics_sounds"  # built by data_pipelines.build --dataset=kinetics_sounds
  common.use_raw_video(config)

  # ~21k training clips: 330 steps per epoch at batch 64.
  config.model.width = 256
  config.model.num_heads = 4
  config.model.num_layers = 2
  config.model.dropout = 0.2
  config.batch_size = 64
  config.eval_batch_size = 64
  config.num_train_steps = 20000  # ~60 epochs
  config.log_every_steps = 100
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.optimizer.learning_rate = 3e-4
  config.optimizer.warmup_steps = 1000
  config.optimizer.weight_decay = 1e-2

  if smoke:
    common.shrink_raw_video_for_smoke(config)
  return config
