"""The Flickr-SoundNet build through the build CLI, from small files in the release's formats.

Images are 64x48 px JPEGs (PIL), audio 16 kHz mono 16-bit WAVs (`wave`), T=6 segments at 32 px.
Each annotation holds three annotators' boxes on the 256-px scale (tests/vggss_files.py's XML,
the third box narrowed so that the boxes cover under half the image): [0,0,128,128] twice and
[128,128,192,256], i.e. [0,0,32,24] twice and [32,24,48,48] in the 64x48 frame (x * 64/256,
y * 48/256).

Ids (flickr_test.csv, CRLF, 1001 listed twice):
  1001  image + 3 s audio: audio [0,3) s, segments 0-2 valid, middle 1.5 s -> segment 1
  1002  image + 12 s audio, a tone only in [6,7) s: the T=6 s centred on 6 s are [3,9) s,
        all valid, the middle -> segment 3, and the tone is in segment 3
  1003  image, no audio file                 -> failures.jsonl
  1004  image + audio, no Annotations/1004.xml -> failures.jsonl
  1005  a 4 s video 1005.mp4 (64x48)          -> segments 0-3 valid, the middle -> segment 2
"""

import json
import wave

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from data_pipelines import flickr_soundnet_builder
from data_pipelines.dataset_spec import Decode
from stt.explain import sound_source_benchmark
from tests import clip_files
from tests import vggss_files
from tests.test_vggss_builder import run_build

T, S = 6, clip_files.FRAME_SIZE
COLOUR = (30, 60, 220)
BOXES_256 = [[0, 0, 128, 128], [0, 0, 128, 128], [128, 128, 192, 256]]
BOXES_PX = [[0, 0, 32, 24], [0, 0, 32, 24], [32, 24, 48, 48]]


def _write_wav(path, seconds: int, tone_s: tuple[int, int] | None = None):
  t = np.arange(seconds * 16000) / 16000
  waveform = 0.3 * np.sin(2 * np.pi * 440 * t)
  if tone_s is not None:
    waveform[(t < tone_s[0]) | (t >= tone_s[1])] = 0.0
  path.parent.mkdir(parents=True, exist_ok=True)
  with wave.open(str(path), "wb") as file:
    file.setnchannels(1)
    file.setsampwidth(2)
    file.setframerate(16000)
    file.writeframes((waveform * 32767).astype("<i2").tobytes())


def _write_image(path):
  path.parent.mkdir(parents=True, exist_ok=True)
  PIL.Image.fromarray(np.full((48, 64, 3), COLOUR, np.uint8)).save(path, quality=95)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("flickr")
  raw = root / "raw"
  annotations = vggss_files.write_flickr(raw, ("1001", "1002", "1003", "1005"))
  for path in annotations.glob("*.xml"):
    path.write_text(path.read_text().replace("<xmax>256</xmax>", "<xmax>192</xmax>"))
  (raw / "metadata" / "flickr_test.csv").write_bytes(
      b"1001\r\n1002\r\n1003\r\n1004\r\n1005\r\n" b"1001\r\n"
  )
  for image_id in ("1001", "1002", "1003", "1004"):
    _write_image(raw / "frames" / f"{image_id}.jpg")
  _write_wav(raw / "audio" / "1001.wav", 3)
  _write_wav(raw / "audio" / "1002.wav", 12, tone_s=(6, 7))
  _write_wav(raw / "audio" / "1004.wav", 3)
  clip_files.write_clip(raw / "videos" / "1005.mp4", 4)
  data_dir = root / "tfds"
  status, stdout, stderr = run_build(
      "--dataset=flickr_soundnet",
      f"--manual_dir={raw}",
      f"--data_dir={data_dir}",
      f"--num_segments={T}",
      f"--frame_size={S}",
  )
  assert status == 0, stderr
  dataset_dir = flickr_soundnet_builder.dataset_dir(data_dir, Decode(T, 1, S))
  examples = {
      example["video_id"].decode(): example
      for example in tfds.builder_from_directory(str(dataset_dir)).as_data_source("test")
  }
  return dataset_dir, stdout, examples


def test_summary_lists_every_defect(built):
  dataset_dir, stdout, _ = built
  lines = stdout.strip().splitlines()
  assert lines[-1] == (
      f"flickr_soundnet: built 3 (train=0, val=0, test=3), skipped 0, failed 2 -> {dataset_dir}"
  )
  assert lines[-2] == (
      "flickr_test.csv: 5 ids (duplicate ids 1, ids without annotation 1, ids "
      "without media 1, from video 1, degenerate boxes 0, more than max boxes 0)"
  )
  failures = [
      json.loads(line) for line in (dataset_dir / "failures.jsonl").read_text().splitlines()
  ]
  reasons = {failure["video_id"]: failure["reason"] for failure in failures}
  assert set(reasons) == {"1003", "1004"}
  assert "no audio file" in reasons["1003"] and "1004.xml" in reasons["1004"]


def test_boxes_are_the_annotators_in_frame_pixels_at_the_annotated_segment(built):
  _, _, examples = built
  for image_id, segment, valid in (("1001", 1, 3), ("1002", 3, 6), ("1005", 2, 4)):
    example = examples[image_id]
    assert list(example["frame_size"]) == [64, 48]
    assert example["label"] == 0 and example["event_start"] == example["event_end"] == 0
    np.testing.assert_array_equal(example["segment_mask"], np.arange(T) < valid)
    expected_mask = np.zeros((T, flickr_soundnet_builder.MAX_BOXES), bool)
    expected_mask[segment, :3] = True
    np.testing.assert_array_equal(example["box_mask"], expected_mask, err_msg=image_id)
    np.testing.assert_allclose(example["boxes"][segment, :3], BOXES_PX, err_msg=image_id)
    assert not example["boxes"][np.arange(T) != segment].any()


def test_the_still_image_fills_the_valid_segments_and_the_audio_is_centred(built):
  _, _, examples = built
  still = examples["1001"]
  assert still["frames"].shape == (T, 1, S, S, 3)
  np.testing.assert_allclose(still["frames"][:3].reshape(-1, 3).mean(0), COLOUR, atol=4)
  assert not still["frames"][3:].any()
  centred = examples["1002"]["log_mel"]  # the tone of [6,7) s is segment 3 of [3,9) s
  loudest = centred.reshape(T, -1).mean(-1)
  silence = np.log(0.01)  # log_mel.LOG_OFFSET of a zero waveform
  np.testing.assert_allclose(np.delete(loudest, 3), silence, rtol=1e-6)
  assert loudest[3] > silence + 0.5


def test_a_map_equal_to_the_consensus_scores_ciou_1(built):
  _, _, examples = built
  names = ("1001", "1002", "1005")
  boxes = np.stack([examples[n]["boxes"] for n in names])
  box_mask = np.stack([examples[n]["box_mask"] for n in names])
  frame_size = np.stack([examples[n]["frame_size"] for n in names])
  consensus = sound_source_benchmark.flickr_gt_map(np.asarray(BOXES_256))
  assert sorted(np.unique(consensus)) == [0.0, 0.5, 1.0]  # the references' consensus map
  where = np.zeros((len(names), T, 224, 224), np.float32)
  where[box_mask.any(-1)] = consensus
  result = sound_source_benchmark.box_field_scores(
      where, boxes, box_mask, frame_size, ground_truth="consensus"
  )
  assert (result["field_ciou"], result["field_ciou_mean"], result["field_trials"]) == (1.0, 1.0, 3)
  # A map of the first box only (two annotators: consensus 1, 112 x 112 px at 224) against the
  # consensus (+ the third box, 56 x 112 px, at 0.5): 12544 / (12544 + 0.5 * 6272) = 0.8;
  # against the union of the boxes 12544 / 18816 = 2/3.
  where[box_mask.any(-1)] = consensus == 1.0
  result = sound_source_benchmark.box_field_scores(
      where, boxes, box_mask, frame_size, ground_truth="consensus"
  )
  assert result["field_ciou_mean"] == pytest.approx(0.8)
  union = sound_source_benchmark.box_field_scores(where, boxes, box_mask, frame_size)
  assert union["field_ciou_mean"] == pytest.approx(2 / 3)


def test_missing_list_says_what_to_download(tmp_path):
  status, _, stderr = run_build(
      "--dataset=flickr_soundnet", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'out'}"
  )
  assert status == 2 and "flickr_test.csv" in stderr and "Localizing-Visual-Sounds" in stderr
