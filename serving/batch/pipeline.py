"""The Beam pipeline: files -> rows -> RunInference -> sharded results, and a dead-letter
output for the rows that cannot be scored."""

from __future__ import annotations

import os
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics, MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from serving.batch.model import MAX_BATCH_SIZE, MIN_BATCH_SIZE, ModelVersion, SignatureHandler
from serving.batch.output import csv_header, csv_line, json_line
from serving.batch.rows import BadRow, format_of, read_rows

NAMESPACE = "sentiment_batch"
BAD = "bad"
# DirectRunner first tries PrismRunner, which downloads a binary at run time; FnApiRunner
# is the direct runner's own in-process engine for batch jobs, and needs nothing fetched.
LOCAL_RUNNER = "FnApiRunner"


class JobError(ValueError):
    """The job cannot start: an input matches no file, or an option is invalid."""


@dataclass(frozen=True)
class Job:
    inputs: tuple[str, ...]  # file patterns, on any file system Beam supports
    output: str  # prefix of the result shards
    dead_letter: str  # prefix of the bad-row shards (always JSON Lines)
    version: ModelVersion
    input_format: str | None = None  # None: each file's suffix decides
    column: str = "text"
    output_format: str = "jsonl"
    min_batch_size: int = MIN_BATCH_SIZE
    max_batch_size: int = MAX_BATCH_SIZE
    num_shards: int = 0  # 0: the runner decides
    share_model: bool = False


@dataclass(frozen=True)
class Summary:
    rows_read: int
    rows_scored: int
    bad_rows: int


class ReadRows(beam.DoFn):
    """A matched file -> its rows, and its bad rows on the ``bad`` output."""

    def __init__(self, input_format: str | None, column: str) -> None:
        self._format = input_format
        self._column = column
        self._rows = Metrics.counter(NAMESPACE, "rows_read")
        self._bad = Metrics.counter(NAMESPACE, "bad_rows")

    def process(self, readable: fileio.ReadableFile):
        path = readable.metadata.path
        with readable.open(mime_type="application/octet-stream") as stream:
            for item in read_rows(stream, path, self._format or format_of(path), self._column):
                self._rows.inc()
                if isinstance(item, BadRow):
                    self._bad.inc()
                    yield beam.pvalue.TaggedOutput(BAD, item.to_json())
                else:
                    yield item


def check_inputs(patterns: tuple[str, ...]) -> None:
    """Refuse a pattern that matches no file, or a local folder, before the job starts."""
    for pattern in patterns:
        if os.path.isdir(pattern):
            raise JobError(f"{pattern} is a folder: name its files, e.g. {os.path.join(pattern, '*.csv')}")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as error:  # each file system raises its own errors (BeamIOError, auth, ...)
            raise JobError(f"{pattern}: cannot list it ({error})") from None
        if not matched:
            raise JobError(f"{pattern}: no file matches")


def check_outputs(job: Job) -> None:
    """A sink replaces the files matching ``<prefix>-*-of-N``: two prefixes where one's files match
    the other's pattern would delete each other's shards."""
    output, dead_letter = f"{job.output}-", f"{job.dead_letter}-"
    if output.startswith(dead_letter) or dead_letter.startswith(output):
        raise JobError(f"the dead-letter prefix {job.dead_letter!r} and the output prefix {job.output!r} "
                       "would overwrite each other's files: choose prefixes that do not extend each other with '-'")


def build(pipeline: beam.Pipeline, job: Job) -> None:
    handler = SignatureHandler(job.version, min_batch_size=job.min_batch_size,
                               max_batch_size=job.max_batch_size, share_across_processes=job.share_model)
    read = (
        pipeline
        | "Patterns" >> beam.Create(job.inputs)
        | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
        | "Open" >> fileio.ReadMatches()
        | "Rows" >> beam.ParDo(ReadRows(job.input_format, job.column)).with_outputs(BAD, main="rows")
    )
    scored_counter = Metrics.counter(NAMESPACE, "rows_scored")

    def counted(record: dict) -> dict:
        scored_counter.inc()
        return record

    csv_output = job.output_format == "csv"
    (
        read.rows
        # A file is read by one worker; scoring is spread over all of them.
        | "Spread" >> beam.Reshuffle()
        | "Score" >> RunInference(handler)
        | "Count" >> beam.Map(counted)
        | "Format" >> beam.Map(csv_line if csv_output else json_line)
        | "Write" >> beam.io.WriteToText(job.output, file_name_suffix=f".{job.output_format}",
                                         num_shards=job.num_shards, header=csv_header() if csv_output else None)
    )
    (
        read[BAD]
        | "FormatBad" >> beam.Map(json_line)
        | "WriteBad" >> beam.io.WriteToText(job.dead_letter, file_name_suffix=".jsonl", num_shards=job.num_shards)
    )


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam's own flags as given, with the in-process runner unless one is named."""
    named = any(arg == "--runner" or arg.startswith("--runner=") for arg in beam_args)
    return PipelineOptions([*beam_args, *([] if named else [f"--runner={LOCAL_RUNNER}"])])


def run(job: Job, beam_args: list[str]) -> Summary:
    check_inputs(job.inputs)
    check_outputs(job)
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    build(pipeline, job)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    totals: dict[str, int] = {}
    for counter in counters:  # one per step that counts
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + counter.committed
    return Summary(totals.get("rows_read", 0), totals.get("rows_scored", 0), totals.get("bad_rows", 0))
