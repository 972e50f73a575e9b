"""TensorFlow's own CPU for one single-review call of the exported signature, in this process:
back to back, and after an idle gap as between one client's requests (caches and
TensorFlow's threads are cold then). The review is tokenized once, outside the timing;
the CPU of the whole loop is counted, gaps included, so what TensorFlow's threads spend
between calls is part of the cost.

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
    from text_contract.signature import INPUT_NAME, SIGNATURE_NAME
    from text_contract.tokenizer import Tokenizer, TokenizerContract

    signature = tf.saved_model.load(str(args.version_dir)).signatures[SIGNATURE_NAME]
    ids, _ = Tokenizer(TokenizerContract.read(args.version_dir)).encode_batch(
        [args.review_file.read_text(encoding="utf-8")])
    tokens = {INPUT_NAME: tf.constant(ids)}
    for _ in range(20):
        signature(**tokens)
    cost = {}
    for name, gap in (("back_to_back", 0.0), ("after_idle", IDLE_GAP_SECONDS)):
        started = time.process_time()  # every thread of this process: TensorFlow's pools too
        for _ in range(CALLS):
            time.sleep(gap)
            signature(**tokens)
        cost[name] = round((time.process_time() - started) * 1000 / CALLS, 3)
    print(json.dumps(cost))


if __name__ == "__main__":
    main()
