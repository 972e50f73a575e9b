"""Command-line client of the gateway's gRPC API; prints JSON.

    python -m serving.client predict "A wonderful film." "Dull."
    python -m serving.client predict --file reviews.txt --model simple_rnn   # one review per line
    echo "Loved it" | python -m serving.client predict -                      # stdin
    python -m serving.client models
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import grpc
from google.protobuf import json_format

from serving.client import SentimentClient


def _texts(args: argparse.Namespace) -> list[str]:
    texts = [text for text in args.texts if text != "-"]
    if "-" in args.texts:
        texts += [line for line in sys.stdin.read().splitlines() if line.strip()]
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            texts += [line for line in handle.read().splitlines() if line.strip()]
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=os.environ.get("SENTIMENT_GRPC_TARGET", "127.0.0.1:8600"),
                        help="gateway gRPC address [env SENTIMENT_GRPC_TARGET; default 127.0.0.1:8600]")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds [10]")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify texts (arguments, - for stdin, --file)")
    predict.add_argument("texts", nargs="*", help="review texts; - reads one per line from stdin")
    predict.add_argument("--file", help="read one review per line from this file")
    predict.add_argument("--model", default="", help="lstm or simple_rnn [gateway default]")
    predict.add_argument("--version", type=int, default=0, help="model version [latest]")
    commands.add_parser("models", help="list the served models")
    args = parser.parse_args(argv)

    def as_json(message) -> dict:
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)

    try:
        with SentimentClient(args.target, args.timeout) as client:
            if args.command == "models":
                output = {"models": [as_json(m) for m in client.list_models()]}
            else:
                texts = _texts(args)
                if not texts:
                    parser.error("no texts given")
                output = {"predictions": [as_json(p) for p in client.predict(texts, args.model, args.version)]}
    except grpc.RpcError as error:
        print(json.dumps({"error": {"code": error.code().name, "message": error.details()}}), file=sys.stderr)
        return 1
    print(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
