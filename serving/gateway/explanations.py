"""Which words moved a prediction: occlusion (leave one word out), batched.

For every word the model saw, the same input with that one word replaced by the
out-of-vocabulary id; a word's effect is the positive probability with the word minus
the probability without it (Li et al. 2016, "Understanding neural networks through
representation erasure"; captum's ``Occlusion``). The original row and all its variants
go to the model server together, in calls of at most the batch cap, so explaining a
text of n known words costs ceil((n + 1) / cap) batched calls, not n round trips.
Deterministic: the same text and model version give the same explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from text_contract.tokenizer import OOV_ID, Tokenizer

# (ids [rows, maxlen]) -> positive probabilities [rows]
PredictRows = Callable[[np.ndarray], np.ndarray]

NO_KNOWN_WORDS = "no word of the text is in the model's vocabulary"


@dataclass(frozen=True)
class WordEffect:
    word: str
    position: int  # index among the text's words (the tokenizer's split), from 0
    effect: float  # positive probability with the word minus without it
    out_of_vocabulary: bool  # the model sees it as the unknown-word id: effect 0

    def to_json(self) -> dict:
        return dict(vars(self))


@dataclass(frozen=True)
class Explanation:
    words: list[WordEffect]  # the top ones by |effect|, ties by position
    note: str | None = None  # why the list is empty, when it is


def explain(text: str, row: np.ndarray, tokenizer: Tokenizer, predict_rows: PredictRows,
            max_rows: int, top_k: int) -> Explanation:
    """The ``top_k`` words of ``text`` (encoded as ``row``) with the largest effect."""
    kept = tokenizer.kept_words(text)
    known = [(position, word, column) for position, word, column in kept if row[column] != OOV_ID]
    if not known:
        return Explanation([], NO_KNOWN_WORDS)
    variants = np.repeat(row[np.newaxis, :], len(known) + 1, axis=0)
    for index, (_, _, column) in enumerate(known, start=1):
        variants[index, column] = OOV_ID
    probabilities = np.concatenate([predict_rows(variants[start:start + max_rows])
                                    for start in range(0, len(variants), max_rows)])
    effects = {position: float(probabilities[0] - without)
               for (position, _, _), without in zip(known, probabilities[1:])}
    words = [WordEffect(word, position, effects.get(position, 0.0), position not in effects)
             for position, word, _ in kept]
    words.sort(key=lambda effect: (-abs(effect.effect), effect.position))
    return Explanation(words[:top_k])
