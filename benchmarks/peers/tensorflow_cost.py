"""TensorFlow's own CPU for one single-review call of the exported signature, in this process:
back to back, and after an idle gap as between one client's requests (caches and
TensorFlow's threads are cold then).

    python -m benchmarks.peers.tensorflow_cost VERSION_DIR REVIEW_FILE [--intra N] [--inter N]

Prints one JSON line: {"back_to_back": ms, "after_idle": ms}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

IDLE_GAP_SECONDS = 0.005  # about the time between two requests of one client, outside the model
CALLS = 300


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.tensorflow_cost")
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("review_file", type=Path)
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads [0: TensorFlow's default]")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads [0: TensorFlow's default]")
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    from benchmarks.peers.review_model import ReviewModel

    model = ReviewModel(args.version_dir)
    review = [args.review_file.read_text(encoding="utf-8")]
    for _ in range(20):
        model.score(review)
    cost = {}
    for name, gap in (("back_to_back", 0.0), ("after_idle", IDLE_GAP_SECONDS)):
        spent = 0.0
        for _ in range(CALLS):
            time.sleep(gap)
            started = time.process_time()  # every thread of this process: TensorFlow's pools too
            model.score(review)
            spent += time.process_time() - started
        cost[name] = round(spent * 1000 / CALLS, 3)
    print(json.dumps(cost))


if __name__ == "__main__":
    main()
