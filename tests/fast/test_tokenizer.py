import json

import numpy as np
import pytest

from text_contract.tokenizer import (
    FIRST_WORD_ID,
    OOV_ID,
    PAD_ID,
    START_ID,
    Tokenizer,
    TokenizerContract,
    build_vocabulary,
    pad,
    split_words,
)


@pytest.mark.parametrize(
    "text, words",
    [
        ("Great movie!", ["great", "movie"]),
        ("Line one.<br /><br />Line TWO", ["line", "one", "line", "two"]),
        ("end<br/>start<BR>x<br >y", ["end", "start", "x", "y"]),
        ("don't stop, it's 10/10", ["don't", "stop", "it's", "10", "10"]),
        ("'quoted' -- (parens) [x]...", ["quoted", "parens", "x"]),
        ("snake_case e-mail", ["snake", "case", "e", "mail"]),
        ("Amélie était Génial", ["amélie", "était", "génial"]),
        ("", []),
        ("?!.,;:", []),
    ],
)
def test_split_words_rules(text, words):
    assert split_words(text) == words


def test_punctuation_never_inside_words():
    for word in split_words("Wow!!! \"Best\" film, ever... (really?) #1 <br />yes; no: a/b"):
        assert word.replace("'", "").isalnum(), word


def test_vocabulary_is_by_frequency_with_alphabetical_ties():
    texts = ["b a c", "a b", "a d", "c"]
    assert build_vocabulary(texts, num_words=FIRST_WORD_ID + 3) == ["a", "b", "c"]
    assert build_vocabulary(texts) == ["a", "b", "c", "d"]


def test_vocabulary_is_deterministic_across_input_order():
    texts = [f"word{i % 7} word{i % 3} shared" for i in range(50)]
    assert build_vocabulary(texts, 8) == build_vocabulary(list(reversed(texts)), 8)


def test_reserved_ids_and_start_marker():
    tokenizer = Tokenizer(TokenizerContract(vocabulary=("the", "film"), maxlen=6))
    assert tokenizer.ids("The film, the unknown") == [START_ID, 3, 4, 3, OOV_ID]
    encoded = tokenizer.encode("The film, the unknown")
    assert encoded.ids.tolist() == [PAD_ID, START_ID, 3, 4, 3, OOV_ID]
    assert (encoded.num_tokens, encoded.num_oov, encoded.truncated) == (4, 1, False)


def test_ids_stay_below_num_words():
    vocabulary = tuple(f"w{i}" for i in range(10_000 - FIRST_WORD_ID))
    tokenizer = Tokenizer(TokenizerContract(vocabulary=vocabulary))
    ids = tokenizer.ids(" ".join(f"w{i}" for i in range(0, 12_000, 7)))
    assert max(ids) == 9_999 - (9_996 % 7) and min(ids) >= START_ID
    assert tokenizer.contract.num_words == 10_000


# Equal to Keras' pad_sequences (tests/test_training.py), checked here without loading Keras.
@pytest.mark.parametrize("length", [0, 1, 5, 499, 500, 501, 1200])
def test_pad_puts_zeros_in_front_and_keeps_the_last_ids(length):
    ids = list(range(1, length + 1))
    kept = ids[-500:]
    assert pad(ids, 500).dtype == np.int32
    np.testing.assert_array_equal(pad(ids, 500), [PAD_ID] * (500 - len(kept)) + kept)


def test_long_review_keeps_its_last_ids_and_reports_truncation():
    tokenizer = Tokenizer(TokenizerContract(vocabulary=("a", "b"), maxlen=500))
    encoded = tokenizer.encode("a " * 600 + "b")
    assert encoded.truncated and encoded.num_tokens == 601
    assert encoded.ids[-1] == 4 and encoded.ids[0] == 3  # start marker cut away, last word kept
    matrix, details = tokenizer.encode_batch(["a", "a " * 600 + "b"])
    assert matrix.shape == (2, 500) and matrix.dtype == np.int32
    assert [d.truncated for d in details] == [False, True]


def test_contract_round_trip_and_file(tmp_path):
    contract = TokenizerContract(vocabulary=("the", "é", "don't"), maxlen=500)
    path = contract.write(tmp_path)
    assert path == tmp_path / "assets.extra" / "tokenizer.json"
    data = json.loads(path.read_text("utf-8"))
    assert data["reserved_ids"] == {"padding": 0, "start": 1, "out_of_vocabulary": 2}
    assert (data["maxlen"], data["padding"], data["truncating"]) == (500, "pre", "pre")
    assert data["tokenizer_version"] == "imdb-words-v1" and data["num_words"] == 6
    assert TokenizerContract.read(tmp_path) == contract


def test_contract_with_other_tokenizer_version_is_refused(tmp_path):
    data = json.loads(TokenizerContract(vocabulary=("a",)).to_json())
    data["tokenizer_version"] = "something-else"
    with pytest.raises(ValueError, match="not supported"):
        TokenizerContract.from_json(json.dumps(data))
