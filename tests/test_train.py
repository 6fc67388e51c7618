"""The trainer in-process, as the Flax examples test theirs: `train_step` and `train_and_evaluate`.

The data (and, to compare with, a command-line run) come from the session's smoke run
(tests/conftest.py); no subprocess is started here.
"""

import functools
import json
import logging
import shutil

import jax
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from stt import datasets
from stt import evaluation_modes
from stt import input_pipeline
from stt import sharding
from stt import state as state_lib
from stt import train
from stt import train_step
from tests.conftest import REQUIRED_KEYS


def _smoke_config(data_dir):
  config = synthetic_config.get_config("smoke")
  config.data_dir = str(data_dir)
  return config


def test_train_step_lowers_the_loss_on_a_fixed_batch(smoke_run):
  """Eight jitted steps on one batch of 8 videos: the model fits it."""
  data_dir, _, _ = smoke_run
  config = _smoke_config(data_dir)
  config.num_train_steps = 8  # the learning-rate schedule's length
  dataset = datasets.load(config)
  mesh = sharding.make_mesh(config)
  local_batch = next(
      iter(
          input_pipeline.train_dataset(
              dataset.sources["train"],
              per_host_batch_size=config.batch_size,
              seed=0,
              random_flip=False,
              num_workers=0,
              prefetch_buffer_size=1,
          )
      )
  )
  batch = input_pipeline.make_global_batch(local_batch, sharding.batch_sharding(mesh))
  graphdef, state, _ = state_lib.create_state(config, dataset.num_classes, mesh)
  step = jax.jit(functools.partial(train_step.train_step, graphdef, config=config))

  losses = []
  for _ in range(config.num_train_steps):
    state, metrics = step(state, batch)  # metrics of the state before the update
    assert np.isfinite(metrics["grad_norm"]) and metrics["grad_norm"] > 0
    losses.append(float(metrics["loss"]))
  # The untrained model is near chance on 6 classes (ln 6 = 1.79) ...
  assert losses[0] == pytest.approx(np.log(dataset.num_classes), abs=0.5)
  # ... and after a few updates the same batch costs clearly less.
  assert losses[-1] < 0.7 * losses[0], losses
  assert min(losses[-3:]) < min(losses[:3]), losses


def test_train_and_evaluate_in_process_equals_the_command_line_run(smoke_run, tmp_path):
  """`train.train_and_evaluate` in this process: same results as `python -m stt.main`."""
  data_dir, cli_workdir, _ = smoke_run
  results = train.train_and_evaluate(_smoke_config(data_dir), str(tmp_path))
  written = json.loads((tmp_path / "results.json").read_text())
  expected = json.loads((cli_workdir / "results.json").read_text())
  assert written.keys() == expected.keys()
  assert written["best_step"] == expected["best_step"] == results["best_step"]
  for key in REQUIRED_KEYS + ("test/loss", "val/loss"):
    assert written[key] == pytest.approx(expected[key], abs=1e-6), key
    assert results[key] == pytest.approx(written[key], abs=1e-6), key


def test_rerunning_a_finished_run_in_process_resumes_and_reports_the_same(
    smoke_run, tmp_path, caplog
):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  before = json.loads((workdir / "results.json").read_text())
  caplog.set_level(logging.INFO)
  results = train.train_and_evaluate(_smoke_config(data_dir), str(workdir))
  assert "Resuming from checkpoint at step 6" in caplog.text
  assert results["train/num_steps"] == 6 and results["best_step"] == before["best_step"]
  for key in REQUIRED_KEYS:
    assert results[key] == pytest.approx(before[key], abs=1e-6), key


# Slow: 150 training steps (50-80 s on 2 cores) kept the README's test command over 10 minutes.
@pytest.mark.slow
def test_trained_attention_points_better_than_random_and_chance(smoke_run, tmp_path):
  """150 steps (seconds once compiled) fit the 24 smoke videos; then STAN's own attention finds
  the event object and the event segments more often than the `random` explainer and than the
  pointing games' chance levels (seeds 0, 1 and 2: spatial 0.29-0.53 against random 0.08 and
  chance 0.17; temporal 0.88 against 0.38 and 0.48)."""
  data_dir, _, _ = smoke_run
  config = _smoke_config(data_dir)
  config.update(
      num_train_steps=150, eval_every_steps=150, checkpoint_every_steps=150, log_every_steps=50
  )
  config.optimizer.warmup_steps = 10
  config.explain.explainers = ("attention", "random")
  trained = train.train_and_evaluate(config, str(tmp_path))
  assert trained["train/loss"] < 0.1 and trained["test/accuracy"] >= 0.5
  results = evaluation_modes.explain_best(config, str(tmp_path))
  for game, margin in (("pointing_spatial", 0.05), ("pointing_temporal", 0.2)):
    attention = results[f"explain/attention/{game}"]
    assert attention > results[f"explain/random/{game}"] + margin, game
    assert attention > results[f"explain/chance/{game}"] + margin, game


# Slow: two smoke trainings in this process (~40 s on 2 cores).
@pytest.mark.slow
def test_a_device_resident_train_split_trains_exactly_as_the_host_pipeline(smoke_run, tmp_path):
  data_dir, _, _ = smoke_run
  results = {}
  for resident in (False, True):
    config = _smoke_config(data_dir)
    config.input.random_flip = False  # the resident split has no host augmentation
    config.input.device_resident = resident
    results[resident] = train.train_and_evaluate(config, str(tmp_path / str(resident)))
  assert results[True].keys() == results[False].keys()
  for key in REQUIRED_KEYS + ("test/loss", "val/loss"):
    assert results[True][key] == pytest.approx(results[False][key], abs=1e-6), key
