"""The Apache Beam path of the video builders: the same ClipDecoder as the local path, in workers.

For one split, `DecodeClips` expands to::

    tasks-<split>.jsonl (written by the launcher) | ReadFromText | ClipTask.from_json
      | Reshuffle | ParDo(decode) ─┬─ examples (key, example) → TFDS's BeamWriter
                                  ├─ 'failures' → json → WriteToText(failures-<split>-*.jsonl)
                                  └─ 'warnings' → json → WriteToText(warnings-<split>-*.jsonl)

These files live in the dataset's directory while it is being built (TFDS renames it when the
pipeline is done), so they work on any filesystem the runner's workers see: local disk for the
DirectRunner, gs:// for Dataflow. Nothing is collected in the launcher's memory; the launcher
merges the shards into failures.jsonl and warnings.jsonl afterwards (video_examples.prepare).
The tasks go through a file rather than beam.Create so that 200k clips do not bloat the
pipeline graph that is sent to Dataflow (its limit is 10 MB). Beam counters `decoded`, `failed`
and `warned` (namespace `stt_build`) show progress in the runner's UI.

A decoder that crashes the worker process or hangs is the runner's business here, not a
failure record: the decode runs in the worker itself (no decode_pool child and no per-clip
timeout; media.decode_clip's reading budget already stops runaway decoding of broken
timestamps). The runner retries a failed bundle (Dataflow batch: up to 4 times, then the job
fails) and reports work items that make no progress; each clip is logged at INFO ("decoding
<path>") before it is decoded, so the worker log names the clip a crash happened on. Remove
such a file, or build locally, where a crash or a timeout only fails its clip.

Needs apache-beam: `pip install -e .[beam]`.
"""

from __future__ import annotations

import json
import logging

import apache_beam as beam
from etils import epath

from data_pipelines import clip_examples

FAILURES_TAG = "failures"
WARNINGS_TAG = "warnings"
METRICS_NAMESPACE = "stt_build"


class _DecodeFn(beam.DoFn):
  """ClipTask → (key, example) on the main output and its warning record, if any, on
  WARNINGS_TAG; or its failure record on FAILURES_TAG."""

  def __init__(self, decoder: clip_examples.ClipDecoder):
    super().__init__()
    self._decoder = decoder
    self._decoded = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "decoded")
    self._failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "failed")
    self._warned = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "warned")

  def process(self, task: clip_examples.ClipTask):
    logging.info("decoding %s", task.video_path)
    result = self._decoder(task)
    if result.failure is not None:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, result.failure)
      return
    self._decoded.inc()
    if result.warning is not None:
      self._warned.inc()
      yield beam.pvalue.TaggedOutput(WARNINGS_TAG, result.warning)
    yield result.key, result.example


class DecodeClips(beam.PTransform):
  """PBegin → PCollection[(key, example)] for one split; failure and warning records go to
  shards next to the dataset."""

  def __init__(
      self,
      split: str,
      tasks: list[clip_examples.ClipTask],
      decoder: clip_examples.ClipDecoder,
      build_dir: epath.Path,
  ):
    super().__init__()
    self._split = split
    self._tasks = tasks
    self._decoder = decoder
    self._build_dir = build_dir

  def expand(self, pipeline):
    tasks_path = self._build_dir / f"tasks-{self._split}.jsonl"
    tasks_path.write_text("".join(task.to_json() + "\n" for task in self._tasks))
    decoded = (
        pipeline
        | "ReadTasks" >> beam.io.ReadFromText(str(tasks_path))
        | "ParseTasks" >> beam.Map(clip_examples.ClipTask.from_json)
        | "Spread" >> beam.Reshuffle()
        | "Decode"
        >> beam.ParDo(_DecodeFn(self._decoder)).with_outputs(
            FAILURES_TAG, WARNINGS_TAG, main="examples"
        )
    )
    for tag, step in ((FAILURES_TAG, "Failures"), (WARNINGS_TAG, "Warnings")):
      _ = (
          decoded[tag]
          | f"{step}Json" >> beam.Map(json.dumps)
          | f"Write{step}"
          >> beam.io.WriteToText(
              str(self._build_dir / f"{tag}-{self._split}"), file_name_suffix=".jsonl"
          )
      )
    return decoded.examples


def pipeline_options(runner: str, num_workers: int | None, extra_args: list[str]):
  """PipelineOptions for `runner` with `num_workers` workers, then the pass-through flags.

  DirectRunner: num_workers local processes (direct_running_mode=multi_processing), the same
  code path as a cluster. Other runners (DataflowRunner, ...): --num_workers=N.
  """
  args = [f"--runner={runner}"]
  if num_workers:
    if runner == "DirectRunner":
      args += [f"--direct_num_workers={num_workers}", "--direct_running_mode=multi_processing"]
    else:
      args += [f"--num_workers={num_workers}"]
  return beam.options.pipeline_options.PipelineOptions(args + list(extra_args))
