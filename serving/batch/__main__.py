"""Score a whole corpus with an exported model version, on Apache Beam.

    python -m serving.batch --input 'reviews/*.csv' --column review --output scored/part
    python -m serving.batch --input gs://bucket/dump/*.jsonl.gz --output gs://bucket/scored/part \\
        --models-dir /models --runner DataflowRunner --project P --region R ...

Reads text lines, CSV (with a header row) or JSON Lines, by each file's suffix unless
``--format`` says; writes one result per input row to ``<output>-SSSSS-of-NNNNN.jsonl``
(or ``.csv``), and the rows that cannot be scored, with the reason, to
``<dead-letter>-SSSSS-of-NNNNN.jsonl`` (``<output>_errors`` unless named). Flags this command does not know are Beam's
pipeline options (``--runner``, ``--direct_num_workers``, ...); without ``--runner`` the
job runs in this process. Exit status 0 when every row came out (scored or refused), 2 on
a bad flag or input, 1 when the pipeline failed or rows were lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

try:
    import apache_beam  # noqa: F401  (only to say what to install when it is missing)
except ImportError:
    sys.exit("python -m serving.batch needs Apache Beam: pip install '.[batch]' (make install does)")

from serving.batch.model import MAX_BATCH_SIZE, MIN_BATCH_SIZE, ModelVersionError, resolve  # noqa: E402
from serving.batch.output import OUTPUT_FORMATS  # noqa: E402
from serving.batch.pipeline import Job, JobError, run  # noqa: E402
from serving.batch.rows import FORMATS  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any worker loads TensorFlow


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.batch", description=__doc__.split("\n")[0])
    parser.add_argument("--input", action="append", required=True, metavar="PATTERN",
                        help="files to score: a path or glob, on any file system Beam supports (repeatable)")
    parser.add_argument("--output", required=True, metavar="PREFIX", help="prefix of the result shards")
    parser.add_argument("--dead-letter", metavar="PREFIX",
                        help="prefix of the bad-row shards (JSON Lines) [<output>_errors]")
    parser.add_argument("--format", choices=FORMATS, help="input format [by each file's suffix: .csv, "
                        ".jsonl/.ndjson, else text; .gz and other compressions are read as such]")
    parser.add_argument("--column", default="text", help="the CSV column or JSON field of the text [text]")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jsonl", help="[jsonl]")
    parser.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="the exported models, readable by every worker [models]")
    parser.add_argument("--model", default="lstm", help="public model name: lstm or simple_rnn [lstm]")
    parser.add_argument("--version", type=positive_int, help="model version [the newest when the job starts]")
    parser.add_argument("--min-batch-size", type=positive_int, default=MIN_BATCH_SIZE,
                        help=f"rows per model call, at least [{MIN_BATCH_SIZE}]")
    parser.add_argument("--max-batch-size", type=positive_int, default=MAX_BATCH_SIZE,
                        help=f"rows per model call, at most [{MAX_BATCH_SIZE}]")
    parser.add_argument("--num-shards", type=int, default=0, help="output files [0: the runner decides]")
    parser.add_argument("--share-model", action="store_true",
                        help="one copy of the model per machine, shared by its worker processes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args, beam_args = parser().parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.min_batch_size > args.max_batch_size:
        print(f"error: --min-batch-size {args.min_batch_size} is above --max-batch-size {args.max_batch_size}",
              file=sys.stderr)
        return 2
    if args.num_shards < 0:
        print(f"error: --num-shards must be 0 or more, got {args.num_shards}", file=sys.stderr)
        return 2
    try:
        job = Job(
            inputs=tuple(args.input), output=args.output, dead_letter=args.dead_letter or f"{args.output}_errors",
            version=resolve(args.models_dir, args.model, args.version), input_format=args.format,
            column=args.column, output_format=args.output_format, min_batch_size=args.min_batch_size,
            max_batch_size=args.max_batch_size, num_shards=args.num_shards, share_model=args.share_model,
        )
        summary = run(job, beam_args)
    except (JobError, ModelVersionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{job.version.model_name} version {job.version.version}: {summary.rows_read} rows read, "
          f"{summary.rows_scored} scored into {job.output}-*.{job.output_format}, "
          f"{summary.bad_rows} bad rows into {job.dead_letter}-*.jsonl")
    if summary.rows_scored + summary.bad_rows != summary.rows_read:
        print("error: rows were lost between reading and writing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
