"""Command-line client of the gateway's gRPC API; prints JSON.

    python -m serving.client predict "A wonderful film." "Dull."
    python -m serving.client predict --file reviews.txt --model simple_rnn   # one review per line
    python -m serving.client predict --file reviews.csv --column review --output scored.csv
    echo "Loved it" | python -m serving.client predict -                      # stdin
    python -m serving.client models

(Installed, the same tool is the ``sentiment`` command.) ``--file`` reads plain text
lines, JSON Lines (``.jsonl``, the ``--column`` field of each object) or CSV (``.csv``,
the ``--column`` column); ``--output`` writes ``.jsonl``, ``.csv`` or JSON.

Any number of texts: they go in requests of at most ``--batch-size`` texts (the
gateway's limit, GATEWAY_MAX_TEXTS), ``--concurrency`` requests at a time, and the
predictions come back in input order. A request that fails leaves ``null`` in its
rows and an entry in ``errors``; the others are kept (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import grpc
from google.protobuf import json_format

from serving.client import SentimentClient
from serving.client.files import InputError, read_texts, write_predictions


def _texts(args: argparse.Namespace) -> list[str]:
    texts = [text for text in args.texts if text != "-"]
    if "-" in args.texts:
        texts += [line for line in sys.stdin.read().splitlines() if line.strip()]
    if args.file:
        texts += read_texts(args.file, args.column)
    return texts


def _as_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _prediction_json(prediction, explained: bool) -> dict:
    fields = _as_json(prediction)
    if not explained:
        del fields["explanation"]
    if not (explained and fields["explanation_note"]):
        del fields["explanation_note"]
    return fields


def predict_all(client: SentimentClient, texts: list[str], model: str, model_version: int,
                batch_size: int, concurrency: int,
                on_rows_done: Callable[[int], None] = lambda rows: None,
                explain_top_k: int | None = None) -> tuple[list[dict | None], list[dict]]:
    """Predictions in input order (``None`` where a request failed) and the failed requests,
    in input order too; ``on_rows_done`` hears of each request as it finishes. With
    ``explain_top_k`` (0: the gateway's default) each prediction names the words that moved it."""
    explained = explain_top_k is not None
    predictions: list[dict | None] = [None] * len(texts)
    errors: list[dict] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        calls = {pool.submit(client.predict, texts[start:start + batch_size], model, model_version,
                             explain=explained, explain_top_k=explain_top_k or 0): start
                 for start in range(0, len(texts), batch_size)}
        for call in as_completed(calls):
            start = calls[call]
            rows = len(texts[start:start + batch_size])
            try:
                predictions[start:start + rows] = [_prediction_json(p, explained) for p in call.result()]
            except grpc.RpcError as error:
                errors.append({"rows": [start, start + rows - 1], "code": error.code().name,
                               "message": error.details()})
            on_rows_done(rows)
    errors.sort(key=lambda error: error["rows"][0])
    return predictions, errors


@contextmanager
def progress_bar(total: int, shown: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when ``shown`` (a terminal, more than one request)."""
    if not shown:
        yield lambda rows: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("texts", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("predict", total=total)
        yield lambda rows: progress.advance(task, rows)


def _tool_version() -> str:
    try:
        return version("sentiment-serving")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    prog = "sentiment" if Path(sys.argv[0]).name == "sentiment" else "python -m serving.client"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=os.environ.get("SENTIMENT_GRPC_TARGET", "127.0.0.1:8600"),
                        help="gateway gRPC address [env SENTIMENT_GRPC_TARGET; default 127.0.0.1:8600]")
    parser.add_argument("--api-key", default=os.environ.get("SENTIMENT_API_KEY"),
                        help="for gateways that ask for API keys [env SENTIMENT_API_KEY]")
    parser.add_argument("--tls", action="store_true", help="TLS, verifying the gateway against the system's CAs")
    parser.add_argument("--ca", type=Path, help="TLS, verifying the gateway against this CA (PEM)")
    parser.add_argument("--cert", type=Path, help="the client's certificate (PEM), for gateways that require one")
    parser.add_argument("--key", type=Path, help="the client certificate's private key (PEM)")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each request in seconds [10]")
    parser.add_argument("--wait", action="store_true",
                        help="wait (up to --timeout) for the gateway to be reachable instead of failing at once")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_tool_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify texts (arguments, - for stdin, --file)")
    predict.add_argument("texts", nargs="*", help="review texts; - reads one per line from stdin")
    predict.add_argument("--file", type=Path, help="texts: one per line, or .jsonl / .csv (see --column)")
    predict.add_argument("--column", default="text", help="the JSON Lines field or CSV column of the texts [text]")
    predict.add_argument("--output", type=Path, help="write the predictions to .jsonl, .csv or JSON [stdout, JSON]")
    predict.add_argument("--model", default="", help="lstm or simple_rnn [gateway default]")
    predict.add_argument("--model-version", type=int, default=0, help="model version [latest]")
    predict.add_argument("--batch-size", type=int,
                         help="texts per request, at most the gateway's GATEWAY_MAX_TEXTS "
                              "(GATEWAY_MAX_EXPLAINED_TEXTS with --explain) [64; 8 with --explain]")
    predict.add_argument("--concurrency", type=int, default=4, help="requests in flight at once [4]")
    predict.add_argument("--explain", nargs="?", type=int, const=0, metavar="TOP_K",
                         help="also name the words that moved each prediction (TOP_K of them [10]); "
                              "requests then carry at most the gateway's GATEWAY_MAX_EXPLAINED_TEXTS texts")
    commands.add_parser("models", help="list the served models")
    args = parser.parse_args(argv)

    if args.command == "predict":
        try:
            texts = _texts(args)
        except InputError as error:
            parser.error(str(error))
        if not texts:
            parser.error("no texts given")
        if args.batch_size is None:
            args.batch_size = 64 if args.explain is None else 8
        if args.batch_size < 1 or args.concurrency < 1:
            parser.error("--batch-size and --concurrency must be at least 1")
    try:
        with SentimentClient(args.target, args.timeout, wait_for_ready=args.wait, api_key=args.api_key,
                             tls=args.tls, ca_file=args.ca, cert_file=args.cert, key_file=args.key) as client:
            if args.command == "models":
                print(json.dumps({"models": [_as_json(m) for m in client.list_models()]}, indent=2))
                return 0
            with progress_bar(len(texts), sys.stderr.isatty() and len(texts) > args.batch_size) as advance:
                predictions, errors = predict_all(client, texts, args.model, args.model_version,
                                                  args.batch_size, args.concurrency, advance, args.explain)
    except grpc.RpcError as error:
        print(json.dumps({"error": {"code": error.code().name, "message": error.details()}}), file=sys.stderr)
        return 1
    if errors and all(p is None for p in predictions):  # nothing to show: the error alone, as one request
        print(json.dumps({"error": {"code": errors[0]["code"], "message": errors[0]["message"]}}), file=sys.stderr)
        return 1
    if args.output:
        write_predictions(args.output, predictions, errors)
    else:
        output: dict = {"predictions": predictions}
        if errors:
            output["errors"] = errors
        print(json.dumps(output, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
