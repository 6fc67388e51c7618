"""The main job end to end, as a user runs it: `python -m stt.main --config=... --workdir=...`.

The smoke dataset is generated and built once per session (tests/conftest.py).
"""

import json
import os
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from stt.explain import score_maps
from tests.conftest import REPO
from tests.conftest import REQUIRED_KEYS
from tests.conftest import main_command
from tests.conftest import run_main
from tests.conftest import subprocess_env


def test_smoke_run_writes_results(smoke_run):
  data_dir, workdir, stderr = smoke_run
  results = json.loads((workdir / "results.json").read_text())
  for key in REQUIRED_KEYS:
    assert key in results, key
  assert results["test/num_examples"] == 8 and results["val/num_examples"] == 8
  assert results["train/num_steps"] == 6
  # Accuracies and pointing scores are shares of their trials: 8 videos, or the spatial trials.
  spatial_trials = results["explain/attention/pointing_spatial_trials"]
  assert spatial_trials >= 8
  for key, trials in (
      ("test/accuracy", 8),
      ("val/accuracy", 8),
      ("explain/attention/pointing_temporal", 8),
      ("explain/attention/pointing_spatial", spatial_trials),
  ):
    assert 0.0 <= results[key] <= 1.0, key
    assert results[key] * trials == pytest.approx(round(results[key] * trials), abs=1e-6), key
  # 6 classes: the untrained loss is ~ln 6; a finite value that is not wildly off.
  assert 0.5 < results["train/loss"] < 3.0
  assert results["best_step"] in (3, 6)
  # The dataset is cached in the data dir, and TensorBoard event files were written.
  assert list(data_dir.glob("ave_videos/synthetic_*_t10_f1_s64/1.1.0/dataset_info.json"))
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  # The log is stt's progress and metrics, not Orbax's ~40 INFO lines per checkpoint.
  assert "Setting work unit notes" in stderr and "train/loss=" in stderr
  assert not [
      line
      for line in stderr.splitlines()
      if line.startswith("I") and "checkpoint_manager.py" in line
  ]


def test_a_relative_workdir_resumes_and_explains(smoke_run, tmp_path):
  """The README's command uses `--workdir=workdirs/synthetic`; Orbax restores only from absolute
  paths, so a relative workdir must work for resuming and for --mode=explain."""
  data_dir, finished, _ = smoke_run
  shutil.copytree(finished, tmp_path / "w")
  relative = os.path.relpath(tmp_path / "w", REPO)
  assert not os.path.isabs(relative)
  result = run_main(relative, data_dir)
  assert "Resuming from checkpoint at step 6" in result.stderr
  run_main(relative, data_dir, "--config.explain.explainers=('attention',)", "--mode=explain")
  # The reports went into the workdir the relative path names, and explain evaluated the
  # trained checkpoint: its attention pointing is the one training's final evaluation reported.
  assert (tmp_path / "w" / "explain" / "maps" / "attention.npz").is_file()
  results = json.loads((tmp_path / "w" / "results.json").read_text())
  trained = json.loads((finished / "results.json").read_text())
  assert results["explain/attention/pointing_spatial"] == pytest.approx(
      trained["explain/attention/pointing_spatial"], abs=1e-6
  )
  assert "explain/attention/spatial/positive_auc" in results


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    smoke_run, tmp_path
):
  """lr 0 at step 1, then a huge update at step 2: step 3's loss (of the state saved at 2) is
  NaN, so checkpoint 2 is set aside and checkpoint 1 is the last good one."""
  data_dir, _, _ = smoke_run
  workdir = tmp_path / "w"
  result = subprocess.run(
      main_command(
          workdir,
          data_dir,
          "--config.optimizer.learning_rate=1e30",
          "--config.optimizer.warmup_steps=4",
          "--config.optimizer.grad_clip_norm=1e30",
          "--config.checkpoint_every_steps=1",
          "--config.log_every_steps=100",
      ),
      cwd=REPO,
      env=subprocess_env(),
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert result.returncode == 3, result.stderr[-3000:]
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("stt: error: training loss is nan at step 3"), last_line
  assert f"the last good checkpoint (step 1) is kept in {workdir / 'checkpoints'}" in last_line
  assert "Lower optimizer.learning_rate" in last_line
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1", "2.diverged"]
  assert not (workdir / "results.json").exists()


def test_explain_mode_adds_every_explainer_and_writes_reports(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  before = json.loads((workdir / "results.json").read_text())
  # A model override the training did not have: explain uses the trained model (config.json).
  result = run_main(
      workdir,
      data_dir,
      "--config.explain.explainers=('attention','random','center')",
      "--config.model.width=16",
      "--mode=explain",
  )
  assert "the given config differs in model.width: 16 -> " in result.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert results["test/accuracy"] == before["test/accuracy"]  # training results are kept
  for name in ("attention", "random", "center"):
    for key in (
        "pointing_spatial",
        "pointing_temporal",
        "relevance_mass",
        "ciou_mean",
        "spatial/positive_auc",
        "spatial/negative_auc",
        "temporal/positive_auc",
        "temporal/negative_auc",
    ):
      value = results[f"explain/{name}/{key}"]
      assert value is not None and 0.0 <= value <= (90.0 if "auc" in key else 1.0), (name, key)
    # LVS's ciou is not measured on the synthetic set: every box is under a quarter of the frame
    # (its record's small_boxes), so a median-binarised map's cIoU is < 0.5 by construction.
    assert results.get(f"explain/{name}/ciou") is None, name
  # The intrinsic explainer's pointing equals what training's final evaluation reported.
  assert results["explain/attention/pointing_spatial"] == pytest.approx(
      before["explain/attention/pointing_spatial"]
  )
  # Chance levels of the pointing games on these annotations and the centre prior, in results
  # and as the last rows.
  for key in ("pointing_spatial", "pointing_temporal"):
    assert 0.0 < results[f"explain/chance/{key}"] < 1.0, key
  table = (workdir / "explain" / "tables.md").read_text().splitlines()
  assert table[0].startswith("| explainer | pointing_spatial") and len(table) >= 6
  assert table[5].startswith(f"| chance | {results['explain/chance/pointing_spatial']:.3f} |")
  center_prior = results["explain/center_prior/pointing_spatial"]
  assert 0.0 <= center_prior <= 1.0
  assert table[6].startswith(f"| center_prior | {center_prior:.3f} | — |")
  assert (workdir / "explain" / "tables.csv").read_text().count("\n") == 6
  assert (workdir / "explain" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # Explanation panels: the first num_panels (default 4) test videos, one PNG per explainer.
  panel_dirs = sorted((workdir / "explain" / "panels").iterdir())
  assert len(panel_dirs) == 4
  for directory in panel_dirs:
    assert sorted(p.name for p in directory.iterdir()) == [
        "attention.png",
        "center.png",
        "random.png",
    ]
    image = matplotlib.image.imread(directory / "attention.png")
    assert image.shape[0] > 200 and image.shape[1] > 600

  # The maps, in stt.explain.score_maps's format: rescored alone, they give the same figures.
  maps = np.load(workdir / "explain" / "maps" / "attention.npz")
  assert maps["where"].shape == (8, 10, 8, 8) and maps["when"].shape == (8, 10)
  assert sorted(maps.files) == [
      "explained_class",
      "frame_size",
      "segment_mask",
      "video_id",
      "when",
      "where",
  ]
  assert (maps["explained_class"] == -1).all()  # attention is class-agnostic
  (annotations,) = data_dir.glob("downloads/manual/synthetic_*/Annotations.txt")
  assert (
      score_maps.main(
          [
              "--maps",
              str(workdir / "explain" / "maps" / "attention.npz"),
              "--events",
              str(annotations),
              "--boxes",
              str(annotations.parent / "boxes.jsonl"),
              "--out",
              str(tmp_path / "metrics.json"),
          ]
      )
      == 0
  )
  rescored = json.loads((tmp_path / "metrics.json").read_text())
  for key in ("pointing_spatial", "pointing_temporal", "relevance_mass", "ciou_mean"):
    assert rescored[key] == pytest.approx(results[f"explain/attention/{key}"], abs=1e-6), key

  # Re-running the finished training keeps the explain figures of its (same) best checkpoint.
  run_main(workdir, data_dir)
  again = json.loads((workdir / "results.json").read_text())
  assert (
      again["explain/random/spatial/positive_auc"] == results["explain/random/spatial/positive_auc"]
  )


def test_explain_mode_perturbs_pixels_and_one_modality_when_configured(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  run_main(
      workdir,
      data_dir,
      "--config.explain.explainers=('attention',)",
      "--config.explain.perturbation_mode=pixel",
      "--config.explain.temporal_modality=audio",
      "--mode=explain",
  )
  pixel = json.loads((workdir / "results.json").read_text())
  run_main(workdir, data_dir, "--config.explain.explainers=('attention',)", "--mode=explain")
  feature = json.loads((workdir / "results.json").read_text())
  for key in (
      "spatial/positive_auc",
      "spatial/negative_auc",
      "temporal/positive_auc",
      "temporal/negative_auc",
  ):
    assert 0.0 <= pixel[f"explain/attention/{key}"] <= 90.0, key
  # Removing grey pixel blocks through the backbone is not removing backbone features, and
  # removing audio alone is not removing both modalities: the probability curves differ
  # (accuracy over 8 test videos is too coarse to tell).
  for test in ("spatial", "temporal"):
    key = f"explain/attention/{test}/positive_probability_auc"
    assert abs(pixel[key] - feature[key]) > 1e-3, test


def test_explain_mode_without_a_checkpoint_is_a_one_line_error(smoke_run, tmp_path):
  data_dir, finished, _ = smoke_run
  workdir = tmp_path / "w"
  shutil.copytree(finished, workdir)
  shutil.rmtree(workdir / "checkpoints")
  result = run_main(workdir, data_dir, "--mode=explain", expect_rc=2)
  assert "holds no checkpoint; train first with --mode=train" in result.stderr
  assert "Traceback" not in result.stderr


def test_training_writes_explanation_panels_to_tensorboard_at_each_evaluation(smoke_run):
  _, workdir, _ = smoke_run
  # The directory, not one file: a re-run of the workdir adds a second event file to it.
  accumulator = event_accumulator.EventAccumulator(
      str(workdir / "tensorboard"), size_guidance={"tensors": 0}
  )
  accumulator.Reload()
  panel_tags = [tag for tag in accumulator.Tags()["tensors"] if tag.startswith("val_explanations/")]
  assert len(panel_tags) == 4  # config.explain.num_panels val videos
  # Smoke: evaluations at steps 3 and 6; each writes every panel once.
  assert [event.step for event in accumulator.Tensors(panel_tags[0])] == [3, 6]
  # The record run info that tools such as stt.explain.video read.
  assert json.loads((workdir / "class_names.json").read_text())[0] == "red_circle"
  assert json.loads((workdir / "config.json").read_text())["model"]["grid_size"] == [8, 8]
