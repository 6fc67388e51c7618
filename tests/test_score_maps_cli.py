"""Bad input to `python -m stt.explain.score_maps`: one line on stderr, exit 2, no metrics.json."""

import json
import pathlib

import numpy as np
import pytest

from stt.explain import score_maps

ANNOTATIONS = """Category&VideoID&Quality&StartTime&EndTime
Dog&vidA&good&1&3
Cat&vidB&good&0&2
"""
BOXES = [
    {"video_id": "vidA", "segment": 0, "frame_size": [100, 100], "boxes": [[0, 0, 50, 50]]},
    {"video_id": "vidB", "segment": 1, "frame_size": [100, 100], "boxes": [[0, 0, 50, 50]]},
]


def _maps(**overrides) -> dict:
  """Two videos, T=4: where peaks top-left (inside the boxes), when peaks in segment 2."""
  where = np.zeros((2, 4, 2, 2), np.float32)
  where[:, :, 0, 0] = 1.0
  when = np.full((2, 4), 0.1, np.float32)
  when[:, 2] = 0.9
  return {"video_id": np.array(["vidA", "vidB"]), "where": where, "when": when, **overrides}


def _args(directory: pathlib.Path, maps=None, boxes_name="boxes.jsonl", out="metrics.json"):
  np.savez(directory / "maps.npz", **(_maps() if maps is None else maps))
  (directory / "Annotations.txt").write_text(ANNOTATIONS)
  (directory / boxes_name).write_text("\n".join(json.dumps(record) for record in BOXES))
  return [
      "--maps",
      str(directory / "maps.npz"),
      "--events",
      str(directory / "Annotations.txt"),
      "--boxes",
      str(directory / boxes_name),
      "--out",
      str(directory / out),
  ]


def _fails_with(args, capsys) -> str:
  """The single stderr line of a run that must exit 2."""
  assert score_maps.main(args) == score_maps.EXIT_BAD_INPUT
  captured = capsys.readouterr()
  assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
  assert captured.out == ""
  return captured.err


def test_out_that_is_a_directory_is_one_line(tmp_path, capsys):
  args = _args(tmp_path)
  (tmp_path / "metrics.json").mkdir()
  assert "is a directory" in _fails_with(args, capsys)


def test_out_whose_folder_cannot_be_created_is_one_line(tmp_path, capsys):
  args = _args(tmp_path)
  (tmp_path / "blocker").write_text("a file, not a folder")
  args[-1] = str(tmp_path / "blocker" / "sub" / "metrics.json")
  assert str(tmp_path / "blocker") in _fails_with(args, capsys)
  if pathlib.Path("/proc/self").is_dir():  # Linux: /proc takes no new folders, even as root
    args[-1] = "/proc/nope/metrics.json"
    assert "/proc/nope" in _fails_with(args, capsys)


def test_out_missing_folders_are_created(tmp_path, capsys):
  args = _args(tmp_path, out="new/deeper/metrics.json")
  assert score_maps.main(args) == 0
  assert json.loads((tmp_path / "new/deeper/metrics.json").read_text())["num_videos"] == 2


def test_scalar_video_id_is_one_line(tmp_path, capsys):
  args = _args(tmp_path, _maps(video_id=np.array("vidA")))
  error = _fails_with(args, capsys)
  assert "maps.npz: video_id must be a 1-D array [V]" in error and "shape ()" in error


def test_unknown_video_id_is_printed_as_a_plain_string(tmp_path, capsys):
  args = _args(tmp_path, _maps(video_id=np.array(["vidA", "nope123"])))
  error = _fails_with(args, capsys)
  assert "video id 'nope123'" in error and "np.str_" not in error


def test_boxes_errors_name_the_users_file(tmp_path, capsys):
  args = _args(tmp_path, boxes_name="my_boxes.txt")
  (tmp_path / "my_boxes.txt").write_text('{"video_id": "vidA"}\n')
  error = _fails_with(args, capsys)
  assert f'{tmp_path / "my_boxes.txt"}:1: bad boxes record' in error
  assert "boxes.jsonl" not in error
  args[args.index("--boxes") + 1] = str(tmp_path / "absent" / "boxes.jsonl")
  assert "absent/boxes.jsonl: no such file" in _fails_with(args, capsys)


def test_boxes_with_any_file_name_are_scored(tmp_path, capsys):
  args = _args(tmp_path, boxes_name="my_boxes.txt")
  assert score_maps.main(args) == 0
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["pointing_spatial"] == 1.0 and metrics["pointing_spatial_trials"] == 2


def test_object_video_id_is_one_line_naming_the_file(tmp_path, capsys):
  args = _args(tmp_path, _maps(video_id=np.array(["vidA", "vidB"], object)))
  error = _fails_with(args, capsys)
  assert "maps.npz: video_id is an object array" in error and "np.asarray(ids, str)" in error
  assert "allow_pickle" not in error


@pytest.mark.parametrize(
    "content, message",
    [
        ("not numpy at all\n", "x.txt: not a .npz file written by numpy.savez"),
        (None, "x.txt: a .npy file"),
    ],
)
def test_maps_that_are_not_npz_are_one_line(tmp_path, capsys, content, message):
  args = _args(tmp_path)
  if content is None:
    with open(tmp_path / "x.txt", "wb") as file:
      np.save(file, np.zeros(3))
  else:
    (tmp_path / "x.txt").write_text(content)
  args[1] = str(tmp_path / "x.txt")
  error = _fails_with(args, capsys)
  assert message in error and "allow_pickle" not in error


@pytest.mark.parametrize("key, count", [("where", 3), ("when", 1)])
def test_non_finite_maps_are_one_line(tmp_path, capsys, key, count):
  maps = _maps()
  maps[key] = maps[key].copy()
  maps[key].reshape(-1)[:count] = [np.nan, np.inf, -np.inf][:count]
  error = _fails_with(_args(tmp_path, maps), capsys)
  assert f"maps.npz: {key} has {count} non-finite value" in error


def test_non_finite_values_in_padded_segments_are_ignored(tmp_path, capsys):
  mask = np.ones((2, 4), bool)
  mask[:, 3] = False
  maps = _maps(segment_mask=mask)
  maps["where"][:, 3] = np.nan
  maps["when"][:, 3] = -np.inf
  assert score_maps.main(_args(tmp_path, maps)) == 0


def test_all_padded_segments_are_no_trials(tmp_path, capsys):
  args = _args(tmp_path, _maps(segment_mask=np.zeros((2, 4), bool)))
  assert score_maps.main(args) == 0
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  for name in ("pointing_temporal", "pointing_spatial", "localization"):
    assert metrics[f"{name}_trials"] == 0
  assert metrics["pointing_temporal"] is None and metrics["pointing_spatial"] is None
  assert metrics["relevance_mass"] is None and metrics["ciou"] is None
  # vidB's only boxed segment (1) padded: one spatial trial left, vidB still a temporal trial.
  mask = np.ones((2, 4), bool)
  mask[1, 1] = False
  assert score_maps.main(_args(tmp_path, _maps(segment_mask=mask))) == 0
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["pointing_spatial_trials"] == metrics["localization_trials"] == 1
  assert metrics["pointing_temporal_trials"] == 2
