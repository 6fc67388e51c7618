"""The viewer's page data (stt/explain/viewer_data.py) against maps saved in the explain step's
.npz format (stt/explain/suite_reports.write_maps), the page files (viewer_page) and the suite page
(viewer_suite)."""

import json

from etils import epath
import numpy as np
import pytest

from configs import synthetic
from stt import trained_run
from stt.explain import pointing
from stt.explain import suite_reports
from stt.explain import view
from stt.explain import viewer_build
from stt.explain import viewer_data
from stt.explain import viewer_page
from stt.explain import viewer_suite

V, T, K, GRID, CLASSES = 5, 4, 2, (3, 4), 3
TOLERANCE = 2.0


def _arrays(seed: int = 0) -> dict:
  """Per-example outputs of two explainers on V videos, with every edge case of the real sets:
  a non-square frame, a padded segment, a video without boxes (Flickr maps, off-screen), an
  empty event."""
  rng = np.random.default_rng(seed)
  segment_mask = np.ones((V, T), bool)
  segment_mask[1, -1] = False  # padded
  boxes = np.zeros((V, T, K, 4), np.float32)
  box_mask = np.zeros((V, T, K), bool)
  boxes[:, :, 0] = [10, 20, 40, 50]
  box_mask[:, :2, 0] = True
  box_mask[2] = False  # no boxes at all
  box_mask[3, 1, 1], boxes[3, 1, 1] = True, [60, 0, 80, 20]
  frame_size = np.tile([[80, 60]], (V, 1))  # W > H: the crop is the middle 60 x 60 square
  frame_size[4] = [64, 64]
  annotations = {
      "label": np.array([0, 1, 2, 1, 0]),
      "segment_mask": segment_mask,
      "boxes": boxes,
      "box_mask": box_mask,
      "frame_size": frame_size,
      "event_start": np.array([0, 1, 2, 0, 3]),
      "event_end": np.array([2, 3, 2, 4, 4]),  # video 2: empty event
  }
  outputs = {}
  for name in ("gradcam", "random"):
    outputs[name] = {
        **annotations,
        "where": rng.random((V, T, *GRID)).astype(np.float32),
        "when": rng.random((V, T)).astype(np.float32),
        "explained_class": annotations["label"],
    }
  return outputs


@pytest.fixture(name="saved")
def _saved(tmp_path):
  """(maps read back from .npz files written by suite_reports.write_maps, the outputs, video ids)."""
  outputs = _arrays()
  source = [{"video_id": f"vid{i}".encode()} for i in range(V)]
  suite_reports.write_maps(epath.Path(tmp_path) / "maps", outputs, source)
  video_ids = np.array([f"vid{i}" for i in range(V)])
  maps = viewer_build.read_npz_by_video(epath.Path(tmp_path) / "maps", video_ids)
  return maps, outputs, video_ids


def _build(maps, outputs, video_ids, **overrides):
  probabilities = np.eye(CLASSES)[[0, 2, 2, 1, 1]] * 0.7 + 0.1
  kwargs = dict(
      video_ids=video_ids,
      annotations=outputs["gradcam"],
      probabilities=probabilities,
      maps=maps,
      class_names=["a", "b", "c"],
      tolerance_px=TOLERANCE,
  )
  return viewer_data.build_videos(**{**kwargs, **overrides})


def test_where_survives_the_round_trip_with_its_argmax(saved):
  maps, outputs, video_ids = saved
  _, details = _build(maps, outputs, video_ids)
  for row, detail in enumerate(details):
    entry = detail["explainers"]["gradcam"]
    where = outputs["gradcam"]["where"][row]
    mask = outputs["gradcam"]["segment_mask"][row]
    assert entry["grid"] == list(GRID)
    assert entry["where_scale"] == pytest.approx(where[mask].max())
    for t in range(T):
      quantised = np.asarray(entry["where"][t])
      if not mask[t]:
        assert quantised.max() == 0  # a padded segment draws nothing
        continue
      assert np.argmax(quantised) == np.argmax(where[t])
      expected = np.rint(where[t].ravel() / where[mask].max() * 255)
      np.testing.assert_array_equal(quantised, expected)


def test_pointing_agrees_with_the_pointing_game(saved):
  maps, outputs, video_ids = saved
  summaries, details = _build(maps, outputs, video_ids)
  out = outputs["random"]
  game = pointing.spatial_pointing(
      out["where"],
      out["boxes"],
      out["box_mask"],
      out["frame_size"],
      out["label"],
      TOLERANCE,
      segment_mask=out["segment_mask"],
  )
  hits = [h for d in details for h in d["explainers"]["random"]["hits"] if h is not None]
  assert len(hits) == game.num_trials
  assert np.mean(hits) == pytest.approx(game.overall)
  temporal = pointing.temporal_pointing(
      out["when"], out["segment_mask"], out["event_start"], out["event_end"], out["label"]
  )
  scored = [
      s["temporal_hit"]["random"] for s in summaries if s["temporal_hit"]["random"] is not None
  ]
  assert len(scored) == temporal.num_trials == V - 1  # video 2's event is empty
  assert np.mean(scored) == pytest.approx(temporal.overall)
  # The point is the game's pixel, as a fraction of the centred crop (x offset 10 of 80 x 60).
  x, y = pointing.point_of_map(out["where"][0, 0], (80, 60))
  assert details[0]["explainers"]["random"]["points"][0] == pytest.approx(
      [(x + 0.5 - 10) / 60, (y + 0.5) / 60], abs=1e-4
  )


def test_missing_boxes_padding_and_crop_coordinates(saved):
  maps, outputs, video_ids = saved
  summaries, details = _build(maps, outputs, video_ids)
  assert summaries[2]["spatial_hit_rate"] == {"gradcam": None, "random": None}
  assert details[2]["boxes"] == [[]] * T
  assert details[2]["explainers"]["gradcam"]["hits"] == [None] * T
  assert details[2]["event"] is None and summaries[2]["temporal_hit"]["gradcam"] is None
  assert details[1]["segment_mask"][-1] is False
  assert details[1]["explainers"]["gradcam"]["points"][-1] is None
  assert details[1]["explainers"]["gradcam"]["when"][-1] == 0.0
  # Box [10,20,40,50] of an 80 x 60 frame: the crop starts at x = 10 and is 60 wide.
  assert details[0]["boxes"][0] == [pytest.approx([0.0, 1 / 3, 0.5, 5 / 6], abs=1e-4)]
  assert details[3]["boxes"][1][1] == pytest.approx([5 / 6, 0.0, 7 / 6, 1 / 3], abs=1e-4)
  assert [s["correct"] for s in summaries] == [True, False, True, True, False]
  assert summaries[1]["predicted"] == 2 and summaries[1]["confidence"] == pytest.approx(0.8)


def test_a_model_without_maps_still_has_its_classes(saved):
  _, outputs, video_ids = saved
  summaries, details = _build({}, outputs, video_ids)
  assert [s["predicted"] for s in summaries] == [0, 2, 2, 1, 1]
  assert all(
      d["explainers"] == {} and s["spatial_hit_rate"] == {} for s, d in zip(summaries, details)
  )


def test_unlabelled_videos_have_no_correctness(saved):
  maps, outputs, video_ids = saved
  annotations = {**outputs["gradcam"], "label": np.full(V, -1)}
  summaries, _ = _build(maps, outputs, video_ids, annotations=annotations)
  assert all(s["correct"] is None and s["label"] == -1 for s in summaries)


def test_maps_are_matched_by_video_id_and_must_cover_every_video(saved, tmp_path):
  _, outputs, video_ids = saved
  reordered = viewer_build.read_npz_by_video(epath.Path(tmp_path) / "maps", video_ids[::-1])
  np.testing.assert_array_equal(reordered["gradcam"]["where"], outputs["gradcam"]["where"][::-1])
  with pytest.raises(viewer_build.ViewerError, match="no maps of 1 of the 2 videos.*'other'"):
    viewer_build.read_npz_by_video(epath.Path(tmp_path) / "maps", np.array(["vid0", "other"]))


def test_video_curves_are_saved_per_video(tmp_path):
  outputs = {"gradcam": {"label": np.zeros(3)}}
  for test in viewer_data.CURVE_TESTS:
    outputs["gradcam"][f"{test.replace('_', '/')}/probability"] = np.full((3, 10), 0.5)
  outputs["gradcam"]["spatial/positive/probability"] = np.arange(30.0).reshape(3, 10) / 30
  source = [{"video_id": f"v{i}"} for i in range(3)]
  video_ids = suite_reports.video_ids_of(outputs, source)
  suite_reports.write_video_curves(epath.Path(tmp_path), outputs, video_ids)
  curves = viewer_build.read_npz_by_video(epath.Path(tmp_path), np.array(["v2", "v0"]))
  np.testing.assert_allclose(curves["gradcam"]["spatial_positive"][0], np.arange(20, 30) / 30)


def _script_json(path: epath.Path, prefix: str) -> object:
  text = path.read_text()
  assert text.startswith(prefix)
  return json.loads(text[len(prefix) :].rstrip().removesuffix(";").removesuffix(")"))


def test_page_files(saved, tmp_path):
  maps, outputs, video_ids = saved
  summaries, details = _build(maps, outputs, video_ids)
  summaries[0]["id"] = "</script><b>"  # must not end the data script early
  header = viewer_data.page_header(
      title="t", class_names=["a", "b", "c"], explainers=list(maps), num_segments=T, has_frames=True
  )
  frames = np.zeros((T, 16, 16, 3), np.uint8)
  log_mel = np.random.default_rng(0).random((T, 96, 64))
  media = [(row, frames, log_mel if row else None) for row in range(V)]
  index = viewer_page.write_page(
      tmp_path / "viewer", header, summaries, details, media, thumbnail=8
  )
  directory = index.parent
  assert sorted(p.name for p in directory.iterdir()) == sorted(
      ["data", *viewer_page.ASSETS, "media"]
  )
  assert "<\\/script>" in (directory / "data/index.js").read_text()
  data = _script_json(directory / "data/index.js", "window.STT_VIEWER_INDEX = ")
  assert data["videos"][0]["id"] == "</script><b>"
  assert data["header"]["chunk_size"] == viewer_page.CHUNK_SIZE
  chunk = _script_json(directory / "data/chunk_0.js", "STT_VIEWER_CHUNK(0, ")
  assert [d["id"] for d in chunk] == [str(v) for v in video_ids]
  assert (directory / "media/0_frames.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG
  assert not (directory / "media/0_mel.jpg").exists() and (directory / "media/1_mel.jpg").exists()


def test_suite_page_links_each_cell_to_its_viewer(tmp_path):
  run = tmp_path / "stan" / "seed0"
  (run / "viewer").mkdir(parents=True)
  (run / "viewer" / "index.html").write_text("")
  rows = [
      {
          "table": "perturbation",
          "model": "stan",
          "explainer": "gradcam",
          "metric": "spatial/positive_auc",
          "split": "test",
          "randomised": None,
          "mean": 40.25,
          "std": 1.5,
          "n": 2,
      },
      {
          "table": "recognition",
          "model": "stan",
          "explainer": None,
          "metric": "accuracy",
          "split": "test",
          "randomised": None,
          "mean": 0.75,
          "std": 0.0,
          "n": 2,
      },
      {
          "table": "perturbation",
          "model": "late_fusion",
          "explainer": "gradcam",
          "metric": "spatial/positive_auc",
          "split": "test",
          "randomised": None,
          "mean": None,
          "std": None,
          "n": 0,
      },
  ]
  page = viewer_suite.write(
      epath.Path(tmp_path), rows, {"stan": [run], "late_fusion": [tmp_path / "late_fusion/seed0"]}
  ).read_text()
  assert '<a href="stan/seed0/viewer/index.html#explainer=gradcam">40.2' in page
  assert "± 1.5 (n=2)" in page
  assert '<a href="stan/seed0/viewer/index.html">0.750' in page
  assert "<td>—</td>" in page  # late_fusion has no viewer and no value: no link


def test_cli_bad_input_is_one_line(tmp_path, capsys):
  assert view.main([f"--workdir={tmp_path}"]) == view.EXIT_BAD_INPUT
  assert "has no config.json or class_names.json" in capsys.readouterr().err
  trained_run.save(tmp_path, synthetic.get_config("smoke"), ["a", "b"])
  assert view.main([f"--workdir={tmp_path}", "--max_videos=0"]) == view.EXIT_BAD_INPUT
  assert "max_videos must be at least 1; got 0" in capsys.readouterr().err
  assert view.main([f"--workdir={tmp_path}", "--dataset=nope"]) == view.EXIT_BAD_INPUT
  assert "dataset='nope'; known:" in capsys.readouterr().err


def test_suite_page_links_no_reference_row_and_no_empty_cell(tmp_path):
  run = tmp_path / "stan" / "seed0"
  (run / "viewer").mkdir(parents=True)
  (run / "viewer" / "index.html").write_text("")
  cell = {"table": "pointing", "model": "stan", "metric": "pointing_spatial", "split": "test"}
  rows = [
      {**cell, "explainer": "chance", "mean": 0.25, "std": 0.0, "n": 1},
      {**cell, "explainer": "rollout", "mean": None, "std": None, "n": 0},
  ]
  page = viewer_suite.write(epath.Path(tmp_path), rows, {"stan": [run]}).read_text()
  assert "<td>0.250 <span class=sd>± 0.000 (n=1)</span></td>" in page
  assert "Sanity checks" not in page  # no sanity rows, no table
  assert "<td>—</td>" in page and "#explainer=" not in page


def test_suite_page_shows_the_sanity_table_by_randomised_blocks(tmp_path):
  run = tmp_path / "stan" / "seed0"
  (run / "viewer").mkdir(parents=True)
  (run / "viewer" / "index.html").write_text("")
  cell = {"table": "sanity", "model": "stan", "explainer": "attention", "split": "test"}
  rows = [
      {
          **cell,
          "metric": "where_spearman",
          "randomised": ["classifier", "transformer"],
          "mean": 0.2,
          "std": 0.05,
          "n": 3,
      },
      {
          **cell,
          "metric": "where_spearman",
          "randomised": ["classifier"],
          "mean": 0.9,
          "std": 0.1,
          "n": 3,
      },
  ]
  page = viewer_suite.write(epath.Path(tmp_path), rows, {"stan": [run]}).read_text()
  assert "Sanity checks" in page and "<th>where_spearman</th>" in page
  assert "<td class=explainer>classifier, transformer</td>" in page
  assert '<a href="stan/seed0/viewer/index.html#explainer=attention">0.200' in page
  assert page.index("0.900") < page.index("0.200")  # by depth of the cascade, not input order
