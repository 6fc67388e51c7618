"""`python -m stt.explain.video`: one video explained by the model of a trained workdir."""

import json

import av
from etils import epath
import jax
import matplotlib.image
import numpy as np
import pytest

from stt import datasets
from stt import input_pipeline
from stt.explain import explainers
from stt.explain import video


def _synthetic_mp4(data_dir, video_id):
  return next(epath.Path(data_dir).glob(f"downloads/manual/*/AVE/{video_id}.mp4"))


def _write_silent_video(path, seconds: float, fps: int = 5, size=(80, 48)):
  """H.264 without an audio track: a grey frame with a white square moving right."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    for i in range(round(seconds * fps)):
      image = np.full((size[1], size[0], 3), 90, np.uint8)
      x = (i * 3) % (size[0] - 10)
      image[19:29, x : x + 10] = 255
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
    container.mux(stream.encode())


def _frame_count_and_streams(path):
  with av.open(str(path)) as container:
    kinds = sorted(s.type for s in container.streams)
    frames = sum(1 for _ in container.decode(video=0))
  return frames, kinds


@pytest.fixture(scope="module")
def trained(smoke_run):
  data_dir, workdir, _ = smoke_run
  config, class_names, model = video.load_model(epath.Path(workdir))
  return data_dir, workdir, config, class_names, model


@pytest.fixture
def reuse_model(trained, monkeypatch):
  """`video.main` takes the trained fixture's model instead of restoring it again (~10 s of
  compiling and reading for each call); for the tests whose point is not the loading."""
  _, _, config, class_names, model = trained
  monkeypatch.setattr(video, "load_model", lambda workdir: (config, class_names, model))


def _record_of(config, data_dir, video_id):
  config.data_dir = str(data_dir)
  dataset = datasets.load(config)
  for split in ("train", "val", "test"):
    source = dataset.sources[split]
    for index in range(len(source)):
      record = source[index]
      if record["video_id"] in (video_id, video_id.encode()):
        return input_pipeline.to_numeric_example(record, index)
  raise AssertionError(video_id)


def test_generated_mp4_is_explained_exactly_as_the_dataset_pipeline_sees_it(
    trained, tmp_path, capsys
):
  data_dir, workdir, config, class_names, model = trained
  path = _synthetic_mp4(data_dir, "syn00005")
  rc = video.main([f"--workdir={workdir}", f"--video={path}", f"--out={tmp_path}"])
  assert rc == 0, capsys.readouterr().err
  explanation = json.loads((tmp_path / "explanation.json").read_text())
  assert explanation["num_seconds"] == 10 and explanation["has_audio"] is True
  top = explanation["top_k"]
  assert len(top) == 5 and [e["probability"] for e in top] == sorted(
      [e["probability"] for e in top], reverse=True
  )
  assert explanation["explained_class"] == top[0]["class"]

  # The same video through the builder's record and the model gives the same numbers.
  example = _record_of(config, data_dir, "syn00005")
  inputs = {key: example[key][None] for key in ("frames", "log_mel", "segment_mask")}
  outputs = model(inputs, train=False)
  probabilities = np.asarray(jax.nn.softmax(outputs["logits"][0]))
  assert top[0]["index"] == int(np.argmax(probabilities))
  assert top[0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)
  maps = explainers.attention(model, inputs)  # the command's default explainer
  np.testing.assert_allclose(explanation["when"], maps["when"][0], atol=1e-5)
  np.testing.assert_allclose(explanation["where"], maps["where"][0], atol=1e-5)
  np.testing.assert_allclose(
      explanation["when_audio"], outputs["explanations"]["when_audio"][0], atol=1e-5
  )
  assert np.asarray(explanation["where"]).shape == (10, 8, 8)
  assert sum(explanation["when"]) == pytest.approx(1.0, abs=1e-4)
  assert explanation["where_region"]["box_xyxy"] == [0, 0, 128, 128]  # square source video

  frames, kinds = _frame_count_and_streams(tmp_path / "overlay.mp4")
  source_frames, _ = _frame_count_and_streams(path)
  assert kinds == ["audio", "video"] and frames == source_frames
  panel = matplotlib.image.imread(tmp_path / "panel.png")
  assert panel.ndim == 3 and panel.shape[1] > 600


def test_video_without_audio_longer_than_the_model_window(trained, tmp_path, capsys, reuse_model):
  _, workdir, _, class_names, _ = trained
  path = tmp_path / "silent.mp4"
  _write_silent_video(path, seconds=13)
  out = tmp_path / "out"
  assert (
      video.main(
          [
              f"--workdir={workdir}",
              f"--video={path}",
              f"--out={out}",
              "--explainer=gradcam",
              f"--class_name={class_names[2]}",
              "--top_k=3",
          ]
      )
      == 0
  )
  explanation = json.loads((out / "explanation.json").read_text())
  summary = capsys.readouterr().out
  if explanation["top_k"][0]["class"] != class_names[2]:  # the summary names both
    assert f"explained {class_names[2]} (p=" in summary and "; top class " in summary
  assert explanation["has_audio"] is False and explanation["num_seconds"] == 13
  assert explanation["unexplained_tail_s"] == 0.0
  assert explanation["explained_class"] == class_names[2]
  assert [w["start_s"] for w in explanation["windows"]] == [0, 10]
  assert [w["num_seconds"] for w in explanation["windows"]] == [10, 3]
  assert len(explanation["top_k"]) == 3
  when = np.asarray(explanation["when"])
  assert when.shape == (13,)
  assert when[:10].sum() == pytest.approx(1.0, abs=1e-4)  # normalised within each window
  assert when[10:].sum() == pytest.approx(1.0, abs=1e-4)
  assert explanation["where_region"]["box_xyxy"] == [16, 0, 64, 48]  # centre square of 80x48
  frames, kinds = _frame_count_and_streams(out / "overlay.mp4")
  assert kinds == ["video"] and frames == 13 * 5


def test_a_last_part_shorter_than_a_segment_is_reported_unexplained(trained, tmp_path, reuse_model):
  _, workdir, _, _, _ = trained
  path = tmp_path / "short.mp4"
  _write_silent_video(path, seconds=3.4)  # the frame at 3.5 s, segment 3's centre, is missing
  assert video.main([f"--workdir={workdir}", f"--video={path}", f"--out={tmp_path / 'o'}"]) == 0
  explanation = json.loads((tmp_path / "o" / "explanation.json").read_text())
  assert explanation["num_seconds"] == 3 and len(explanation["when"]) == 3
  assert explanation["unexplained_tail_s"] == pytest.approx(0.4, abs=0.05)


def test_an_out_path_that_is_a_file_gets_a_one_line_error(trained, tmp_path, capsys):
  _, workdir, _, _, _ = trained
  (tmp_path / "o").write_text("a file")
  assert (
      video.main(
          [f"--workdir={workdir}", f"--video={tmp_path / 'v.mp4'}", f"--out={tmp_path / 'o'}"]
      )
      == 2
  )
  error = capsys.readouterr().err.strip()
  assert "is a file; give a directory" in error and len(error.splitlines()) == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not a video\n"), "cannot"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory; --video takes one video file"),
    ],
)
def test_unreadable_video_gets_a_one_line_error(
    trained, tmp_path, capsys, make, message, reuse_model
):
  _, workdir, _, _, _ = trained
  path = tmp_path / "clip.mp4"
  make(path)
  assert video.main([f"--workdir={workdir}", f"--video={path}", f"--out={tmp_path / 'o'}"]) == 2
  error = capsys.readouterr().err.strip()
  assert error.startswith("stt.explain.video: error:") and message in error
  assert len(error.splitlines()) == 1
  assert not (tmp_path / "o").exists()


def test_workdir_without_a_trained_run_gets_a_one_line_error(tmp_path, capsys):
  assert (
      video.main(
          [f"--workdir={tmp_path}", f"--video={tmp_path / 'v.mp4'}", f"--out={tmp_path / 'o'}"]
      )
      == 2
  )
  error = capsys.readouterr().err.strip()
  assert "has no config.json or class_names.json" in error and len(error.splitlines()) == 1
