r"""STAN on VGGSound: 309 audio-visual classes, ~200k 10 s YouTube clips.

Source: H. Chen, W. Xie, A. Vedaldi and A. Zisserman, "VGGSound: A Large-scale Audio-Visual
Dataset", ICASSP 2020 (arXiv:2004.14368); annotations at
https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (vggsound.csv: `ytid,start,label,split`, no
header, split train | test). The class list is read from vggsound.csv itself (its sorted labels,
309 of them) by data_pipelines/manifest_converters.py, and stored in the built dataset;
the trainer takes it from there. Our val split is 5 % of train, carved by a hash of the YouTube
id (manifest_converters.VAL_PERCENT); clips that were not downloaded are counted as failed.

Build the data once (the build command says where to download what it lacks), then train:

  python -m data_pipelines.build --dataset=vggsound --manual_dir=/data/vggsound \
      --data_dir=/data/tfds --num_workers=16
  python -m stt.main --config=configs/vggsound.py --config.data_dir=/data/tfds \
      --workdir=/tmp/stt_vggsound

At this size, build on Apache Beam (`pip install -e .[beam]`, docs/datasets.md), e.g. Dataflow:
  python -m data_pipelines.build --dataset=vggsound --manual_dir=gs://B/vggsound \
      --data_dir=gs://B/tfds --beam_runner=DataflowRunner --beam_num_workers=64 \
      --project=P --region=R --temp_location=gs://B/tmp --setup_file=./pyproject.toml

Arguments (comma-separated): `smoke` shrinks the model and the run, on 64 px frames (build with
--frame_size=64).
"""

import ml_collections

from configs import common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  smoke = common.parse_arg(arg, "configs/vggsound.py")["smoke"]
  config = common.get_common_config()
  config.dataset.name = "vggsound"  # built by data_pipelines.build --dataset=vggsound
  common.use_raw_video(config)

  # ~170k training clips: 660 steps per epoch at batch 256.
  config.model.width = 512
  config.model.num_heads = 8
  config.model.num_layers = 2
  config.model.dropout = 0.1
  config.batch_size = 256
  config.eval_batch_size = 256
  config.num_train_steps = 40000  # ~60 epochs
  config.log_every_steps = 100
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  config.optimizer.learning_rate = 5e-4
  config.optimizer.warmup_steps = 2000
  config.optimizer.weight_decay = 1e-2

  if smoke:
    common.shrink_raw_video_for_smoke(config)
  return config
