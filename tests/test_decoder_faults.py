"""A decoder that crashes its process (SIGSEGV) or hangs fails its own clip, not the build.

The faults come from tests/decoder_faults/sitecustomize.py, loaded by the decoding child
processes through PYTHONPATH: `crash_*` clips kill their process with SIGSEGV, `hang_*` clips sleep
for an hour. Every other clip, before and after the faults, must be built exactly as in a build
without faults, with one and with two decode processes.
"""

import json
import multiprocessing
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import decode_pool
from data_pipelines import manifest_builder
from data_pipelines.dataset_spec import Decode
from tests import clip_files
from tests.test_manifest_builder import run_build

T, S = clip_files.NUM_SEGMENTS, clip_files.FRAME_SIZE
TIMEOUT_S = 3
# (video id, split) in manifest order: faults first in a split (found while looking for the
# split's first decodable clip), in the middle, and with clips decoded after them.
ROWS = [
    ("dog_0", "train"),
    ("crash_train", "train"),
    ("dog_1", "train"),
    ("hang_train", "train"),
    ("dog_2", "train"),
    ("dog_3", "train"),
    ("dog_4", "train"),
    ("crash_val", "val"),
    ("cat_0", "val"),
    ("cat_1", "val"),
    ("cat_2", "test"),
]
FAULTS = {
    "crash_train": "decoder crashed (killed by SIGSEGV)",
    "crash_val": "decoder crashed (killed by SIGSEGV)",
    "hang_train": f"timed out after {TIMEOUT_S} s",
}
FAULTS_SPEC = ",".join(f"{video_id}:{video_id.split('_')[0]}" for video_id in FAULTS)
FAULTS_DIR = os.path.join(os.path.dirname(__file__), "decoder_faults")


def _inject_faults(monkeypatch):
  """Processes started from now on crash or hang on the FAULTS clips (decoder_faults/)."""
  monkeypatch.setenv("STT_TEST_DECODER_FAULTS", FAULTS_SPEC)
  monkeypatch.setenv(
      "PYTHONPATH",
      os.pathsep.join(
          [FAULTS_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
      ),
  )


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("faults") / "raw"
  lines = ["path,label,split"]
  for index, (video_id, split) in enumerate(ROWS):
    colour = (40 + 15 * index, 200 - 10 * index, 30)
    clip_files.write_clip(root / "clips" / f"{video_id}.mp4", 3, colour)
    lines.append(f"clips/{video_id}.mp4,{'cat' if video_id.startswith('cat') else 'dog'},{split}")
  (root / "manifest.csv").write_text("\n".join(lines) + "\n")
  return root


@pytest.fixture(scope="module")
def no_faults(raw_dir, tmp_path_factory):
  return manifest_builder.build(
      raw_dir / "manifest.csv",
      tmp_path_factory.mktemp("no_faults"),
      tag="m",
      num_segments=T,
      frame_size=S,
      num_workers=2,
  )


def _examples(dataset_dir):
  """{video_id: example} over all splits."""
  builder = tfds.builder_from_directory(str(dataset_dir))
  return {
      example["video_id"].decode(): example
      for split in builder.info.splits
      for example in builder.as_data_source(split)
  }


def _failures(dataset_dir):
  return [json.loads(line) for line in (dataset_dir / "failures.jsonl").read_text().splitlines()]


def _assert_faults_fail_alone(dataset_dir, no_faults):
  failures = _failures(dataset_dir)
  assert {f["video_id"]: f["reason"] for f in failures} == FAULTS
  assert {f["video_id"]: f["split"] for f in failures} == {
      video_id: split for video_id, split in ROWS if video_id in FAULTS
  }
  examples, expected = _examples(dataset_dir), _examples(no_faults.dataset_dir)
  assert set(expected) == {video_id for video_id, _ in ROWS}
  assert set(examples) == set(expected) - set(FAULTS)
  for video_id, example in examples.items():
    assert example.keys() == expected[video_id].keys()
    for name, value in example.items():
      np.testing.assert_array_equal(value, expected[video_id][name], err_msg=video_id)


@pytest.mark.slow
def test_one_decode_process_survives_a_crash_and_a_hang(raw_dir, no_faults, tmp_path, monkeypatch):
  _inject_faults(monkeypatch)
  rows = []
  summary = manifest_builder.build(
      raw_dir / "manifest.csv",
      tmp_path,
      tag="m",
      num_segments=T,
      frame_size=S,
      num_workers=1,
      decode_timeout_s=TIMEOUT_S,
      on_row=rows.append,
  )
  assert summary.built == {"train": 5, "val": 2, "test": 1} and summary.failed == 3
  assert len(rows) == len(ROWS) and sum(rows) == 3  # on_row: once per row, 3 failed
  assert not multiprocessing.active_children()  # the decode processes are gone
  _assert_faults_fail_alone(summary.dataset_dir, no_faults)


@pytest.mark.slow
def test_two_decode_processes_through_the_cli(raw_dir, no_faults, tmp_path, monkeypatch):
  _inject_faults(monkeypatch)
  status, stdout, stderr = run_build(
      "--dataset=manifest",
      f"--manual_dir={raw_dir}",
      f"--data_dir={tmp_path}",
      "--tag=m",
      f"--num_segments={T}",
      f"--frame_size={S}",
      "--num_workers=2",
      f"--decode_timeout_s={TIMEOUT_S}",
  )
  assert status == 0, stderr[-3000:]
  dataset_dir = manifest_builder.dataset_dir(tmp_path, "m", Decode(T, 1, S))
  assert stdout.strip().splitlines()[-1] == (
      f"manifest: built 8 (train=5, val=2, test=1), skipped 0, failed 3 -> {dataset_dir}"
  )
  _assert_faults_fail_alone(dataset_dir, no_faults)


# ------------------------------------------------------------------- decode_pool on its own


def square_or_exit(n: int) -> int:
  """n², except that 5 ends its process with status 3 and 7 raises (runs in a child)."""
  if n == 5:
    os._exit(3)
  if n == 7:
    raise ValueError("seven")
  return n * n


class _RecordedItems(list):
  """A list that remembers the highest index read from it."""

  highest_read = -1

  def __getitem__(self, index):
    self.highest_read = max(self.highest_read, index)
    return super().__getitem__(index)


def test_pool_keeps_order_takes_a_bounded_number_of_items_ahead_and_is_reused():
  items = _RecordedItems(range(30))
  with decode_pool.IsolatedPool(
      square_or_exit, num_workers=2, timeout_s=30, lost=lambda n, reason: (n, reason)
  ) as pool:
    collected = []
    for index, result in enumerate(pool.map(items, max_ahead=3)):
      assert items.highest_read < index + 3  # at most max_ahead items taken ahead
      collected.append(result)
    assert collected[5] == (5, "decoder crashed (exit status 3)")
    assert collected[7] == (7, "ValueError: seven")
    assert [r for i, r in enumerate(collected) if i not in (5, 7)] == [
        n * n for n in range(30) if n not in (5, 7)
    ]
    # A map abandoned early leaves nothing behind for the next one.
    first_two = pool.map(list(range(100, 120)))
    assert [next(first_two), next(first_two)] == [100**2, 101**2]
    first_two.close()
    assert list(pool.map([2, 3])) == [4, 9]
  assert not multiprocessing.active_children()
