"""The suites of stt.reproduce: which rows (a model, or a STAN variant) run with which config,
overrides and explainers. A row's runs, commands and execution: stt/reproduce_runs.py.
"""

from __future__ import annotations

import dataclasses

from stt import models
from stt.explain import explainers as explainer_lib

COMPARED_MODELS = tuple(models.MODELS)  # every model, in stt.models.MODELS' order
EXPLAINERS = ("attention", "rollout", "gradient", "gradcam", "grad_x_input", "random", "center")


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the tables: a config file (with its argument) and overrides."""

  name: str
  config: str
  overrides: tuple[tuple[str, str], ...] = ()


RUN_MODES = ("train", "explain", "sanity")  # stt.main's --mode steps a suite's run may take


@dataclasses.dataclass(frozen=True)
class Suite:
  rows: tuple[Row, ...]
  explainers: tuple[str, ...] = EXPLAINERS
  extra: tuple[str, ...] = ()  # flags for every stt.main command of the suite
  # The --mode of every run: ("train",) trains, selects on val and tests; its tables are
  # Table 1 and the validation table (the model's own maps on val), no explanation tables.
  modes: tuple[str, ...] = RUN_MODES


# Settings a compared model needs whatever the config: the joint transformer's modalities meet
# only through its bottleneck tokens, which takes two layers (stt/models/joint_transformer.py).
MODEL_OVERRIDES = {"joint_transformer": (("model.num_layers", "2"),)}
# On the synthetic set (8x8 cells) the joint transformer attends over 655 tokens: its training
# alone took longer than the other five rows together on 2 CPU cores. Visual tokens of 2x2 cells
# (175 tokens) make its step ~7x cheaper (docs/reproducing.md).
SYNTHETIC_MODEL_OVERRIDES = {"joint_transformer": (("model.token_pool", "2"),)}
# Flags of every run of the CPU-sized suites: one example panel per explainer (rendering 4 took
# ~20 s of a 55 s explanation run; the tables do not read them).
SYNTHETIC_EXTRA = ("--config.explain.num_panels=1",)


def _model_rows(config: str, names=COMPARED_MODELS, model_overrides=None) -> tuple[Row, ...]:
  model_overrides = model_overrides or {}
  return tuple(
      Row(
          name,
          config,
          (("model.name", name),) + MODEL_OVERRIDES.get(name, ()) + model_overrides.get(name, ()),
      )
      for name in names
  )


# issue 27's harder set (data_pipelines/synthetic_hard.py): every model on each level's own set,
# rows `<model>_level<L>`, the level's config configs/synthetic.py:hard<L> (200 training steps,
# half the synthetic suite's, so that its 3 x 6 x 3 runs come nearer an hour on 2 cores;
# docs/reproducing.md). Its extra tables: stt/reproduce_hard_tables.py.
HARD_LEVELS = (1, 2, 3)


def _hard_rows(names=COMPARED_MODELS) -> tuple[Row, ...]:
  return tuple(
      Row(f"{row.name}_level{level}", row.config, row.overrides)
      for level in HARD_LEVELS
      for row in _model_rows(f"configs/synthetic.py:hard{level}", names, SYNTHETIC_MODEL_OVERRIDES)
  )


SUITES = {
    "smoke": Suite(
        _model_rows("configs/synthetic.py:smoke", ("stan", "late_fusion")),
        explainers=("attention", "gradient", "random"),
        extra=("--config.explain.num_panels=0",),
    ),
    "synthetic": Suite(
        _model_rows("configs/synthetic.py", model_overrides=SYNTHETIC_MODEL_OVERRIDES),
        extra=SYNTHETIC_EXTRA,
    ),
    "synthetic_ablations": Suite(
        (
            Row("stan", "configs/synthetic.py"),
            Row(
                "stan_spatial_query_none",
                "configs/synthetic.py",
                (("model.spatial_query", "none"),),
            ),
            Row(
                "stan_spatial_query_learned",
                "configs/synthetic.py",
                (("model.spatial_query", "learned"),),
            ),
            Row(
                "stan_temporal_pool_mean",
                "configs/synthetic.py",
                (("model.temporal_pool", "mean"),),
            ),
            Row(
                "stan_pool_values_contextual",
                "configs/synthetic.py",
                (("model.pool_values", "contextual"),),
            ),
            # Why STAN's "where" points worse than AVEL's (issue 29): each row moves STAN's
            # spatial attention one step towards AVEL's (docs/design.md §2).
            Row(
                "stan_additive_scoring",
                "configs/synthetic.py",
                (("model.spatial_scoring", "additive"),),
            ),
            Row(
                "stan_no_position_in_attention",
                "configs/synthetic.py",
                (("model.spatial_position_embedding", "False"),),
            ),
            Row("stan_one_head", "configs/synthetic.py", (("model.spatial_heads", "1"),)),
            Row(
                "stan_direct_alpha_loss",
                "configs/synthetic.py",
                (("model.spatial_aux_weight", "1.0"),),
            ),
            Row(  # all four: alpha is AVEL's (one additive head over position-free cells)
                "stan_avel_where",
                "configs/synthetic.py",
                (
                    ("model.spatial_scoring", "additive"),
                    ("model.spatial_position_embedding", "False"),
                    ("model.spatial_heads", "1"),
                    ("model.spatial_aux_weight", "1.0"),
                ),
            ),
        ),
        extra=SYNTHETIC_EXTRA,
        modes=("train",),  # the evidence is the validation table
    ),
    # The joint transformer at one token per cell, against the `synthetic` suite's 2 x 2-cell
    # tokens (the same config otherwise): does the coarse "where" explain its lower pointing?
    # Its "where" is rollout's, so the runs are explained (pointing on test).
    "joint_token_pool": Suite(
        (
            Row(
                "joint_transformer_token_pool_1",
                "configs/synthetic.py",
                (("model.name", "joint_transformer"),)
                + MODEL_OVERRIDES["joint_transformer"]
                + (("model.token_pool", "1"),),
            ),
        ),
        explainers=("rollout", "random"),
        extra=SYNTHETIC_EXTRA,
        modes=("train", "explain"),
    ),
    "synthetic_hard": Suite(_hard_rows(), extra=SYNTHETIC_EXTRA),
    "ave_features": Suite(
        _model_rows("configs/ave.py:features")
        + tuple(
            Row(
                f"{name}_localization",
                "configs/ave.py:features,localization",
                (("model.name", name),) + MODEL_OVERRIDES.get(name, ()),
            )
            for name in COMPARED_MODELS
        )
        + (Row("stan_weak", "configs/ave.py:features,weak"),)
    ),
    "kinetics_sounds": Suite(_model_rows("configs/kinetics_sounds.py")),
    "vggsound": Suite(_model_rows("configs/vggsound.py")),
}


def explainers_for(row: Row, explainers: tuple[str, ...]) -> tuple[str, ...]:
  """The suite's explainers that the row's model can have."""
  name = dict(row.overrides).get("model.name", "stan")
  model = models.MODELS[name]
  return tuple(e for e in explainers if explainer_lib.EXPLAINERS[e].applies_to(model))
