"""Train the sentiment models and export them for TF Serving.

    python -m training --data ../shared/data/aclImdb_v1_labeled.tar.gz --out models/

See ``python -m training --help`` for every flag; environment variables give the
defaults of the most common ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the progress

from text_contract.layout import MODEL_NAME_PREFIX  # noqa: E402
from training.dataset import DatasetError  # noqa: E402
from training.models import ARCHITECTURES  # noqa: E402

DEFAULT_ARCHITECTURES = "lstm,simple_rnn"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    env = os.environ.get
    parser.add_argument(
        "--data",
        type=Path,
        default=env("SENTIMENT_DATA"),
        help="aclImdb tarball or extracted folder [env SENTIMENT_DATA; default: download the "
        "official tarball into the Keras cache]",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="download cache (default ~/.keras)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(env("SENTIMENT_MODELS_DIR", "models")),
        help="export root; models go to <out>/<name>/<version> [env SENTIMENT_MODELS_DIR; default models]",
    )
    parser.add_argument(
        "--architectures",
        default=DEFAULT_ARCHITECTURES,
        help=f"comma-separated, from {','.join(ARCHITECTURES)} [default {DEFAULT_ARCHITECTURES}]",
    )
    parser.add_argument("--name-prefix", default=MODEL_NAME_PREFIX, help="model name = prefix + architecture")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--optimizer", default="rmsprop")
    parser.add_argument(
        "--monitor", default="val_accuracy", help="metric that picks the kept epoch [val_accuracy]"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--num-words", type=int, default=10_000, help="vocabulary size incl. 3 reserved ids")
    parser.add_argument("--maxlen", type=int, default=500)
    parser.add_argument("--train-limit", type=int, default=None, help="use a random subset of N train reviews")
    parser.add_argument("--test-limit", type=int, default=None, help="use a random subset of N test reviews")
    args = parser.parse_args(argv)
    args.architectures = [name.strip() for name in args.architectures.split(",") if name.strip()]
    unknown = sorted(set(args.architectures) - set(ARCHITECTURES))
    if unknown or not args.architectures:
        parser.error(f"--architectures: unknown {unknown}; choose from {','.join(ARCHITECTURES)}")
    if not 0 < args.validation_split < 1:
        parser.error("--validation-split must be between 0 and 1")
    return args


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise DatasetError(f"{out}: output folder is not writable ({error.strerror or error})") from error


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from text_contract.tokenizer import Tokenizer, TokenizerContract, build_vocabulary
    from training.dataset import download_official, load_imdb

    data = args.data
    if data is not None and not Path(data).exists():
        raise DatasetError(f"{data}: no such file or directory (expected an aclImdb tarball or folder)")
    check_writable(args.out)
    if data is None:
        print("downloading the official dataset (pass --data to use a local copy)", flush=True)
        data = download_official(args.cache_dir)

    print(f"reading {data}", flush=True)
    dataset = load_imdb(Path(data))
    train = dataset.train.sample(args.train_limit, args.seed)
    test = dataset.test.sample(args.test_limit, args.seed)
    print(f"{len(train)} train / {len(test)} test reviews", flush=True)

    contract = TokenizerContract(
        vocabulary=tuple(build_vocabulary(train.texts, args.num_words)), maxlen=args.maxlen
    )
    tokenizer = Tokenizer(contract)

    from training.export import export_version
    from training.report import write_report
    from training.train import TrainingConfig, train_architecture

    config = TrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        optimizer=args.optimizer,
        monitor=args.monitor,
        seed=args.seed,
    )
    for architecture in args.architectures:
        name = f"{args.name_prefix}{architecture}"
        print(f"== training {name}", flush=True)
        result = train_architecture(architecture, tokenizer, train, test, config)
        version_dir = export_version(result.model, contract, args.out / name)
        report = write_report(args.out / "reports" / name / version_dir.name, name, int(version_dir.name), result, config)
        print(
            f"{name}: best epoch {result.best_epoch}, test accuracy {result.test_accuracy:.4f}, "
            f"{result.seconds:.0f}s -> {version_dir} (report {report})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
