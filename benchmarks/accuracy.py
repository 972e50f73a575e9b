"""The accuracy ablation: full training runs of each variant, one table.

    python -m benchmarks.accuracy --data ../shared/data/aclImdb_v1_labeled.tar.gz \\
        --snippets ../shared/data/rt-polarity_v1.0.tar.gz --work /tmp/ablation

Each variant is ``python -m training`` with its flags (all 25,000 training reviews,
the same seed and validation split), exported into ``<work>/<variant>/``. The table
reads every run's ``metrics.json``: validation, test and snippet accuracy (the
snippets through the same tokenizer and trimmed computation as the serving path),
the kept epochs and the training time. Variants already trained in ``--work`` are
read, not trained again. Models are picked by validation only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from harness.processes import IMDB_TARBALL, ROOT, RT_POLARITY_TARBALL

ARCHITECTURES = ("lstm", "simple_rnn")


def flags(*, mask: bool = True, window: float = 0, window_tokens: str = "5-60", dropout: float = 0,
          recurrent_dropout: float = 0, average: int = 1, schedule: str = "constant", epochs: int = 10) -> list[str]:
    """Every flag a variant may change, spelled out, so the table keeps its meaning when the
    shipped defaults change."""
    return [*(["--mask-padding", "--xla"] if mask else ["--no-mask-padding", "--no-xla"]),
            "--window-share", str(window), "--window-tokens", window_tokens, "--embedding-dropout", str(dropout),
            "--recurrent-dropout", str(recurrent_dropout), "--average-best", str(average),
            "--lr-schedule", schedule, "--epochs", str(epochs)]


VARIANTS: dict[str, list[str]] = {
    "baseline (no masking, 500 steps)": flags(mask=False),
    "masking + trimmed batches + XLA": flags(),
    "+ windows (50% of reviews, 5-60 words)": flags(window=0.5),
    "+ embedding dropout 0.3": flags(dropout=0.3),
    "+ average of the 3 best epochs": flags(average=3),
    "windows + embedding dropout + average 3": flags(window=0.5, dropout=0.3, average=3),
    "windows + embedding dropout + average 3 + cosine": flags(window=0.5, dropout=0.3, average=3, schedule="cosine"),
    "windows 75% + embedding dropout + average 3": flags(window=0.75, dropout=0.3, average=3),
    "windows of 5-30 words + embedding dropout + average 3 + cosine":
        flags(window=0.5, window_tokens="5-30", dropout=0.3, average=3, schedule="cosine"),
    "windows + embedding dropout + average 3 + cosine, 15 epochs":
        flags(window=0.5, dropout=0.3, average=3, schedule="cosine", epochs=15),
    "the same + recurrent dropout 0.2, 15 epochs":
        flags(window=0.5, dropout=0.3, recurrent_dropout=0.2, average=3, schedule="cosine", epochs=15),
}


def folder_name(variant: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in variant).strip("-").lower()[:60]


def train(variant: str, flags: list[str], args: argparse.Namespace) -> Path:
    out = args.work / folder_name(variant)
    if all((out / "reports" / f"imdb_{arch}" / "1" / "metrics.json").is_file() for arch in ARCHITECTURES):
        return out
    command = [sys.executable, "-m", "training", "--data", str(args.data), "--snippets", str(args.snippets),
               "--out", str(out), "--seed", str(args.seed), *flags]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return out


def row(variant: str, flags: list[str], out: Path) -> dict:
    result = {"variant": variant, "flags": flags}
    for arch in ARCHITECTURES:
        metrics = json.loads((out / "reports" / f"imdb_{arch}" / "1" / "metrics.json").read_text())
        result[arch] = {
            "validation": metrics["validation"]["accuracy"],
            "test": metrics["test"]["accuracy"],
            "snippets": metrics["snippets"]["accuracy"],
            "ece": metrics["test"]["calibration"]["expected_calibration_error"],
            "exported_epochs": metrics["exported_epochs"],
            "seconds": metrics["duration_seconds"],
            "seed": metrics["config"]["seed"],
        }
    return result


def markdown(rows: list[dict]) -> str:
    lines = ["| variant | model | validation | test | snippets | test ECE | kept epochs | training time |",
             "|---|---|---|---|---|---|---|---|"]
    for entry in rows:
        for arch in ARCHITECTURES:
            m = entry[arch]
            lines.append(
                f"| {entry['variant']} | {arch} | {m['validation']:.4f} | {m['test']:.4f} | {m['snippets']:.4f} "
                f"| {m['ece']:.3f} | {','.join(map(str, m['exported_epochs']))} | {m['seconds']:.0f} s |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--snippets", type=Path, default=RT_POLARITY_TARBALL)
    parser.add_argument("--work", type=Path, required=True, help="one folder of models per variant")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", action="append", default=[], help="run only variants containing this text")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "accuracy.json")
    args = parser.parse_args(argv)
    chosen = {name: flags for name, flags in VARIANTS.items()
              if not args.only or any(text in name for text in args.only)}
    rows = [row(name, flags, train(name, flags, args)) for name, flags in chosen.items()]
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
