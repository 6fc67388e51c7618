"""The AVE builder over a directory of real good, odd and broken media files: nothing aborts
the build and nothing is dropped silently (every row is built or in failures.jsonl); what the
decoder had to skip is kept (warnings.jsonl, the damaged_segments feature)."""

import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import ave_builder
from data_pipelines import log_mel
from tests import media_files

T, SIZE = 10, 32
SILENCE = np.log(log_mel.LOG_OFFSET)
W, H = 64, 48

# (video_id, split) of the rows that must be built ...
GOOD = {
    "good": "train",
    "burst6": "train",
    "vfr": "train",
    "corrupt": "train",
    "mpeg2": "val",
    "odd": "val",
    "noaudio": "val",
    "stereo48k": "test",
    "short": "test",
}
# ... and of those that must fail, with what their reason says.
BAD = {
    "text": ("train", "MediaError: (not a video file|cannot open)"),  # FFmpeg may read it as tty
    "random": ("train", "MediaError: cannot open"),
    "mostlycorrupt": ("train", "MediaError: corrupt: .* video packets read cannot be decoded"),
    "truncated": ("train", "MediaError: truncated or corrupt: video frames end at"),
    "image": ("val", "MediaError: not a video file .*png_pipe"),
    "empty": ("val", "MediaError: cannot open"),
    "missing": ("val", "file not found"),
    "audioonly": ("test", "MediaError: no video stream"),
    "nomoov": ("test", "MediaError: cannot open"),
}
# The built rows the decoder had notes about (warnings.jsonl), with what the notes say.
WARNED = {
    "corrupt": r"video: skipped \d+ undecodable packets .*audio: skipped \d+ undecodable packets",
    **{
        video_id: "no audio stream; using log-mel of silence"
        for video_id in ("vfr", "mpeg2", "odd", "noaudio")
    },
}


def _write_videos(video_dir):
  """One file per row of GOOD and BAD (none for 'missing') in `video_dir`, all named .mp4."""
  clip = media_files.write_colour_clip
  clip(video_dir / "good.mp4", T, width=W, height=H, fps=4)
  burst = clip(
      video_dir / "burst6.mp4",
      T,
      width=W,
      height=H,
      fps=4,
      tone_hz=1500.0,
      bursts_s=(6.25,),
      burst_length_s=0.5,
  )
  vfr_times = media_files.VFR_FRAME_TIMES_S
  media_files.write_media(
      video_dir / "vfr.mp4",
      media_files.second_colour_frames(vfr_times, W, H),
      frame_times_s=vfr_times,
  )
  media_files.corrupt_packets(burst, video_dir / "corrupt.mp4", 3.0, 3.5)
  media_files.write_mpeg2_program_stream(video_dir / "mpeg2.mp4", T, width=W, height=H)
  odd_frames = np.stack([media_files.quadrant_picture(97, 31)] * 30)
  media_files.write_media(video_dir / "odd.mp4", odd_frames, pix_fmt="yuv444p")
  clip(video_dir / "noaudio.mp4", T, width=W, height=H, fps=4, tone_hz=None)
  clip(
      video_dir / "stereo48k.mp4",
      3,
      width=W,
      height=H,
      fps=4,
      audio_rate=48000,
      tone_hz=2500.0,
      bursts_s=(1,),
  )
  clip(video_dir / "short.mp4", 4, width=W, height=H, fps=4)

  (video_dir / "text.mp4").write_text("Category&VideoID&Quality&StartTime&EndTime\n" * 30)
  (video_dir / "random.mp4").write_bytes(
      np.random.default_rng(1).integers(0, 256, 30000, np.uint8).tobytes()
  )
  media_files.corrupt_packets(burst, video_dir / "mostlycorrupt.mp4", 2.0, 8.0)
  faststart = clip(
      video_dir / "faststart.tmp",
      T,
      width=W,
      height=H,
      fps=4,
      container_options={"movflags": "faststart"},
  )
  media_files.truncate(faststart, video_dir / "truncated.mp4", keep_fraction=0.5)
  faststart.unlink()
  (video_dir / "image.mp4").write_bytes(media_files.png_bytes(media_files.quadrant_picture(W, H)))
  (video_dir / "empty.mp4").write_bytes(b"")
  media_files.write_media(
      video_dir / "audioonly.mp4", audio=media_files.tone_bursts(3, 44100, 440.0, [0])
  )
  media_files.truncate(burst, video_dir / "nomoov.mp4", keep_fraction=0.7)


def _write_ave_directory(root):
  _write_videos(root / "AVE")
  rows = {"train": [], "val": [], "test": []}
  splits = {**GOOD, **{video_id: split for video_id, (split, _) in BAD.items()}}
  for index, (video_id, split) in enumerate(splits.items()):
    rows[split].append(f"{('Bark', 'Speech')[index % 2]}&{video_id}&good&0&{T}")
  (root / "Annotations.txt").write_text(
      "\n".join(row for split_rows in rows.values() for row in split_rows) + "\n"
  )
  for split, file_name in (
      ("train", "trainSet.txt"),
      ("val", "valSet.txt"),
      ("test", "testSet.txt"),
  ):
    (root / file_name).write_text("\n".join(rows[split]) + "\n")
  return root


def _examples(summary):
  """{video_id: example} over all splits of the built dataset."""
  builder = tfds.builder_from_directory(str(summary.dataset_dir))
  return {
      example["video_id"].decode(): example
      for split in builder.info.splits
      for example in builder.as_data_source(split)
  }


def _failures(summary, file_name="failures.jsonl"):
  lines = (summary.dataset_dir / file_name).read_text().splitlines()
  return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
  return _write_ave_directory(tmp_path_factory.mktemp("bad_media") / "raw")


@pytest.fixture(scope="module")
def built(raw_dir, tmp_path_factory):
  """The build in this process (num_workers=1)."""
  return ave_builder.build(
      raw_dir,
      tmp_path_factory.mktemp("tfds_one"),
      tag="bad",
      num_segments=T,
      frame_size=SIZE,
      num_workers=1,
  )


def test_every_row_is_built_or_listed_with_a_reason(built):
  examples, failures = _examples(built), _failures(built)
  assert sum(built.built.values()) + built.failed == len(GOOD) + len(BAD)
  assert built.built == {
      split: list(GOOD.values()).count(split) for split in ("train", "val", "test")
  }
  assert built.failed == len(failures) == len(BAD)
  assert set(examples) == set(GOOD)
  assert sorted(failure["video_id"] for failure in failures) == sorted(BAD)
  for failure in failures:
    split, reason = BAD[failure["video_id"]]
    assert failure["split"] == split and failure["path"].endswith(f"AVE/{failure['video_id']}.mp4")
    assert re.match(reason, failure["reason"]), failure


def test_warnings_and_damaged_segments_are_kept(built):
  warnings = _failures(built, "warnings.jsonl")
  assert built.warned == len(warnings) == len(WARNED)
  assert sorted(w["video_id"] for w in warnings) == sorted(WARNED)
  order = [(("train", "val", "test").index(w["split"]), w["key"]) for w in warnings]
  assert order == sorted(order)  # by split, then key, as failures.jsonl
  for warning in warnings:
    assert warning["split"] == GOOD[warning["video_id"]]
    assert warning["path"].endswith(f"AVE/{warning['video_id']}.mp4")
    assert re.search(WARNED[warning["video_id"]], " ".join(warning["warnings"])), warning
  examples = _examples(built)
  # Garbage over [3.0, 3.5) s; inter-coded frames carry the damage to the end of the clip.
  assert examples["corrupt"]["damaged_segments"].tolist() == [False] * 3 + [True] * 7
  for video_id, example in examples.items():
    assert example["damaged_segments"].dtype == np.bool_
    assert example["damaged_segments"].any() == (video_id == "corrupt"), video_id


def test_mpeg2_program_stream_without_audio_is_built(built):
  example = _examples(built)["mpeg2"]
  assert not example["has_audio"] and example["segment_mask"].all()
  np.testing.assert_allclose(example["log_mel"], SILENCE, rtol=1e-6)
  assert tuple(example["frame_size"]) == (W, H)
  assert example["frames"][3, 0, 4:8].reshape(-1, 3).mean(axis=0) == pytest.approx(
      media_files.SECOND_COLOURS[3], abs=15
  )


def test_burst_inside_second_6_is_in_segment_6(built):
  for video_id in ("burst6", "corrupt"):  # corrupt: the same clip, garbage over [3.0, 3.5) s
    example = _examples(built)[video_id]
    energy = example["log_mel"].mean(axis=(1, 2)) - SILENCE
    assert int(np.argmax(energy)) == 6 and energy[6] > 0.3, video_id
    assert np.abs(np.delete(energy, 6)).max() < 0.02, video_id


def test_odd_short_vfr_and_no_audio_examples(built):
  examples = _examples(built)
  assert tuple(examples["odd"]["frame_size"]) == (97, 31)
  assert examples["odd"]["frames"].shape == (T, 1, SIZE, SIZE, 3)
  assert examples["short"]["segment_mask"].tolist() == [True] * 4 + [False] * 6
  assert not examples["short"]["frames"][4:].any()
  assert examples["vfr"]["segment_mask"].tolist() == [True] * 7 + [False] * 3
  top = examples["vfr"]["frames"][:7, 0, 4:8].reshape(7, -1, 3).mean(axis=1)  # [7, 3]
  shown = [int(np.argmin(np.abs(media_files.SECOND_COLOURS - c).sum(axis=1))) for c in top]
  assert shown == [second for second, _ in media_files.VFR_SHOWN_AT_HALF]
  assert not examples["noaudio"]["has_audio"] and examples["stereo48k"]["has_audio"]
  energy = examples["stereo48k"]["log_mel"].mean(axis=(1, 2)) - SILENCE
  assert int(np.argmax(energy)) == 1 and energy[1] > 0.3
  for video_id in ("good", "burst6", "corrupt"):
    top = examples[video_id]["frames"][:3, 0, 4:8].reshape(3, -1, 3).mean(axis=1)
    np.testing.assert_allclose(top, media_files.SECOND_COLOURS[:3], atol=15)


@pytest.mark.slow
def test_worker_processes_build_the_same(raw_dir, built, tmp_path_factory):
  again = ave_builder.build(
      raw_dir,
      tmp_path_factory.mktemp("tfds_two"),
      tag="bad",
      num_segments=T,
      frame_size=SIZE,
      num_workers=2,
  )
  assert again.built == built.built and again.failed == built.failed
  assert again.warned == built.warned
  assert [(f["video_id"], f["reason"]) for f in _failures(again)] == [
      (f["video_id"], f["reason"]) for f in _failures(built)
  ]
  assert [(w["video_id"], w["warnings"]) for w in _failures(again, "warnings.jsonl")] == [
      (w["video_id"], w["warnings"]) for w in _failures(built, "warnings.jsonl")
  ]
  examples, expected = _examples(again), _examples(built)
  assert set(examples) == set(expected)
  for video_id, example in examples.items():
    for name in (
        "frames",
        "log_mel",
        "segment_mask",
        "has_audio",
        "frame_size",
        "damaged_segments",
    ):
      np.testing.assert_array_equal(example[name], expected[video_id][name], err_msg=video_id)
