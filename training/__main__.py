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
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the progress

from text_contract.layout import MODEL_NAME_PREFIX  # noqa: E402
from training.dataset import OFFICIAL, DatasetError  # noqa: E402
from training.download import DownloadError, RemoteFile  # noqa: E402
from training.models import ARCHITECTURES  # noqa: E402
from training.train import LR_SCHEDULES, MONITORS, TrainingConfig  # noqa: E402

DEFAULT_ARCHITECTURES = "lstm,simple_rnn"
DEFAULTS = TrainingConfig()


def _number(value: str, convert: type, valid: Callable[[float], bool], expected: str):
    """``value`` converted, or an argparse error naming what was expected."""
    try:
        number = convert(value)
    except ValueError:
        number = None
    if number is None or not valid(number):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return number


def fraction(value: str) -> float:
    """A float in [0, 1): dropout rates, shares, label smoothing."""
    return _number(value, float, lambda number: 0 <= number < 1, "a number in [0, 1)")


def non_negative(value: str) -> float:
    return _number(value, float, lambda number: number >= 0, "a number >= 0")


def positive_int(value: str) -> int:
    return _number(value, int, lambda number: number >= 1, "a whole number >= 1")


def token_range(value: str) -> tuple[int, int]:
    """``MIN-MAX`` window sizes in tokens, 1 <= MIN <= MAX."""
    low, sep, high = value.partition("-")
    try:
        bounds = (int(low), int(high))
    except ValueError:
        bounds = None
    if not sep or bounds is None or not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX with 1 <= MIN <= MAX, got {value!r}")
    return bounds


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
    parser.add_argument("--data-url", default=env("SENTIMENT_DATA_URL", OFFICIAL.url),
                        help="where to download the tarball from when --data is not given, e.g. a mirror "
                        "[env SENTIMENT_DATA_URL; default: the official URL]")
    parser.add_argument("--data-md5", default=env("SENTIMENT_DATA_MD5", OFFICIAL.md5),
                        help="MD5 the downloaded tarball must have [env SENTIMENT_DATA_MD5; default: the "
                        "official tarball's]")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="download cache [default $KERAS_HOME/datasets, else ~/.keras/datasets]")
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
    parser.add_argument("--snippets", type=Path, default=env("SENTIMENT_SNIPPETS"),
                        help="rt-polarity tarball or folder: also report accuracy on these short texts "
                        "(evaluation only) [env SENTIMENT_SNIPPETS; default: not evaluated]")
    parser.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs)
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size)
    parser.add_argument("--validation-split", type=float, default=DEFAULTS.validation_split)
    parser.add_argument("--optimizer", default=DEFAULTS.optimizer, help="a Keras optimizer name [%(default)s]")
    parser.add_argument("--learning-rate", type=non_negative, default=DEFAULTS.learning_rate)
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=DEFAULTS.lr_schedule,
                        help="constant, or cosine decay to 0 over the run [%(default)s]")
    parser.add_argument(
        "--monitor", default=DEFAULTS.monitor, choices=tuple(MONITORS),
        help="validation metric that picks the kept epoch(s) [%(default)s]",
    )
    parser.add_argument("--average-best", type=positive_int, default=DEFAULTS.average_best, metavar="N",
                        help="average the weights of the N best epochs by --monitor when that scores "
                        "at least as well on validation; 1 keeps the best epoch; runs of fewer epochs "
                        "average them all [%(default)s]")
    regularisation = parser.add_argument_group("regularisation and augmentation (training only)")
    regularisation.add_argument("--mask-padding", action=argparse.BooleanOptionalAction,
                                default=DEFAULTS.regularisation.mask_padding,
                                help="mask the padding id; needed by the trimmed signature [on]")
    regularisation.add_argument("--embedding-dropout", type=fraction,
                                default=DEFAULTS.regularisation.embedding_dropout,
                                help="share of word vectors dropped (SpatialDropout1D) [%(default)s]")
    regularisation.add_argument("--input-dropout", type=fraction, default=DEFAULTS.regularisation.input_dropout,
                                help="the recurrent layer's dropout on its inputs [%(default)s]")
    regularisation.add_argument("--recurrent-dropout", type=fraction,
                                default=DEFAULTS.regularisation.recurrent_dropout,
                                help="the recurrent layer's dropout on its state [%(default)s]")
    regularisation.add_argument("--weight-decay", type=non_negative, default=DEFAULTS.weight_decay,
                                help="decoupled weight decay [%(default)s]")
    regularisation.add_argument("--label-smoothing", type=fraction, default=DEFAULTS.label_smoothing,
                                help="[%(default)s]")
    regularisation.add_argument("--window-share", type=fraction, default=DEFAULTS.augmentation.share,
                                help="share of each epoch's reviews replaced by a random window of their "
                                "own words [%(default)s]")
    regularisation.add_argument("--window-tokens", type=token_range, metavar="MIN-MAX",
                                default=(DEFAULTS.augmentation.min_tokens, DEFAULTS.augmentation.max_tokens),
                                help=f"window size in words [{DEFAULTS.augmentation.min_tokens}-"
                                f"{DEFAULTS.augmentation.max_tokens}]")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=True,
                        help="train with XLA and export the XLA-compiled signature (TF Serving needs "
                        "--xla_cpu_compilation_enabled=true); --no-xla for runtimes without XLA [on]")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--num-words", type=int, default=10_000, help="vocabulary size incl. 3 reserved ids")
    parser.add_argument("--maxlen", type=positive_int, default=500)
    parser.add_argument("--train-limit", type=positive_int, default=None,
                        help="use a random subset of N train reviews")
    parser.add_argument("--test-limit", type=positive_int, default=None, help="use a random subset of N test reviews")
    args = parser.parse_args(argv)
    args.architectures = [name.strip() for name in args.architectures.split(",") if name.strip()]
    unknown = sorted(set(args.architectures) - set(ARCHITECTURES))
    if unknown or not args.architectures:
        parser.error(f"--architectures: unknown {unknown}; choose from {','.join(ARCHITECTURES)}")
    if not 0 < args.validation_split < 1:
        parser.error("--validation-split must be between 0 and 1")
    if args.xla and not args.mask_padding:
        parser.error("--no-mask-padding needs --no-xla: the compiled signature drops padding columns")
    if args.snippets is not None and not args.snippets.exists():
        parser.error(f"--snippets {args.snippets}: no such file or directory")
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
    except DownloadError as error:
        print(f"error: {error}\nTrain from a local copy instead: `make run DATA=/path/to/aclImdb_v1.tar.gz` "
              "or `python -m training --data /path/to/aclImdb_v1.tar.gz` (the tarball or its extracted folder).",
              file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from text_contract.tokenizer import Tokenizer, TokenizerContract, build_vocabulary
    from training.dataset import load_imdb
    from training.download import fetch

    data = args.data
    if data is not None and not Path(data).exists():
        raise DatasetError(f"{data}: no such file or directory (expected an aclImdb tarball or folder)")
    check_writable(args.out)
    if data is None:
        print("no --data given: fetching the dataset tarball", flush=True)
        data = fetch(RemoteFile(args.data_url, OFFICIAL.name, args.data_md5 or None), args.cache_dir)

    print(f"reading the reviews from {data} (a few seconds)", flush=True)
    started = time.monotonic()
    dataset = load_imdb(Path(data))
    print(f"read {len(dataset.train) + len(dataset.test):,} reviews in {time.monotonic() - started:.1f} s",
          flush=True)
    train, validation = dataset.train.sample(args.train_limit, args.seed).hold_out(args.validation_split, args.seed)
    test = dataset.test.sample(args.test_limit, args.seed)
    print(f"{len(train)} train / {len(validation)} validation / {len(test)} test reviews", flush=True)

    # From the training reviews only: validation words must not leak into the vocabulary.
    contract = TokenizerContract(
        vocabulary=tuple(build_vocabulary(train.texts, args.num_words)), maxlen=args.maxlen
    )
    tokenizer = Tokenizer(contract)

    import numpy as np

    from training.batches import WindowAugmentation
    from training.export import export_version
    from training.models import Regularisation
    from training.report import write_report
    from training.snippets import load_snippets
    from training.train import TrainingConfig, evaluate, train_architecture

    snippets = load_snippets(args.snippets) if args.snippets else None
    config = TrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        monitor=args.monitor,
        average_best=args.average_best,
        regularisation=Regularisation(
            mask_padding=args.mask_padding,
            embedding_dropout=args.embedding_dropout,
            input_dropout=args.input_dropout,
            recurrent_dropout=args.recurrent_dropout,
        ),
        augmentation=WindowAugmentation(args.window_share, *args.window_tokens),
        jit_compile=args.xla,
        seed=args.seed,
    )
    for architecture in args.architectures:
        name = f"{args.name_prefix}{architecture}"
        print(f"== training {name}", flush=True)
        result = train_architecture(architecture, tokenizer, train, validation, test, config)
        snippet_evaluation = None
        if snippets is not None:
            ids, _ = tokenizer.encode_batch(snippets.texts)
            snippet_evaluation = evaluate(result.model, ids, snippets.label_array(), config.regularisation.mask_padding)
        version_dir = export_version(result.model, contract, args.out / name, xla=args.xla)
        report = write_report(
            args.out / "reports" / name / version_dir.name, name, int(version_dir.name), result, config,
            snippet_evaluation, np.asarray(test.labels, dtype=np.float32),
        )
        kept = (f"epochs {','.join(map(str, result.averaged_epochs))} averaged" if result.averaged_epochs
                else f"best epoch {result.best_epoch}")
        snippet_note = f", snippets {snippet_evaluation.accuracy:.4f}" if snippet_evaluation else ""
        print(
            f"{name}: {kept}, validation accuracy {result.validation.accuracy:.4f}, "
            f"test accuracy {result.test.accuracy:.4f}{snippet_note}, "
            f"{result.seconds:.0f}s -> {version_dir} (report {report})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
