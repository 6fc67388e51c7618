"""The Apache Beam path of the video builders: the same ClipDecoder as the local path, in workers.

For one split, `DecodeClips` expands to::

    tasks-<split>.jsonl (written by the launcher) | ReadFromText | ClipTask.from_json
      | Reshuffle | ParDo(decode) ─┬─ examples (key, example) → TFDS's BeamWriter
                                  └─ 'failures' → json → WriteToText(failures-<split>-*.jsonl)

Both files live in the dataset's directory while it is being built (TFDS renames it when the
pipeline is done), so they work on any filesystem the runner's workers see: local disk for the
DirectRunner, gs:// for Dataflow. Nothing is collected in the launcher's memory; the launcher
merges the failure shards into failures.jsonl afterwards (video_examples.prepare). The tasks go
through a file rather than beam.Create so that 200k clips do not bloat the pipeline graph that
is sent to Dataflow (its limit is 10 MB). Beam counters `decoded` and `failed` (namespace
`stt_build`) show progress in the runner's UI.

Needs apache-beam: `pip install -e .[beam]`.
"""

from __future__ import annotations

import json

import apache_beam as beam
from etils import epath

from data_pipelines import video_examples

FAILURES_TAG = "failures"
METRICS_NAMESPACE = "stt_build"


class _DecodeFn(beam.DoFn):
  """ClipTask → (key, example) on the main output, or its failure record on FAILURES_TAG."""

  def __init__(self, decoder: video_examples.ClipDecoder):
    super().__init__()
    self._decoder = decoder
    self._decoded = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "decoded")
    self._failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "failed")

  def process(self, task: video_examples.ClipTask):
    result = self._decoder(task)
    if result.failure is not None:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, result.failure)
    else:
      self._decoded.inc()
      yield result.key, result.example


class DecodeClips(beam.PTransform):
  """PBegin → PCollection[(key, example)] for one split; failures go to failure shards."""

  def __init__(self, split: str, tasks: list[video_examples.ClipTask],
               decoder: video_examples.ClipDecoder, build_dir: epath.Path):
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
        | "ParseTasks" >> beam.Map(video_examples.ClipTask.from_json)
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.ParDo(_DecodeFn(self._decoder)).with_outputs(
            FAILURES_TAG, main="examples"))
    _ = (
        decoded[FAILURES_TAG]
        | "FailureJson" >> beam.Map(json.dumps)
        | "WriteFailures" >> beam.io.WriteToText(
            str(self._build_dir / f"failures-{self._split}"), file_name_suffix=".jsonl"))
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
