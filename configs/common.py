"""Defaults shared by every dataset config, and the one parser of config arguments.

A config is data: this package imports nothing from `stt`. Dataset configs override what
differs. The model's fields and defaults are `default_model_config()`; the model and backbone
names are the tables of stt/models (`MODELS`, `VISUAL_BACKBONES`, `AUDIO_BACKBONES`).
"""

import ml_collections
from ml_collections import config_dict


def parse_arg(
    arg: str,
    config_file: str,
    *,
    groups: dict | None = None,
    flags: tuple = ("smoke",),
    keys: tuple = (),
) -> dict:
  """Parses the `:a,b,key=value` argument of a config file.

  groups: {group: allowed values}, at most one value of each (None when not given); flags:
  bare words (True when given); keys: `key=value` settings (None when not given).
  E.g. parse_arg("raw,smoke", "configs/ave.py", groups={"input": ("features", "raw")}) ->
  {"input": "raw", "smoke": True}. Raises ValueError naming the file and what it knows.
  """
  groups = groups or {}
  words = [a.strip() for a in arg.split(",") if a.strip()]
  settings = dict(word.split("=", 1) for word in words if "=" in word)
  bare = [word for word in words if "=" not in word]
  known_words = set(flags).union(*groups.values())
  unknown = sorted({w for w in bare if w not in known_words} | (settings.keys() - set(keys)))
  if unknown:
    known = [f"{group} {'|'.join(values)}" for group, values in groups.items()]
    known += [f"{key}=NAME" for key in keys] + list(flags)
    raise ValueError(f"{config_file}: unknown arguments {unknown}; known: {', '.join(known)}")
  parsed = {}
  for group, values in groups.items():
    given = [w for w in bare if w in values]
    if len(set(given)) > 1:
      raise ValueError(f"{config_file}: give one {group}, got {given}")
    parsed[group] = given[0] if given else None
  parsed.update({flag: flag in bare for flag in flags})
  parsed.update({key: settings.get(key) for key in keys})
  return parsed


def default_model_config() -> ml_collections.ConfigDict:
  """All model fields with their defaults (the tiny CPU variant on 64x64 frames)."""
  config = ml_collections.ConfigDict()
  config.name = "stan"  # a key of stt.models.MODELS
  config.visual_backbone = "resnet_tiny"  # a key of stt.models.backbones.VISUAL_BACKBONES
  config.audio_backbone = "vggish_tiny"  # a key of stt.models.backbones.AUDIO_BACKBONES
  config.visual_feature_dim = 512  # Cv of precomputed maps, used when visual_backbone='features'
  config.audio_feature_dim = 128  # Ca of precomputed vectors, used when audio_backbone='features'
  # 'mean' averages a segment's F frames; 'stack' keeps its time course in frame_groups (= F)
  # channel groups, audio likewise (stt/models/encoders.py), for every model alike.
  config.frame_features = "mean"
  config.frame_groups = 1
  # Pretrained backbone files (docs/pretrained.md), loaded by pretrained.load_backbone_weights:
  # torchvision/timm ResNet-18/50 (.safetensors, or .pth with torch) for resnet18/resnet50;
  # VGGish (vggish_model.ckpt, or the torchvggish port) for audio_backbone='vggish'.
  config.visual_weights = config_dict.placeholder(str)  # None: random init
  config.audio_weights = config_dict.placeholder(str)  # None: random init
  config.width = 128  # D
  config.num_heads = 4
  config.num_layers = 1
  config.mlp_ratio = 2
  config.dropout = 0.1
  config.spatial_query = "audio"  # 'audio' | 'learned' | 'none'
  # STAN only, the ablations of its "where" (issue 29; docs/design.md §2). How the spatial
  # attention scores a cell: 'dot' (scaled dot product per head) | 'additive' (AVEL's
  # w^T tanh(W_v v + W_a a), per head).
  config.spatial_scoring = "dot"
  config.spatial_heads = 0  # heads of STAN's spatial attention at the same width; 0: num_heads
  # STAN only: add the learned cell-position embedding to the cells before the spatial
  # attention (False: alpha can follow the cells' content only, as AVEL's).
  config.spatial_position_embedding = True
  # STAN only: > 0 adds AVEL's direct path from the loss to alpha, a linear classifier on the
  # mean over valid segments of the attended v_hat_t, its cross-entropy added with this weight.
  config.spatial_aux_weight = 0.0
  config.temporal_pool = "attention"  # 'attention' | 'mean'
  # What the "when" pooling averages: 'contextual' = the transformer outputs h_t (every h_t
  # sees the whole video, so beta need not point at the evidence); 'local' = the segment's own
  # tokens (a_t, v_hat_t), with beta still scored from h_t, so the classifier sees only what
  # beta selects.
  config.pool_values = "local"
  config.segment_head = False
  # joint_transformer only: the fusion-bottleneck tokens through which its audio and visual
  # streams exchange information (MBT's; 0: none, the streams meet only in the mean logits).
  config.num_bottlenecks = 4
  # joint_transformer only: MBT's fusion layer L_f (0-based): layers below it attend within each
  # modality, layers from it on exchange through the bottlenecks (num_layers: no fusion but the
  # mean of the two streams' logits). Cross-modal exchange needs num_layers - fusion_layer >= 2.
  config.fusion_layer = 0
  # joint_transformer only: each visual token is the mean of a token_pool x token_pool block of
  # the visual map's cells (1: a token per cell); attention costs O(tokens^2).
  config.token_pool = 1
  config.dtype = "float32"  # compute dtype: 'float32' | 'bfloat16'; params stay float32
  config.num_segments = 10  # T, size of the temporal position embedding
  # (h, w) of the visual map. None: derived when the dataset is opened (stt.datasets.load),
  # from the backbone's stride and dataset.frame_size, or from precomputed features' shape.
  config.grid_size = config_dict.placeholder(tuple)
  return config


def get_common_config() -> ml_collections.ConfigDict:
  """Training, input, checkpoint, evaluation and model defaults."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # 'recognition': the video's event class | 'localization': per-segment event-or-background
  # labels, trained with segment labels | 'weak': per-segment labels, trained on video labels only.
  config.task = "recognition"
  # Where built TFDS datasets live. None: $TFDS_DATA_DIR, else ~/tensorflow_datasets.
  config.data_dir = ml_collections.config_dict.placeholder(str)

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = ""  # set by the dataset config
  # dataset.name='manifest' only: the --tag the clips were built with (data_pipelines.build).
  config.dataset.tag = ""
  # 'raw': decoded frames + log-mel, for the backbones | 'features': precomputed feature maps and
  # vectors (AVE's release), for visual_backbone = audio_backbone = 'features'.
  config.dataset.input = "raw"
  config.dataset.num_segments = 10  # T
  config.dataset.frames_per_segment = 1  # F
  config.dataset.frame_size = 224  # S: frames are S×S after resize + centre crop
  config.dataset.build_workers = 2  # processes that decode videos while building

  config.input = ml_collections.ConfigDict()
  config.input.num_workers = 0  # grain mp_prefetch worker processes (0 = in-process)
  # Batches read ahead, each by its own thread, in the process and in each worker (>= 1).
  config.input.prefetch_buffer_size = 2
  config.input.random_flip = True
  # Hold the train split in device memory and gather each batch there (stt/resident_input.py):
  # for precomputed features, which a host pipeline cannot feed an accelerator fast enough. The
  # whole split goes on every device; raw input only without random_flip.
  config.input.device_resident = False

  config.batch_size = 32  # global, across all devices and hosts
  config.eval_batch_size = 64
  config.num_train_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2  # the last N are kept, plus the best by validation accuracy

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.end_learning_rate_factor = 0.01
  config.optimizer.weight_decay = 1e-4
  config.optimizer.grad_clip_norm = 1.0
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999

  config.loss = ml_collections.ConfigDict()
  config.loss.segment_weight = 0.0  # > 0 adds the per-segment loss (needs model.segment_head)
  config.loss.label_smoothing = 0.0

  # task='weak': a segment is predicted as the video's class where the model's "when" is at least
  # event_threshold x uniform (1 / valid segments), else as background.
  config.localization = ml_collections.ConfigDict(dict(event_threshold=1.0))

  config.explain = ml_collections.ConfigDict()
  config.explain.pointing_tolerance_px = 15.0
  # Explainers evaluated by --mode=explain (stt/explain/explainers.py has the full list).
  config.explain.explainers = (
      "attention",
      "rollout",
      "gradcam",
      "grad_x_input",
      "random",
      "center",
  )
  # Perturbation tests: 'feature' sets removed cells/segments of the backbone outputs to 0;
  # 'pixel' sets removed frame blocks to the ImageNet mean and log-mel to 0 (raw input only) and
  # reruns the backbones. The temporal test removes segments of 'both' | 'audio' | 'visual'.
  config.explain.perturbation_mode = "feature"
  config.explain.temporal_modality = "both"
  # What a removed cell/segment becomes, each baseline its own tests: 'zero' the removal value
  # above (keys explain/<e>/<test>/<order>_auc), 'road' ROAD's noisy linear imputation from its
  # neighbours (Rong et al. 2022; feature mode only; keys explain/<e>/road/<test>/<order>_auc),
  # with noise std road_noise x the std of the video's features. ROAD's dense solves cost far more
  # than the zero removal (docs/design.md §5): add it where the time is there, e.g. the suite.
  config.explain.perturbation_baselines = ("zero",)
  config.explain.road_noise = 0.01
  # Explanation panels (frames + "where", "when" over the spectrogram) of this many examples:
  # of val in TensorBoard at each evaluation, of test as PNGs by --mode=explain. 0: none.
  config.explain.num_panels = 4
  # Training and --mode=explain write <workdir>/viewer/index.html (stt/explain/view.py).
  config.explain.viewer = True
  # The set --mode=explain evaluates: '' the run's test split, 'vggss' VGG-SS (built by
  # data_pipelines.build --dataset=vggss at explain.annotated_frame 'middle' | 'frame125'). The
  # field's cIoU@0.5 / AUC variants: gt_geometry 'reference' | 'aligned', median_rule 'gt' | 'ge'
  # (stt/explain/sound_source_benchmark.py; the defaults are LVS's protocol).
  config.explain.dataset = ""
  # Several sets in one --mode=explain run, each into its own keys and report dir (e.g.
  # ('', 'vggss', 'flickr_soundnet'): the test split, then both annotation sets); when given,
  # explain.dataset stays ''.
  config.explain.datasets = ()
  config.explain.annotated_frame = "middle"
  config.explain.gt_geometry = "reference"
  config.explain.median_rule = "gt"

  # --mode=sanity: the parameter randomisation test (stt/explain/sanity.py) of these explainers
  # (those the model can have; `random` and `center` do not read the model and are skipped) on
  # the first num_videos test videos (0: all; they are held in device memory for all the
  # evaluations: T x F uint8 frames a raw video); the re-initialised weights come from `seed`.
  config.sanity = ml_collections.ConfigDict(
      dict(
          explainers=("attention", "rollout", "gradient", "gradcam", "grad_x_input"),
          num_videos=128,
          seed=1234,
      )
  )

  # Device mesh (data x fsdp). fsdp > 1 splits state arrays of >= fsdp_min_size elements over
  # groups of that many devices; the rest stay replicated.
  config.mesh = ml_collections.ConfigDict(dict(fsdp=1, fsdp_min_size=2**18))

  # The model fields, with full-size backbones.
  config.model = default_model_config()
  config.model.visual_backbone = "resnet18"
  config.model.audio_backbone = "vggish"
  return config


def use_raw_video(config: ml_collections.ConfigDict) -> None:
  """Decoded 10 s clips in one-second segments, ResNet-18 + VGGish on 224x224 frames."""
  config.dataset.input = "raw"
  config.dataset.num_segments = 10
  config.dataset.frames_per_segment = 1
  config.dataset.frame_size = 224
  config.model.num_segments = 10
  config.model.visual_backbone = "resnet18"
  config.model.audio_backbone = "vggish"


def use_tiny_backbones(config: ml_collections.ConfigDict) -> None:
  """The tiny backbones on 64x64 frames (raw input), for smoke runs."""
  config.dataset.frame_size = 64
  config.model.visual_backbone = "resnet_tiny"
  config.model.audio_backbone = "vggish_tiny"


def shrink_for_smoke(
    config: ml_collections.ConfigDict, *, batch_size: int, eval_batch_size: int
) -> None:
  """A tiny model and four steps, evaluated and checkpointed every two: for tests."""
  config.model.width = 32
  config.model.num_heads = 2
  config.model.num_layers = 1
  config.batch_size = batch_size
  config.eval_batch_size = eval_batch_size
  config.num_train_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.optimizer.warmup_steps = 1


def shrink_raw_video_for_smoke(config: ml_collections.ConfigDict) -> None:
  """The tiny backbones on 64x64 frames, a tiny model and four steps: for tests."""
  use_tiny_backbones(config)
  shrink_for_smoke(config, batch_size=4, eval_batch_size=8)
