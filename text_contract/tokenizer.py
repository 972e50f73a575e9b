"""Review text -> token ids: the one implementation shared by training and serving.

Rules (tokenizer version ``imdb-words-v1``):

1. Lowercase the text (``str.lower``).
2. Replace every ``<br />`` tag (any case, any spacing, with or without the slash)
   with a space.
3. A word is a maximal run of Unicode letters or digits, optionally joined by
   single inner apostrophes (``don't``, ``o'clock``). Everything else (punctuation,
   underscores, symbols, whitespace) separates words and is never part of one.
4. Ids follow the Keras IMDB conventions: 0 = padding, 1 = start of review,
   2 = out of vocabulary; the most frequent training words get ids 3, 4, ...
   (ties broken alphabetically). Every sequence starts with 1.
5. Sequences are padded with 0 at the front and long ones keep their last
   ``maxlen`` ids, exactly like ``keras.utils.pad_sequences`` defaults.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

from text_contract.layout import TOKENIZER_FILE

TOKENIZER_VERSION = "imdb-words-v1"
PAD_ID = 0
START_ID = 1
OOV_ID = 2
FIRST_WORD_ID = 3
DEFAULT_NUM_WORDS = 10_000
DEFAULT_MAXLEN = 500

_BREAK_TAG = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def split_words(text: str) -> list[str]:
    """Split review text into lowercase words following the module rules."""
    return _WORD.findall(_BREAK_TAG.sub(" ", text.lower()))


def build_vocabulary(texts: Iterable[str], num_words: int = DEFAULT_NUM_WORDS) -> list[str]:
    """The ``num_words - 3`` most frequent words, most frequent first, ties alphabetical."""
    if num_words <= FIRST_WORD_ID:
        raise ValueError(f"num_words must be greater than {FIRST_WORD_ID}, got {num_words}")
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(split_words(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [word for word, _ in ranked[: num_words - FIRST_WORD_ID]]


@dataclass(frozen=True)
class EncodedText:
    """One text as fixed-length ids plus what a caller needs to trust the result."""

    ids: np.ndarray  # int32, shape [maxlen]
    num_tokens: int  # words in the text (the start marker not counted)
    num_oov: int  # words mapped to OOV_ID
    truncated: bool  # the sequence was cut to maxlen


@dataclass(frozen=True)
class TokenizerContract:
    """Everything needed to reproduce the model's input from raw text."""

    vocabulary: tuple[str, ...]
    maxlen: int = DEFAULT_MAXLEN
    tokenizer_version: str = TOKENIZER_VERSION

    @property
    def num_words(self) -> int:
        return FIRST_WORD_ID + len(self.vocabulary)

    def to_json(self) -> str:
        return json.dumps(
            {
                "tokenizer_version": self.tokenizer_version,
                "num_words": self.num_words,
                "maxlen": self.maxlen,
                "padding": "pre",
                "truncating": "pre",
                "reserved_ids": {"padding": PAD_ID, "start": START_ID, "out_of_vocabulary": OOV_ID},
                "first_word_id": FIRST_WORD_ID,
                "vocabulary": list(self.vocabulary),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> TokenizerContract:
        data = json.loads(text)
        version = data.get("tokenizer_version")
        if version != TOKENIZER_VERSION:
            raise ValueError(
                f"tokenizer version {version!r} is not supported (expected {TOKENIZER_VERSION!r})"
            )
        if (data.get("padding"), data.get("truncating")) != ("pre", "pre"):
            raise ValueError("only 'pre' padding and truncation are supported")
        vocabulary = tuple(data["vocabulary"])
        if data.get("num_words") != FIRST_WORD_ID + len(vocabulary):
            raise ValueError("num_words does not match the vocabulary length")
        return cls(vocabulary=vocabulary, maxlen=int(data["maxlen"]), tokenizer_version=version)

    def write(self, version_dir: Path) -> Path:
        path = version_dir / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, version_dir: Path) -> TokenizerContract:
        return cls.from_json((version_dir / TOKENIZER_FILE).read_text("utf-8"))


class Tokenizer:
    """Turns texts into padded int32 id matrices according to a contract."""

    def __init__(self, contract: TokenizerContract) -> None:
        self.contract = contract
        self.maxlen = contract.maxlen
        self._word_ids = {word: FIRST_WORD_ID + i for i, word in enumerate(contract.vocabulary)}

    def ids(self, text: str) -> list[int]:
        """Unpadded ids: the start marker followed by one id per word."""
        # map() over dict.get runs the lookups in C: a third of the cost of a generator.
        return [START_ID, *map(self._word_ids.get, split_words(text), repeat(OOV_ID))]

    def kept_words(self, text: str) -> list[tuple[int, str, int]]:
        """``(position, word, column)`` of each word the padded row keeps: its index among the
        text's words, the word, and its column in the ``[maxlen]`` row (long texts keep their last words)."""
        words = split_words(text)
        first_column = self.maxlen - (len(words) + 1)  # the start marker's column; negative when cut
        return [(position, word, first_column + 1 + position)
                for position, word in enumerate(words) if first_column + 1 + position >= 0]

    def encode(self, text: str) -> EncodedText:
        return self._encode_into(np.full(self.maxlen, PAD_ID, dtype=np.int32), text)

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, list[EncodedText]]:
        """A ``[len(texts), maxlen]`` int32 matrix and the per-text details (views of its rows)."""
        matrix = np.full((len(texts), self.maxlen), PAD_ID, dtype=np.int32)
        return matrix, [self._encode_into(row, text) for row, text in zip(matrix, texts)]

    def _encode_into(self, row: np.ndarray, text: str) -> EncodedText:
        """Write the padded ids of ``text`` into ``row``, a PAD_ID-filled ``[maxlen]`` array."""
        ids = self.ids(text)
        _fill(row, ids)
        return EncodedText(
            ids=row, num_tokens=len(ids) - 1, num_oov=ids.count(OOV_ID), truncated=len(ids) > self.maxlen
        )


def pad(ids: Sequence[int], maxlen: int) -> np.ndarray:
    """Pad at the front with PAD_ID, or keep the last ``maxlen`` ids (pad_sequences defaults)."""
    row = np.full(maxlen, PAD_ID, dtype=np.int32)
    _fill(row, ids)
    return row


def _fill(row: np.ndarray, ids: Sequence[int]) -> None:
    """Write the last ``len(row)`` ids at the end of a PAD_ID-filled ``row``."""
    kept = ids[-len(row):]
    if kept:
        row[len(row) - len(kept):] = kept
